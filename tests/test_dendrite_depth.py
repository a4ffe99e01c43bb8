"""A stack's dendrite is trimmed to the planes its shaft fills, not the planes its blur reaches."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dendrite_panoptic.errors import InputError
from napari_dendrite_panoptic.evaluation import pixel_scores
from napari_dendrite_panoptic.inference import InferenceConfig
from napari_dendrite_panoptic.inference.dendrite_depth import trim_dendrite_depth

VOXEL = (0.25, 0.1, 0.1)  # µm


def _tube(climb: float = 0.0, shape=(21, 40, 80), radius_um: float = 0.5):
    """A shaft along x at mid depth (rising ``climb`` µm per µm of x), its blurred image and
    the mask a per-plane network would draw: every plane where the blur is bright."""
    z, y, x = np.indices(shape).astype(float)
    zc = shape[0] // 2 * VOXEL[0] + climb * (x * VOXEL[2] - shape[2] * VOXEL[2] / 2)
    dist = np.hypot((z * VOXEL[0] - zc), (y - shape[1] / 2) * VOXEL[1])
    truth = (dist <= radius_um).astype(np.uint8)
    image = ndi.gaussian_filter(truth.astype(np.float32), (0.6 / VOXEL[0], 1.0, 1.0))
    drawn = (image > 0.1 * image.max()).astype(np.uint8)
    drawn[:, ~truth.any(0)] = 0  # the network's lateral extent is right; only depth is wrong
    return truth, image, drawn


def test_blurred_planes_above_and_below_the_shaft_are_dropped():
    truth, image, drawn = _tube()
    before = pixel_scores(drawn, truth)
    trimmed = trim_dendrite_depth(drawn.copy(), lambda z: image[z], VOXEL)
    after = pixel_scores(trimmed, truth)
    # the default tolerance (half a plane, chosen on generator stacks) keeps a margin
    assert before.iou < 0.45
    assert after.iou > 0.55
    assert after.recall > 0.95
    exact = pixel_scores(trim_dendrite_depth(drawn.copy(), lambda z: image[z], VOXEL, 0.0), truth)
    assert exact.iou > 0.75 and exact.recall > 0.95
    np.testing.assert_array_equal(trimmed.any(0), drawn.any(0))  # no column disappears


def test_a_shaft_climbing_through_the_planes_keeps_its_depth():
    truth, image, drawn = _tube(climb=0.5)
    trimmed = trim_dendrite_depth(drawn.copy(), lambda z: image[z], VOXEL)
    assert pixel_scores(trimmed, truth).recall > 0.9
    assert pixel_scores(trimmed, truth).iou > pixel_scores(drawn, truth).iou


def test_a_plane_is_left_alone():
    mask = np.ones((1, 8, 8), np.uint8)
    assert trim_dendrite_depth(mask, lambda z: np.ones((8, 8)), VOXEL).all()


def test_the_tolerance_is_validated():
    with pytest.raises(InputError, match="dendrite_depth_tolerance"):
        InferenceConfig(dendrite_depth_tolerance=-1.0)
