"""Sample data through the manifest: image + ground truth on the same µm grid."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

PLUGIN = "napari-dendrite-panoptic"


@pytest.mark.parametrize(
    ("key", "name", "shape", "scale"),
    [
        ("synthetic_stack", "synthetic stack", (12, 256, 256), (0.5, 0.1, 0.1)),
        ("synthetic_plane", "synthetic plane", (384, 384), (0.1, 0.1)),
    ],
)
def test_sample_opens_image_and_ground_truth(make_napari_viewer, key, name, shape, scale):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, key)

    assert [layer.name for layer in viewer.layers] == [
        name,
        f"{name} ground truth dendrite",
        f"{name} ground truth spines",
    ]
    image, dendrite, spines = viewer.layers
    assert isinstance(image, Image)
    assert isinstance(dendrite, Labels) and isinstance(spines, Labels)
    for layer in viewer.layers:
        assert layer.data.shape == shape
        np.testing.assert_allclose(layer.scale, scale)
    assert set(np.unique(dendrite.data)) == {0, 1}
    assert spines.data.max() >= 3  # several spines to look at
    assert not np.any((dendrite.data > 0) & (spines.data > 0))  # panoptic: no voxel is both
