"""Training crops of user-corrected volumes (the correct-and-retrain loop):
:func:`correction_source` turns :class:`~.corrections.CorrectedVolume` objects into the training
engine's :data:`~napari_dendrite_panoptic.data.SampleSource` (random crops at the model's pixel
size: of single planes and, for stacks, of the slab projections the stack path segments), and
:func:`steps_per_epoch` says how many batches show every corrected pixel about once.

No napari, no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..core import IGNORE, SLAB_UM, sampled_percentiles, slab_planes, slab_ranges
from ..errors import InputError
from .corrections import CorrectedVolume
from .samples import (
    WHOLE_STACK_SHARE,
    SampleSource,
    TrainingSample,
    plane_neighbours,
    projected_spines,
)


def steps_per_epoch(
    volumes: Sequence[CorrectedVolume], crop: int, native_px_um: float, batch_size: int
) -> int:
    """Batches that show the model about every chosen pixel once (at the model's pixel size)."""
    area = 0.0
    for v in volumes:
        zoom = (v.pixel_size_um or native_px_um) / native_px_um
        area += len(v.planes) * v.image.shape[1] * v.image.shape[2] * zoom * zoom
    return max(1, int(np.ceil(area / (crop * crop) / batch_size)))


def _crop_window(
    rng: np.random.Generator, mask: np.ndarray, size: int
) -> tuple[int, int]:  # top-left corner of a ``size`` window, biased to annotated pixels
    h, w = mask.shape
    if rng.random() < 0.8:
        ys, xs = np.nonzero(mask)
        if ys.size:
            k = int(rng.integers(ys.size))
            cy, cx = ys[k], xs[k]
            y0 = int(np.clip(cy - int(rng.integers(size)), 0, max(h - size, 0)))
            x0 = int(np.clip(cx - int(rng.integers(size)), 0, max(w - size, 0)))
            return y0, x0
    return int(rng.integers(max(h - size, 0) + 1)), int(rng.integers(max(w - size, 0) + 1))


def _pad_to(a: np.ndarray, size: int, value: float) -> np.ndarray:
    ph, pw = size - a.shape[0], size - a.shape[1]
    if ph <= 0 and pw <= 0:
        return a
    return np.pad(a, ((0, max(ph, 0)), (0, max(pw, 0))), constant_values=value)


STACK_SLAB_SHARE = 1.0
"""Share of a corrected stack's crops cut from projections of its slabs (the view the default
stack path segments, ``inference/slabs.py``); the others are single planes (the ``planes``
path's view). All of them: on two-photon-like stacks of an unseen style, 150 steps on plane
crops cost the stack path 0.13 spine F1, on half slab crops 0.02, on slab crops alone nothing;
600 steps on slab crops gained 0.04 (``benchmarks/bench_finetune.py --stacks``,
docs/fine_tuning_measurements.md)."""


@dataclass(frozen=True)
class _Projection:
    """One view of a corrected stack as the stack path sees it: the maximum projection of
    planes [first, last), normalised with the other views of its kind, and where it holds
    annotations (to centre crops on)."""

    first: int
    last: int
    lo: float
    span: float
    annotated: np.ndarray


def stack_projections(
    volume: CorrectedVolume, slab_um: float = SLAB_UM
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The [first, last) plane ranges of ``volume`` whose projections it trains on: the slabs
    the stack path cuts it into (``slab_um`` thick at its z-step, 4 planes when unknown) and
    the whole stack (the view the stack path finds the dendrite on). Only ranges of which
    every plane is one of ``volume.planes``: a plane nobody corrected still holds the model's
    own answer. Returns (slabs, whole); both empty for a single plane."""
    nz = volume.image.shape[0]
    if nz < 2:
        return [], []
    chosen = set(volume.planes)
    planes = slab_planes(nz, volume.z_step_um, slab_um)
    slabs = [r for r in slab_ranges(nz, planes) if chosen.issuperset(range(*r))]
    whole = [(0, nz)] if len(chosen) == nz else []
    return [r for r in slabs if r != (0, nz)], whole


def _projection_views(volume: CorrectedVolume, slab_um: float) -> tuple[list, list]:
    """:class:`_Projection` s of the slabs and of the whole stack; the slabs normalised
    together, the whole stack on its own (as ``inference/slabs.py`` does)."""
    out = []
    for ranges in stack_projections(volume, slab_um):
        views = []
        if ranges:
            images = np.stack([volume.image[a:b].max(0) for a, b in ranges])
            lo, hi = sampled_percentiles(images, 1.0, 99.8) or (0.0, 1.0)
            for a, b in ranges:
                marks = (volume.dendrite[a:b] > 0).any(0) | (volume.spines[a:b] > 0).any(0)
                views.append(_Projection(a, b, lo, max(hi - lo, 1e-6), marks))
        out.append(views)
    return out[0], out[1]


def correction_source(
    volumes: Sequence[CorrectedVolume],
    crop: int,
    native_px_um: float,
    neighbours: bool = False,
    slab_share: float = STACK_SLAB_SHARE,
    slab_um: float = SLAB_UM,
) -> SampleSource:
    """A sample source drawing ``crop`` × ``crop`` crops at ``native_px_um`` from the chosen
    planes of ``volumes``, each volume and plane in proportion to its area, mostly around
    annotated pixels. Regions outside the image are padded (dendrite target ignored there).
    ``neighbours``: crops of stacks carry the planes below and above (3-plane networks).

    ``slab_share`` of a stack's crops are cut from maximum projections of its slabs
    (``slab_um`` thick, as the stack path cuts it; :func:`stack_projections`), 30 % of those
    from the whole stack's: the spines of a projection are those with at least a third of
    their voxels in the slab (the brightest one in each column), the dendrite is taught on the
    whole stack's projection only."""
    if not volumes:
        raise InputError("no corrected image to train on")
    entries = [(v, z) for v in volumes for z in v.planes]
    weights = np.array([v.image.shape[1] * v.image.shape[2] for v, _ in entries], float)
    weights /= weights.sum()
    masks = {(id(v), z): (v.dendrite[z] > 0) | (v.spines[z] > 0) for v, z in entries}
    views = {id(v): _projection_views(v, slab_um) for v in volumes if v.image.shape[0] > 1}

    def draw(rng: np.random.Generator) -> TrainingSample:
        v, z = entries[int(rng.choice(len(entries), p=weights))]
        scale = (v.pixel_size_um or native_px_um) / native_px_um  # output px per input px
        size = max(8, int(round(crop / scale)))
        view = _pick_view(rng, views.get(id(v)), slab_share)
        if view is not None:
            return _projection_crop(rng, v, view, size, scale, crop)
        y0, x0 = _crop_window(rng, masks[(id(v), z)], size)
        window = np.s_[y0 : y0 + size, x0 : x0 + size]
        img, den, spi = v.image[z][window], v.dendrite[z][window], v.spines[z][window]
        around = []
        if neighbours and v.image.shape[0] > 1:
            around = [a[window] for a in plane_neighbours(v.image, z)]
        return _finish(img, den, spi, around, scale, crop, "corrections")

    return draw


def _pick_view(
    rng: np.random.Generator, views: tuple[list, list] | None, share: float
) -> _Projection | None:
    """A projection view of a stack for ``share`` of its crops, or None (a plane crop)."""
    if not views or not (views[0] or views[1]) or rng.random() >= share:
        return None
    slabs, whole = views
    if whole and (not slabs or rng.random() < WHOLE_STACK_SHARE):
        return whole[0]
    return slabs[int(rng.integers(len(slabs)))]


def _projection_crop(
    rng: np.random.Generator,
    v: CorrectedVolume,
    view: _Projection,
    size: int,
    scale: float,
    crop: int,
) -> TrainingSample:
    """A crop of one projection view of stack ``v`` with its spines and (for the whole stack)
    its dendrite."""
    y0, x0 = _crop_window(rng, view.annotated, size)
    rows, cols = slice(y0, y0 + size), slice(x0, x0 + size)
    slab = slice(view.first, view.last)
    light = v.image[slab, rows, cols]  # only the slab's planes are read
    img = (light.max(0) - view.lo) / view.span
    spi = projected_spines(light, v.spines[:, rows, cols], slab)
    if view.first == 0 and view.last == v.image.shape[0]:
        den = (v.dendrite[:, rows, cols].any(0) & (spi == 0)).astype(np.uint8)
    else:  # the stack path finds the dendrite on the whole stack's projection only
        den = np.full(spi.shape, IGNORE, np.uint8)
    return _finish(img, den, spi, [], scale, crop, "corrections (slab projections)")


def _finish(
    img: np.ndarray,
    den: np.ndarray,
    spi: np.ndarray,
    around: list[np.ndarray],
    scale: float,
    crop: int,
    source: str,
) -> TrainingSample:
    """Resample a window to the model's pixel size and pad it to ``crop`` × ``crop``."""
    if abs(scale - 1) > 0.02:
        img = ndi.zoom(img, scale, order=1)
        den = ndi.zoom(den, scale, order=0)
        spi = ndi.zoom(spi, scale, order=0)
        around = [ndi.zoom(a, scale, order=1) for a in around]
    img = _pad_to(img, crop, 0.0)[:crop, :crop]
    den = _pad_to(den, crop, IGNORE)[:crop, :crop]
    spi = _pad_to(spi, crop, 0)[:crop, :crop]
    around = [_pad_to(a, crop, 0.0)[:crop, :crop] for a in around]
    return TrainingSample(
        img.astype(np.float32),
        den.astype(np.uint8),
        spi.astype(np.int32),
        1.0,
        source,
        np.stack(around).astype(np.float32) if around else None,
    )
