"""Training samples from the real annotated sets: records of :mod:`.records` to crops.

:func:`point_source` and :func:`mask_source` turn
:class:`~.records.PointAnnotatedImage` and
:class:`~.records.MaskAnnotatedImage` records into
:data:`~napari_dendrite_panoptic.data.SampleSource` callables that yield
:class:`~napari_dendrite_panoptic.data.TrainingSample` crops at the model's pixel size:
centre-only sets get pseudo spine masks grown from the centres (:func:`pseudo_spine_masks`),
the blacked-out YOLO11 images get a realistic synthetic background put back behind the
dendrite. :func:`mixed_source` draws from several sources by weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import rescale

from ...core import percentile_normalise
from .. import synthetic
from ..samples import SampleSource, TrainingSample

if TYPE_CHECKING:
    from .records import MaskAnnotatedImage, PointAnnotatedImage

PSEUDO_RADIUS_UM = 0.9
"""Radius in µm of the disk a pseudo spine mask may grow in, around its centre."""

PSEUDO_MIN_RADIUS_UM = 0.25
"""Radius in µm of the disk every pseudo spine mask contains at least."""


# --------------------------------------------------------------------------------------------
# Pseudo spine masks from centres
# --------------------------------------------------------------------------------------------


def pseudo_spine_masks(
    image: np.ndarray,
    centres_px: np.ndarray,
    radius_px: float,
    min_radius_px: float | None = None,
    level: float = 0.5,
) -> np.ndarray:
    """Spine instance masks grown from annotated centres.

    Each centre owns the pixels closer to it than to any other centre (ties and overlaps go to
    the nearest centre). Within ``radius_px`` of the centre, it takes the pixels of the lightly
    smoothed image that are at least halfway between the local background (the minimum over a
    ``4 * radius_px`` window) and the spine's peak (the brightest pixel within
    ``0.4 * radius_px`` of the centre) and not brighter than 1.15 × the peak, connected to
    that peak. The cap keeps a brighter dendrite shaft out; the radius keeps a dimmer one
    from being eaten whole. Every mask contains at least the disk of ``min_radius_px``.

    Parameters
    ----------
    image
        (H, W) grey image, any real dtype.
    centres_px
        (N, 2) spine centres (y, x) in px.
    radius_px
        Largest distance in px from its centre a mask pixel may have.
    min_radius_px
        Radius in px of the disk every mask contains; default ``0.35 * radius_px``, at least 1.

    Returns
    -------
    numpy.ndarray
        (H, W) int32 labels: ``i + 1`` for ``centres_px[i]``, 0 elsewhere. Centres outside the
        image or sharing a pixel with an earlier centre get no mask.
    """
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    out = np.zeros((h, w), dtype=np.int32)
    c = np.round(np.asarray(centres_px, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    if len(c) == 0:
        return out
    if min_radius_px is None:
        min_radius_px = max(1.0, 0.35 * radius_px)
    inside = (c[:, 0] >= 0) & (c[:, 0] < h) & (c[:, 1] >= 0) & (c[:, 1] < w)
    seeds = np.zeros((h, w), dtype=np.int32)
    idx = np.flatnonzero(inside)[::-1]  # earlier centres win a shared pixel
    seeds[c[idx, 0], c[idx, 1]] = idx + 1
    ids = np.unique(seeds[seeds > 0])
    if ids.size == 0:
        return out
    dist, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    owner = seeds[iy, ix]  # nearest centre's id everywhere
    smooth = ndi.gaussian_filter(img, max(0.5, 0.1 * radius_px))
    win = int(2 * np.ceil(2 * radius_px) + 1)
    background = ndi.uniform_filter(ndi.minimum_filter(smooth, size=win), size=win)

    # peak: brightest pixel within 0.4 radius of the centre, inside the centre's own cell
    near = np.where(dist <= max(1.5, 0.4 * radius_px), owner, 0)
    peaks = np.asarray(ndi.maximum_position(smooth, labels=near, index=ids), dtype=np.int64)
    n = int(ids.max()) + 1
    peak_val = np.zeros(n, np.float32)
    bg_val = np.zeros(n, np.float32)
    peak_val[ids] = smooth[peaks[:, 0], peaks[:, 1]]
    bg_val[ids] = background[c[ids - 1, 0], c[ids - 1, 1]]
    thr = bg_val + level * (peak_val - bg_val)

    cand = (dist <= radius_px) & (owner > 0)
    cand &= (smooth >= thr[owner]) & (smooth <= 1.15 * peak_val[owner] + 1e-6)
    # cut the candidates along cell borders so a component never spans two centres
    border = np.zeros((h, w), dtype=bool)
    border[1:, :] |= owner[1:, :] != owner[:-1, :]
    border[:, 1:] |= owner[:, 1:] != owner[:, :-1]
    comp, _ = ndi.label(cand & ~border)
    keep = np.zeros(comp.max() + 1, dtype=bool)
    keep[comp[peaks[:, 0], peaks[:, 1]]] = True
    keep[0] = False
    grown = keep[comp]
    grown = ndi.binary_fill_holes(grown) & (dist <= radius_px)
    grown |= dist <= min_radius_px
    out[grown] = owner[grown]
    return out


# --------------------------------------------------------------------------------------------
# Sample sources
# --------------------------------------------------------------------------------------------


def _window(
    shape: tuple[int, int],
    size: tuple[int, int],
    anchor: np.ndarray | None,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """Top-left corner of a ``size`` window inside ``shape``; if ``anchor`` (y, x) is given,
    the window holds it at least 1/8 of its size from its edges (where the image allows)."""
    corner = []
    for ax in range(2):
        room = shape[ax] - size[ax]
        margin = size[ax] // 8
        if anchor is None:
            corner.append(int(rng.integers(room + 1)))
        else:
            lo = int(np.clip(anchor[ax] - size[ax] + 1 + margin, 0, room))
            hi = int(np.clip(anchor[ax] - margin, lo, room))
            corner.append(int(rng.integers(lo, hi + 1)))
    return corner[0], corner[1]


def _resampled_crop(
    arrays: Sequence[np.ndarray],
    out: tuple[int, int],
    factor: float,
    anchor: np.ndarray | None,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], float]:
    """Crop ``arrays`` (image first, then labels) and resample them by ``factor`` to ``out``.

    The source window holds ``out / factor`` px (plus a margin), placed to contain ``anchor``
    (y, x, source px) away from its edges when given. An image too small for the window is enlarged beyond
    ``factor`` so the output is still filled. The image is resampled with order 1 (anti-aliased
    when shrinking), labels with order 0.

    Returns
    -------
    (list of arrays, factor)
        Arrays of shape ``out`` (float32 image, labels in their own dtype) and the factor used.
    """
    h, w = arrays[0].shape
    factor = max(factor, (out[0] + 1) / h, (out[1] + 1) / w)
    size = (min(h, int(np.ceil(out[0] / factor)) + 2), min(w, int(np.ceil(out[1] / factor)) + 2))
    y0, x0 = _window((h, w), size, anchor, rng)
    result = []
    for k, a in enumerate(arrays):
        piece = a[y0 : y0 + size[0], x0 : x0 + size[1]]
        if k == 0:
            r = rescale(
                piece.astype(np.float32),
                factor,
                order=1,
                anti_aliasing=factor < 1,
                preserve_range=True,
                mode="reflect",
            )
        else:
            r = rescale(
                piece, factor, order=0, anti_aliasing=False, preserve_range=True, mode="edge"
            ).astype(a.dtype)
        result.append(r)
    # resampled pieces are a few px larger than ``out``
    rh, rw = result[0].shape
    oy, ox = int(rng.integers(rh - out[0] + 1)), int(rng.integers(rw - out[1] + 1))
    cut = [np.ascontiguousarray(r[oy : oy + out[0], ox : ox + out[1]]) for r in result]
    cut[0] = cut[0].astype(np.float32)
    return cut, factor


def _relabel(labels: np.ndarray, offset: int) -> tuple[np.ndarray, int]:
    """Ids of ``labels`` renumbered 1..n (+ ``offset``); returns the labels and n."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32) + offset
    return lut[labels], int(ids.size)


