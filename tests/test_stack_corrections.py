"""Corrected stacks teach the view the stack path segments: projections of its slabs."""

from __future__ import annotations

from collections import Counter

import numpy as np

from napari_dendrite_panoptic.core import IGNORE, slab_planes, slab_ranges
from napari_dendrite_panoptic.data import correction_source, prepare_volume, stack_projections
from napari_dendrite_panoptic.inference.slabs import plan_stack


def _stack(nz: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (nz, 64, 64) stack: a shaft along x in every plane, spine 1 in planes 1-2 (bright),
    spine 2 in planes 8-9, both at the same (y, x) above the shaft."""
    image = np.full((nz, 64, 64), 10.0, np.float32)
    dendrite = np.zeros((nz, 64, 64), np.uint8)
    spines = np.zeros((nz, 64, 64), np.int32)
    image[:, 30:36, :] = 100.0
    dendrite[:, 30:36, :] = 1
    image[1:3, 20:26, 20:26] = 200.0
    spines[1:3, 20:26, 20:26] = 1
    image[8:10, 20:26, 40:46] = 150.0
    spines[8:10, 20:26, 40:46] = 2
    return image, dendrite, spines


def test_the_slab_rule_is_the_stack_paths():
    # fine-tuning cuts a stack as inference plans it: one rule in core
    for nz, z_step in ((12, 1.0), (16, 0.5), (30, 2.0), (12, None), (3, 1.0)):
        planned = plan_stack("slabs", nz, z_step, 3.0).slabs
        assert planned == slab_ranges(nz, slab_planes(nz, z_step, 3.0))
    assert slab_ranges(12, 3) == ((0, 3), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9),
                                  (7, 10), (8, 11), (9, 12))  # fmt: skip
    assert slab_planes(12, None) == 4


def test_a_stack_trains_on_its_slabs_and_whole_projection_only_where_corrected():
    image, dendrite, spines = _stack()
    volume, _ = prepare_volume("stack", image, dendrite, spines, 0.1, z_step_um=1.0)
    assert volume.z_step_um == 1.0
    slabs, whole = stack_projections(volume)
    assert slabs[0] == (0, 3) and slabs[-1] == (9, 12) and whole == [(0, 12)]
    # only the planes the user edited: no slab reaching an unedited plane, no whole stack
    part, _ = prepare_volume("stack", image, dendrite, spines, 0.1, planes=range(0, 5),
                             z_step_um=1.0)  # fmt: skip
    assert stack_projections(part) == ([(0, 3), (1, 4), (2, 5)], [])
    # unknown z-step: 4-plane slabs, as the stack path takes
    unknown, notes = prepare_volume("stack", image, dendrite, spines, 0.1)
    assert stack_projections(unknown)[0][0] == (0, 4)
    assert any("no z-step" in n and "4-plane slabs" in n for n in notes)
    plane, _ = prepare_volume("plane", image[1], dendrite[1], spines[1], 0.1, z_step_um=1.0)
    assert plane.z_step_um is None and stack_projections(plane) == ([], [])


def test_projection_crops_hold_the_slabs_spines_and_the_whole_stacks_dendrite():
    image, dendrite, spines = _stack()
    volume, _ = prepare_volume("stack", image, dendrite, spines, 0.1, z_step_um=1.0)
    draw = correction_source([volume], 64, 0.1, slab_share=1.0)
    rng = np.random.default_rng(0)
    seen = Counter()
    for _ in range(60):
        sample = draw(rng)
        assert sample.source == "corrections (slab projections)"
        ids = frozenset(np.unique(sample.spines[sample.spines > 0]).tolist())
        if (sample.dendrite == IGNORE).all():  # a slab: never both spines (7 planes apart)
            assert ids != {1, 2}
            seen["slab", ids] += 1
        else:  # the whole stack: both spines, the shaft outside them
            assert ids == {1, 2}
            assert sample.dendrite[32].all() and not sample.dendrite[22, 22]
            seen["whole"] += 1
        # a spine's pixels show its light: the projection is of the image, not of a plane
        if 1 in ids:
            assert sample.image[sample.spines == 1].min() > sample.image[32].max()
    assert seen["whole"] > 5 and seen["slab", frozenset({1})] > 5
    assert seen["slab", frozenset({2})] > 5 and seen["slab", frozenset()] > 0


def test_plane_crops_alone_when_asked_and_for_planes():
    image, dendrite, spines = _stack()
    volume, _ = prepare_volume("stack", image, dendrite, spines, 0.1, z_step_um=1.0)
    rng = np.random.default_rng(1)
    draw = correction_source([volume], 64, 0.1, slab_share=0.0)
    assert {draw(rng).source for _ in range(20)} == {"corrections"}
    half = correction_source([volume], 64, 0.1, slab_share=0.5)
    sources = Counter(half(rng).source for _ in range(200))
    assert 60 < sources["corrections (slab projections)"] < 140  # about half
    # by default a stack trains in the view the stack path segments, unless no slab qualifies
    assert {correction_source([volume], 64, 0.1)(rng).source for _ in range(20)} == {
        "corrections (slab projections)"
    }
    part, _ = prepare_volume("stack", image, dendrite, spines, 0.1, planes=[4], z_step_um=1.0)
    assert {correction_source([part], 64, 0.1)(rng).source for _ in range(20)} == {"corrections"}
    plane, _ = prepare_volume("plane", image[1], dendrite[1], spines[1], 0.1)
    flat = correction_source([plane], 64, 0.1, slab_share=1.0)
    assert {flat(rng).source for _ in range(20)} == {"corrections"}
