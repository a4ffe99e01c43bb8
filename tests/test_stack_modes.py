"""Stacks through projections: the plan from the z-step, a spine lifted to its planes, spines of
two dendrites at different depths kept apart, and one id per spine through its planes."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_dendrite_panoptic.errors import InputError
from napari_dendrite_panoptic.inference import InferenceConfig, predict, tile_passes
from napari_dendrite_panoptic.inference.slabs import (
    lift_spines,
    merge_spines,
    plan_stack,
    slab_detections,
)


def test_the_plan_follows_the_depth_and_the_z_step():
    assert plan_stack("auto", 1, 1.0, 3.0).mode == "planes"
    thin = plan_stack("auto", 5, 0.5, 3.0)
    assert thin.mode == "projection" and thin.slabs == ((0, 5),)
    deep = plan_stack("auto", 34, 1.0, 3.0)
    assert deep.mode == "slabs" and all(z1 - z0 == 3 for z0, z1 in deep.slabs)
    covered = set().union(*(range(z0, z1) for z0, z1 in deep.slabs))
    assert covered == set(range(34))
    fine = plan_stack("auto", 60, 0.2, 3.0)  # confocal steps: more planes per slab
    assert fine.slabs[0] == (0, 15) and fine.slabs[1] == (7, 22)
    unknown = plan_stack("auto", 20, None, 3.0)
    assert unknown.mode == "slabs" and unknown.warning and "z-step" in unknown.reason
    assert plan_stack("planes", 20, 1.0, 3.0).mode == "planes"
    with pytest.raises(InputError, match="stack mode must be one of"):
        InferenceConfig(stack_mode="sideways")


def _blob_stack(centres, shape=(20, 40, 40), sigma_z=1.2, background=10.0):
    """A stack with a bright 5-px square per (z, y, x) centre, blurred along z like a PSF."""
    vol = np.zeros(shape, np.float32)
    for z, y, x in centres:
        vol[z, y - 2 : y + 3, x - 2 : x + 3] = 100.0
    return ndi.gaussian_filter1d(vol, sigma_z, axis=0) + background


def _footprint(shape, y, x):
    labels = np.zeros(shape[1:], np.int32)
    labels[y - 2 : y + 3, x - 2 : x + 3] = 1
    return labels


def test_a_projected_spine_is_lifted_to_the_planes_around_its_peak():
    vol = _blob_stack([(6, 20, 20)])
    background = np.full(vol.shape[0], 10.0, np.float32)
    found = slab_detections(_footprint(vol.shape, 20, 20), [0.9], (0, 20))
    (spine,) = lift_spines(vol, background, found, 0.7)
    assert spine.peak == 6 and spine.z0 <= 6 < spine.z1
    assert spine.z0 >= 5 and spine.z1 <= 8  # not the blurred tails
    assert spine.score == 0.9


def test_spines_of_dendrites_crossing_at_different_depths_stay_apart():
    vol = _blob_stack([(3, 20, 20), (15, 20, 20)])
    background = np.full(vol.shape[0], 10.0, np.float32)
    labels = _footprint(vol.shape, 20, 20)
    slabs = ((0, 6), (3, 9), (6, 12), (9, 15), (12, 18), (14, 20))
    detections = [d for slab in slabs for d in slab_detections(labels, [0.8], slab)]
    found = lift_spines(vol, background, detections, 0.7)
    kept = merge_spines(found, max_peak_distance=3)
    assert sorted(s.peak for s in kept) == [3, 15]
    assert all(s.z1 <= 6 or s.z0 >= 12 for s in kept)


def _one_blob_network(models, tiles):
    """A stand-in network: dendrite everywhere, a spine on the brightest spot of each tile that
    has a bright spot."""
    n, _, th, tw = tiles.shape
    dets = []
    for tile in tiles[:, 0]:
        if float(tile.max()) < 0.5:
            dets.append(tile_passes.NO_DETECTIONS)
            continue
        cy, cx = divmod(int(torch.argmax(tile)), tw)
        dets.append(
            {
                "boxes": torch.tensor([[cx - 3.0, cy - 3.0, cx + 3.0, cy + 3.0]]),
                "scores": torch.tensor([0.9]),
                "masks": torch.ones((1, 1, 28, 28)),
            }
        )
    return torch.full((n, th, tw), 0.9), dets


def test_a_stack_gives_each_spine_one_id_through_its_planes(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(tile_passes, "run_networks", _one_blob_network)
    vol = _blob_stack([(10, 20, 20)], shape=(20, 64, 64))
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", stack_mode="auto")
    result = predict(vol, (1.0, 0.1, 0.1), cfg)
    assert result.parameters["stack_mode_used"] == "slabs"
    assert "slabs" in result.parameters["stack_mode_reason"]
    ids = np.unique(result.spines[result.spines > 0])
    assert ids.tolist() == [1]  # found in two overlapping slabs, kept once
    planes = np.unique(np.nonzero(result.spines == 1)[0])
    assert planes.tolist() == list(range(planes[0], planes[-1] + 1)) and 10 in planes
    assert len(planes) <= 4
    assert len(result.table["id"]) == 1
    assert not (result.dendrite.astype(bool) & (result.spines > 0)).any()


def test_a_stack_without_a_z_step_says_so(tiny_model_dir, monkeypatch):
    from napari_dendrite_panoptic.inference import iter_predict

    monkeypatch.setattr(tile_passes, "run_networks", _one_blob_network)
    vol = _blob_stack([(10, 20, 20)], shape=(20, 48, 48))
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", stack_mode="auto")
    events = list(iter_predict(vol, None, cfg))
    warnings = [e.warning for e in events[:-1] if e.warning]
    assert any("no z-step" in w for w in warnings)
    assert events[-1].parameters["stack_mode_used"] == "slabs"
    assert any("no z-step" in w for w in events[-1].parameters["warnings"])


def test_a_plane_too_big_for_memory_is_a_clear_error_in_the_slab_path(tiny_model_dir):
    from napari_dendrite_panoptic.inference.memory import OutOfMemory

    class Huge:
        shape, dtype, ndim = (6, 64, 64), np.dtype(np.uint16), 3

        def __getitem__(self, key):
            if key == 3:
                raise MemoryError("Unable to allocate 80.0 GiB for an array")
            return np.zeros((64, 64), np.uint16)

    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", stack_mode="slabs")
    with pytest.raises(OutOfMemory, match="not enough memory to read plane 4 of 64x64 px"):
        predict(Huge(), (1.0, 0.1, 0.1), cfg)
