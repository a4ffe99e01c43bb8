"""Training crops of generated stacks' slab projections: what the stack path's networks see."""

import numpy as np

from napari_dendrite_panoptic.data import slab_sample, training_source
from napari_dendrite_panoptic.data.samples import projected_spines


def test_slab_crops_are_projections_with_the_slabs_spines_and_the_dendrite_of_whole_stacks():
    rng = np.random.default_rng(7)
    crops = [slab_sample(rng, 64, 0.1) for _ in range(8)]
    whole = [c for c in crops if c.dendrite.max() <= 1]
    thinner = [c for c in crops if (c.dendrite == 255).all()]
    assert whole and thinner and len(whole) + len(thinner) == len(crops)
    for c in crops:
        assert c.image.shape == (64, 64) and c.image.dtype == np.float32
        assert c.spines.dtype == np.int32 and c.neighbours is None
        assert c.source == "generator-slabs"
    for c in whole:  # a pixel is a spine or dendrite, never both
        assert not (c.dendrite.astype(bool) & (c.spines > 0)).any()
    assert any(c.spines.max() > 0 for c in crops)


def test_a_spine_mostly_outside_the_slab_is_background_of_its_projection():
    labels = np.zeros((6, 4, 4), np.int32)
    labels[0:2, 0, 0] = 1  # wholly in planes 0-2
    labels[2, 1, 1] = 2  # one voxel of six in the slab
    labels[3:6, 1, 1] = 2
    labels[3:5, 1, 2] = 2
    labels[0, 2, 2] = 3  # two spines in one column: the brighter voxel's spine
    labels[1, 2, 2] = 4
    light = np.ones((6, 4, 4), np.float32)
    light[1, 2, 2] = 5.0
    projected = projected_spines(light[0:3], labels, slice(0, 3))
    assert projected[0, 0] == 1
    assert projected[1, 1] == 0 and projected[1, 2] == 0
    assert projected[2, 2] == 4


def test_the_training_mix_draws_slab_projections_by_name():
    source, described = training_source("generator-slabs:1", 48, 0.1)
    assert "generator-slabs" in described
    assert source(np.random.default_rng(3)).source == "generator-slabs"