class _PseudoMaskCache:
    """Pseudo spine masks of point-annotated items, computed on first use."""

    def __init__(self, items: Sequence[PointAnnotatedImage]):
        self.items = list(items)
        self.masks: dict[int, np.ndarray] = {}

    def __call__(self, k: int) -> np.ndarray:
        if k not in self.masks:
            it = self.items[k]
            self.masks[k] = pseudo_spine_masks(
                it.image,
                it.centres_px,
                PSEUDO_RADIUS_UM / it.pixel_size_um,
                max(1.0, PSEUDO_MIN_RADIUS_UM / it.pixel_size_um),
            )
        return self.masks[k]


def _source_name(item: PointAnnotatedImage) -> str:
    return "smirnov" if item.group.startswith("smirnov") else "findspines"


def point_source(
    items: Sequence[PointAnnotatedImage],
    crop: int,
    native_px_um: float,
    p_centre: float = 0.9,
    anchors: Sequence[np.ndarray] | None = None,
) -> SampleSource:
    """Training samples from centre-annotated images (Smirnov, FindSpines).

    Each draw resamples to ``native_px_um`` × U(0.8, 1.25). When one random item, resampled,
    covers ``crop`` × ``crop`` (FindSpines fields), the sample is one crop of it, placed around
    a random centre with probability ``p_centre``. Otherwise (Smirnov crops, ~130 px at
    0.065 µm/px) the sample is a mosaic of n × n tiles, n = max(2, round(crop / the item's
    resampled short side)): 3 × 3 for Smirnov at 256 px and 0.1 µm/px, 2 × 2 at 0.065 µm/px.
    The tiles come from random items (a tile larger than its item enlarges it a little), each
    percentile-normalised on its own, so every pixel shows real content.

    Parameters
    ----------
    items
        Point-annotated images (any mix of pixel sizes).
    crop
        Output size in px.
    native_px_um
        The model's pixel size in µm.
    p_centre
        Probability that a crop is placed to contain a spine centre (or an anchor).
    anchors
        Per item, (M, 2) points (y, x, px) to place crops on instead of its spine centres,
        e.g. :func:`.hard_negatives.hard_negatives`; items without an anchor are never drawn.

    Returns
    -------
    SampleSource
        ``rng -> TrainingSample``: ``image`` (crop, crop) float32 normalised, ``dendrite`` all
        255 (not annotated), ``spines`` int32 pseudo masks (:func:`pseudo_spine_masks`, radius
        0.9 µm, at least 0.25 µm), ``spine_weight`` 0.5, ``source`` "smirnov" or
        "findspines".
    """
    items = list(items)
    if anchors is None:
        points = [it.centres_px for it in items]
    else:
        keep = [k for k, a in enumerate(anchors) if len(a)]
        items, points = [items[k] for k in keep], [anchors[k] for k in keep]
    if not items:
        raise ValueError("point_source needs at least one item (with an anchor)")
    masks = _PseudoMaskCache(items)

    def tile(
        k: int, out: tuple[int, int], px: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        it = items[k]
        anchor = None
        if len(points[k]) and rng.random() < p_centre:
            anchor = points[k][int(rng.integers(len(points[k])))]
        (img, lab), _ = _resampled_crop(
            [it.image, masks(k)], out, it.pixel_size_um / px, anchor, rng
        )
        return percentile_normalise(img), lab

    def draw(rng: np.random.Generator) -> TrainingSample:
        px = native_px_um * float(rng.uniform(0.8, 1.25))
        k = int(rng.integers(len(items)))
        it = items[k]
        side = min(it.image.shape) * it.pixel_size_um / px  # the item's short side, resampled
        if side >= crop + 2:
            image, spines = tile(k, (crop, crop), px, rng)
            spines, _ = _relabel(spines, 0)
        else:
            image = np.zeros((crop, crop), np.float32)
            spines = np.zeros((crop, crop), np.int32)
            # as many tiles as the first item fills best; a smaller one is enlarged to fit
            n_tiles = max(2, round(crop / max(side, 1.0)))
            edges = np.linspace(0, crop, n_tiles + 1).round().astype(int)
            next_id = 0
            for i in range(n_tiles):
                for j in range(n_tiles):
                    ys, xs = slice(edges[i], edges[i + 1]), slice(edges[j], edges[j + 1])
                    kk = k if i == j == 0 else int(rng.integers(len(items)))
                    img, lab = tile(kk, (ys.stop - ys.start, xs.stop - xs.start), px, rng)
                    lab, n = _relabel(lab, next_id)
                    image[ys, xs] = img
                    spines[ys, xs] = lab
                    next_id += n
        dendrite = np.full((crop, crop), 255, dtype=np.uint8)
        return TrainingSample(
            image.astype(np.float32), dendrite, spines.astype(np.int32), 0.5, _source_name(it)
        )

    return draw


def _background(
    rng: np.random.Generator, shape: tuple[int, int], px_um: float
) -> tuple[np.ndarray, float]:
    """A synthetic two-photon background without dendrites: smooth offset, haze, axons,
    puncta, shot and read noise (:func:`synthetic.generate` with ``n_dendrites=0``).

    Returns
    -------
    (numpy.ndarray, float)
        (H, W) float32 counts minus the camera offset, and the photon count a dendrite of
        unit brightness would have (``peak_photons``).
    """
    cfg = synthetic.random_config(rng, shape=(1, *shape))
    cfg = replace(cfg, n_dendrites=0, pixel_size_um=px_um)
    sample = synthetic.generate(int(rng.integers(2**31)), cfg)
    return sample.image[0].astype(np.float32) - synthetic.CAMERA_OFFSET, float(cfg.peak_photons)


def mask_source(
    items: Sequence[MaskAnnotatedImage],
    crop: int,
    native_px_um: float,
    p_foreground: float = 0.95,
) -> SampleSource:
    """Training samples from the YOLO11 images, with a realistic background put back.

    Each draw resamples one random item to ``native_px_um`` × U(0.8, 1.25) and crops
    ``crop`` × ``crop`` around a random spine (or, failing that, foreground) pixel with
    probability ``p_foreground``. The blacked-out background is replaced: the neuron,
    blurred by a small PSF (0.3-1.0 px) so its cut edge is soft, is scaled to photon counts
    (its median → ``peak_photons`` × U(0.6, 1.6)), given Poisson noise and added onto a
    synthetic background without dendrites (offset, haze, axons, puncta, shot and read noise,
    :func:`synthetic.generate`); then the whole image gets a little Gaussian noise and is
    percentile-normalised.

    Parameters
    ----------
    items
        Mask-annotated images.
    crop
        Output size in px.
    native_px_um
        The model's pixel size in µm.
    p_foreground
        Probability that a crop is placed on the neuron.

    Returns
    -------
    SampleSource
        ``rng -> TrainingSample``: ``image`` (crop, crop) float32, ``dendrite`` uint8 0/1
        (fully annotated: the background is known), ``spines`` int32 instance ids,
        ``spine_weight`` 1.0, ``source`` "yolo11".
    """
    items = list(items)
    if not items:
        raise ValueError("mask_source needs at least one item")
    medians = [
        float(np.median(it.image[it.foreground])) if it.foreground.any() else 1.0 for it in items
    ]

    def draw(rng: np.random.Generator) -> TrainingSample:
        px = native_px_um * float(rng.uniform(0.8, 1.25))
        k = int(rng.integers(len(items)))
        it = items[k]
        anchor = None
        if rng.random() < p_foreground:
            pool = it.spines if (rng.random() < 0.7 and it.spines.any()) else it.foreground
            ys, xs = np.nonzero(pool)
            if ys.size:
                j = int(rng.integers(ys.size))
                anchor = np.array([ys[j], xs[j]])
        (img, spines, dendrite), _ = _resampled_crop(
            [it.image, it.spines, it.dendrite], (crop, crop), it.pixel_size_um / px, anchor, rng
        )
        background, peak = _background(rng, (crop, crop), px)
        neuron = ndi.gaussian_filter(img, rng.uniform(0.3, 1.0))
        neuron = np.clip(neuron, 0, None) / max(medians[k], 1e-6) * peak * rng.uniform(0.6, 1.6)
        counts = rng.poisson(neuron).astype(np.float32) + background
        counts += rng.normal(0, rng.uniform(0.0, 0.03) * peak, size=counts.shape)
        spines, _ = _relabel(spines, 0)
        dendrite = ((dendrite > 0) & (spines == 0)).astype(np.uint8)
        return TrainingSample(
            percentile_normalise(counts), dendrite, spines.astype(np.int32), 1.0, "yolo11"
        )

    return draw


def mixed_source(sources_and_weights: Sequence[tuple[SampleSource, float]]) -> SampleSource:
    """A source that draws from one of ``sources_and_weights`` picked by weight per sample.

    Parameters
    ----------
    sources_and_weights
        (source, weight) pairs; weights are non-negative with a positive sum.

    Returns
    -------
    SampleSource
        ``rng -> TrainingSample`` from the picked source.
    """
    sources = [s for s, _ in sources_and_weights]
    weights = np.asarray([float(w) for _, w in sources_and_weights], dtype=np.float64)
    if not sources or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("mixed_source needs sources with non-negative weights, sum > 0")
    p = weights / weights.sum()

    def draw(rng: np.random.Generator) -> TrainingSample:
        return sources[int(rng.choice(len(sources), p=p))](rng)

    return draw
