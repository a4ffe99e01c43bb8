"""Stacks segmented through projections: each spine found once, in the planes where it is.

A two-photon or confocal stack blurs every structure over several planes (the axial PSF is 3-10
times the lateral one), so a network that sees one plane at a time finds the same spine again
in the neighbouring planes and calls the shaft's out-of-focus blobs spines. Here the networks
see maximum-intensity projections instead, as a user looks at a stack:

1. **Plan** (:func:`plan_stack`): the whole stack as one projection when it is thin (at most
   ``slab_um`` deep), else overlapping slabs ``slab_um`` thick, half a slab apart; one plane
   goes the 2D way; an unknown z-step gets 4-plane slabs (the rule lives in ``core/slabs.py``,
   shared with fine-tuning on corrected stacks).
2. **Detect** on each slab's projection with both networks (:func:`.steps.segment_plane`).
3. **Lift** each 2D spine to 3D (:func:`lift_spines`): its light profile along z inside its
   footprint (minus each plane's background) peaks in one plane in or near its slab; the spine
   keeps the contiguous planes around the peak where the profile stays at or above
   ``lift_fraction`` of the peak.
4. **Merge** the spines that overlapping slabs found twice (:func:`merge_spines`): same
   footprint (IoU ≥ :data:`MERGE_IOU`) and peaks at most half a slab apart; the best score
   stays. Spines of two dendrites crossing at different depths peak in different planes and
   stay apart.
5. **Assemble**: one id per spine through its planes; the dendrite, found once on the
   projection of the whole stack (one more 2D image when there are several slabs), keeps in
   each (y, x) column the planes where the light reaches :data:`DENDRITE_LIFT_FRACTION` of the
   column's brightest, trimmed to a tube-shaped shaft
   (:func:`.dendrite_depth.trim_dendrite_depth`); spines win over dendrite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..core import STACK_MODES, slab_planes, slab_ranges
from ..errors import Cancelled
from ..models import LoadedModels
from .config import InferenceConfig, PanopticResult, ProgressEvent
from .memory import OutOfMemory
from .planes import PlaneReader, reading_dtype
from .steps import (
    PlaneAssembler,
    Run,
    assembled_result,
    back_to_input_grid,
    intensity_range,
    run_parameters,
    segment_plane,
    trim_in_depth,
)

DENDRITE_LIFT_FRACTION = 0.7
"""A projected dendrite keeps, in each (y, x) column, the planes where the light reaches this
fraction of the column's brightest (then the tube trim): chosen on tuning stacks of both
generators (mean dendrite IoU 0.63 against 0.59 at 0.5 and 0.60 at 0.9)."""

MERGE_IOU = 0.3
"""Footprint IoU above which two detections of overlapping slabs are one spine."""


@dataclass(frozen=True)
class StackPlan:
    """How a stack is segmented: ``mode`` ("planes", "slabs" or "projection"), the slabs as
    [first, last) plane ranges, and the reason, in words, for the run record and the user."""

    mode: str
    slabs: tuple[tuple[int, int], ...]
    reason: str
    warning: str = ""


def plan_stack(mode: str, nz: int, z_step_um: float | None, slab_um: float) -> StackPlan:
    """The plan for a stack of ``nz`` planes ``z_step_um`` apart (None: unknown).

    ``auto`` takes one projection when the stack is at most ``slab_um`` deep, else slabs of
    ``slab_um``; a single plane always goes the 2D (``planes``) way.
    """
    if mode not in STACK_MODES:
        raise ValueError(f"stack mode must be one of {', '.join(STACK_MODES)}, got {mode!r}")
    if nz <= 1:
        return StackPlan("planes", ((0, 1),), "a single plane")
    if mode == "planes":
        return StackPlan("planes", tuple((z, z + 1) for z in range(nz)), "every plane on its own")
    if z_step_um is None:
        planes = slab_planes(nz, None)
        if mode == "projection":
            return StackPlan("projection", ((0, nz),), "one projection of the whole stack")
        return StackPlan(
            "slabs",
            slab_ranges(nz, planes),
            f"z-step unknown: projections of {planes}-plane slabs",
            f"The stack stores no z-step: it is segmented in slabs of {planes} planes. Give "
            "the voxel size (the layer's scale, or calibrate the file) to fit the slabs to it.",
        )
    depth = nz * z_step_um
    if mode == "projection" or (mode == "auto" and depth <= slab_um):
        why = f"{depth:.3g} µm deep" + (
            f", within one {slab_um:g} µm slab" if mode == "auto" else ""
        )
        return StackPlan("projection", ((0, nz),), f"one projection of the whole stack ({why})")
    planes = slab_planes(nz, z_step_um, slab_um)
    return StackPlan(
        "slabs",
        slab_ranges(nz, planes),
        f"{depth:.3g} µm deep at {z_step_um:.3g} µm steps: projections of {planes}-plane slabs "
        f"({planes * z_step_um:.3g} µm), half a slab apart",
    )


@dataclass
class LiftedSpine:
    """One spine in 3D: its (Y, X) footprint inside ``box`` (y0, y1, x0, x1), its planes
    [z0, z1), the plane where its light peaks, its score."""

    box: tuple[int, int, int, int]
    footprint: np.ndarray
    z0: int
    z1: int
    peak: int
    score: float


def iter_predict_slabs(
    volume: Any,
    voxel: tuple[float, float, float],
    source: str,
    native_shape: tuple[int, int],
    plan: StackPlan,
    cfg: InferenceConfig,
    models: LoadedModels,
    score: float,
    should_stop: Callable[[], bool],
    plane_sink: Callable[[int, np.ndarray, np.ndarray], None] | None,
) -> Iterator[ProgressEvent | PanopticResult]:
    """Segment a (Z, Y, X) stack through the projections of ``plan`` (see the module's steps);
    yields progress events, then the :class:`PanopticResult`. Arguments as prepared by
    :func:`.pipeline.iter_predict`."""
    nz, ny, nx = (int(s) for s in volume.shape)
    planes = _Planes(volume)
    # the dendrite comes from the projection of the whole stack, the spines from each slab's
    views = plan.slabs if len(plan.slabs) == 1 else (*plan.slabs, (0, nz))
    projections, plane_background, peak_light = _project(planes, views)
    label = "slab" if plan.mode == "slabs" else "projection"
    run = Run(cfg, native_shape, len(views), cfg.tile_size, label=label)
    yield run.event(f"{nz} planes, {ny}x{nx} px: {plan.reason}")
    if projections.min() == projections.max():  # nothing to see (e.g. all zero)
        yield from _empty_result(
            volume, voxel, source, cfg, models, run, score, projections, plane_sink
        )
        return
    if plan.warning:
        run.notices.append(plan.warning)
        yield run.event("", warning=plan.warning)
    # the slabs are normalised together, as the planes of a stack are (a slab of haze stays
    # dim); the projection of the whole stack on its own, as the 2D image a user would see
    n = len(plan.slabs)
    ranges = [intensity_range(projections[:n], models.card.normalisation)] * n
    if len(views) > n:
        ranges.append(intensity_range(projections[n:], models.card.normalisation))
    detections: list[Detection] = []  # each slab's spines, as crops (not whole planes)
    for k, view in enumerate(views):
        lo, span = ranges[k]
        reach = models.card.input_planes // 2  # a projection repeats itself as its neighbours
        reader = PlaneReader(projections[k : k + 1], lo, span, native_shape, reach)
        prob, labels, scores, models = yield from segment_plane(
            reader.native(0), models, score, should_stop, run, k, (ny, nx)
        )
        if should_stop():  # between two projections too, not only between tiles
            raise Cancelled("stopped by the user")
        dendrite, local, _ = back_to_input_grid(prob, labels, (ny, nx), cfg)
        if k < len(plan.slabs):
            detections += slab_detections(local, scores, view)
    # after the loop ``dendrite`` is the last view's: the whole stack's projection
    found = lift_spines(planes, plane_background, detections, cfg.lift_fraction)
    spines = merge_spines(found, max(1, (plan.slabs[0][1] - plan.slabs[0][0]) // 2))
    out = PlaneAssembler((nz, ny, nx), plane_sink)
    for z in range(nz):
        # a column's shaft is in the planes where its light reaches a fraction of its
        # brightest plane's, as a spine's is
        in_depth = _light(planes, z, plane_background) >= DENDRITE_LIFT_FRACTION * peak_light
        out.finish(z, dendrite & in_depth.astype(np.uint8), _paint_plane(spines, z, (ny, nx)))
    out.scores.update({i + 1: s.score for i, s in enumerate(spines)})
    lifted = replace(cfg, spine_focus_fraction=0.0)  # each spine has its planes already
    lo = float(np.min(plane_background)) + (planes.offset or 0.0)
    table = trim_in_depth(out, volume, lo, voxel, lifted, run.notices)
    params = run_parameters(cfg, models, run, score)
    params.update(stack_mode_used=plan.mode, stack_mode_reason=plan.reason)
    params["slabs"] = [list(s) for s in plan.slabs]
    yield assembled_result(out, table, voxel, models, source, params)


def _project(
    volume: Any, slabs: tuple[tuple[int, int], ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_slabs, Y, X) maximum-intensity projections of the [first, last) plane ranges
    ``slabs``, in the planes' ``exact_dtype`` (uint16 for a 16-bit stack); each plane's
    background (its 20th percentile over a subsample), (Z,); and the brightest light of each
    (y, x) column above its plane's background, (Y, X) float32 (lightly smoothed); reading
    every plane once."""
    nz, ny, nx = (int(s) for s in volume.shape)
    kept = volume.exact_dtype  # 2 bytes a pixel for a 16-bit stack, not 4: same values
    lowest = np.iinfo(kept).min if kept.kind in "iu" else -np.inf
    projections = np.full((len(slabs), ny, nx), lowest, kept)
    background = np.zeros(nz, np.float32)
    peak_light = np.full((ny, nx), -np.inf, np.float32)
    step = max(1, (ny * nx) // 250_000)
    for z in range(nz):
        plane = volume[z]
        finite = np.isfinite(plane)
        plane = np.where(finite, plane, 0.0) if not finite.all() else plane
        background[z] = np.percentile(plane.ravel()[::step], 20)
        np.maximum(peak_light, ndi.gaussian_filter(plane, 1.0) - background[z], out=peak_light)
        plane = plane.astype(kept, copy=False)
        for k, (z0, z1) in enumerate(slabs):
            if z0 <= z < z1:
                np.maximum(projections[k], plane, out=projections[k])
    return projections, background, peak_light


class _Planes:
    """The planes of a (Z, Y, X) volume read as float32 (Y, X) arrays: ``planes[z]``;
    ``exact_dtype`` holds them without loss (the stack's own for 8- and 16-bit integers). Wide
    integers are read in float64 and the first plane's minimum is taken off every plane, so an
    int32 stack with a large offset keeps its grey levels; a plane that does not fit in memory
    is an :class:`OutOfMemory` with a clear reason."""

    def __init__(self, volume: Any) -> None:
        self.volume, self.shape = volume, tuple(int(s) for s in volume.shape)
        self.dtype = reading_dtype(getattr(volume, "dtype", np.float32))
        self.offset: float | None = None
        # planes of 8- and 16-bit integers hold integers (no offset): kept exactly in that dtype
        source = np.dtype(getattr(volume, "dtype", np.float32))
        self.exact_dtype = source if source.kind in "iu" and source.itemsize <= 2 else self.dtype

    def __getitem__(self, z: int) -> np.ndarray:
        try:
            plane = np.asarray(self.volume[z], dtype=self.dtype)
        except MemoryError:
            ny, nx = self.shape[1:]
            raise OutOfMemory(
                f"not enough memory to read plane {z + 1} of {ny}x{nx} px: close other programs "
                "or crop the image"
            ) from None
        if self.offset is None:
            low = np.nanmin(plane) if self.dtype == np.float64 and np.isfinite(plane).any() else 0
            self.offset = float(low)
        return (
            (plane - self.offset).astype(np.float32, copy=False)
            if self.offset
            else plane.astype(np.float32, copy=False)
        )


def _empty_result(
    volume: Any,
    voxel: tuple[float, float, float],
    source: str,
    cfg: InferenceConfig,
    models: LoadedModels,
    run: Run,
    score: float,
    projections: np.ndarray,
    plane_sink: Callable[[int, np.ndarray, np.ndarray], None] | None,
) -> Iterator[ProgressEvent | PanopticResult]:
    """The result of a stack without structure: no dendrite, no spine, and why."""
    run.notices.append(
        f"The image holds no structure (every pixel is {float(projections.flat[0]):g}): "
        "nothing to segment."
    )
    run.done = run.total
    yield run.event("", warning=run.notices[-1])
    nz, ny, nx = (int(s) for s in volume.shape)
    out = PlaneAssembler((nz, ny, nx), plane_sink)
    for z in range(nz):
        out.finish(z, np.zeros((ny, nx), np.uint8), np.zeros((ny, nx), np.uint32))
    table = out.table_sums.table(out.scores, voxel)
    yield assembled_result(
        out, table, voxel, models, source, run_parameters(cfg, models, run, score)
    )


def _light(volume: Any, z: int, plane_background: np.ndarray) -> np.ndarray:
    """Plane ``z``'s light above its background, lightly smoothed, (Y, X) float32."""
    return ndi.gaussian_filter(np.nan_to_num(volume[z]), 1.0) - plane_background[z]


@dataclass(frozen=True)
class Detection:
    """A spine found on a slab's projection: its (Y, X) ``footprint`` inside ``box`` (two
    slices), its score, and the slab [first, last)."""

    box: tuple[slice, slice]
    footprint: np.ndarray
    score: float
    slab: tuple[int, int]


def slab_detections(
    labels: np.ndarray, scores: list[float], slab: tuple[int, int]
) -> list[Detection]:
    """The spines of a slab's (Y, X) ``labels`` (ids 1..n; ``scores[i - 1]`` id i's, 1.0 where
    missing) as crops, in id order."""
    return [
        Detection(box, labels[box] == sid, scores[sid - 1] if sid - 1 < len(scores) else 1.0, slab)
        for sid, box in enumerate(ndi.find_objects(labels), start=1)
        if box is not None
    ]


def lift_spines(
    volume: Any,
    plane_background: np.ndarray,
    detections: list[Detection],
    fraction: float,
) -> list[LiftedSpine]:
    """The slabs' ``detections`` (:func:`slab_detections`) lifted to 3D, reading every plane of
    ``volume`` once for all of them. A spine's light profile along z inside its footprint,
    minus each plane's background (``plane_background``, (Z,) in image units), peaks in a
    plane of its slab widened by half the slab's thickness on each side (the projection holds
    its neighbours' blur); the spine keeps the contiguous planes around the peak at or above
    ``fraction`` of it. A spine whose light still rises past that range belongs to another slab
    and is dropped."""
    if not detections:
        return []
    nz = int(volume.shape[0])
    profiles = np.zeros((len(detections), nz), np.float64)
    for z in range(nz):
        plane = np.asarray(volume[z], dtype=np.float32)
        for j, found in enumerate(detections):
            profiles[j, z] = float(plane[found.box][found.footprint].mean()) - plane_background[z]
    lifted = []
    for found, profile in zip(detections, profiles, strict=True):
        span = _planes_of(profile, found.slab, fraction)
        if span is None:
            continue  # its light peaks beyond this slab: another slab's spine, blurred here
        ys, xs = found.box
        box = (ys.start, ys.stop, xs.start, xs.stop)
        lifted.append(LiftedSpine(box, found.footprint, *span, found.score))
    return lifted


def _planes_of(
    profile: np.ndarray, slab: tuple[int, int], fraction: float
) -> tuple[int, int, int] | None:
    """(first plane, last plane + 1, peak plane) of a spine's (Z,) light profile found in
    ``slab``, or None when the light still rises past the slab's reach."""
    nz = len(profile)
    reach = (slab[1] - slab[0]) // 2  # a slab's projection holds the blur of its neighbours
    z0, z1 = max(0, slab[0] - reach), min(nz, slab[1] + reach)
    peak = z0 + int(np.argmax(profile[z0:z1]))
    if (peak == z0 > 0 and profile[z0 - 1] > profile[peak]) or (
        peak == z1 - 1 < nz - 1 and profile[z1] > profile[peak]
    ):
        return None
    top = profile[peak]
    low = high = peak
    if top > 0:
        while low > 0 and profile[low - 1] >= fraction * top:
            low -= 1
        while high < nz - 1 and profile[high + 1] >= fraction * top:
            high += 1
    return low, high + 1, peak


def merge_spines(spines: list[LiftedSpine], max_peak_distance: int) -> list[LiftedSpine]:
    """The spines left when each one found twice (footprint IoU ≥ :data:`MERGE_IOU`, peaks at
    most ``max_peak_distance`` planes apart) keeps only its best-scored detection; ordered by
    peak plane, then y, then x (their ids 1..n follow this order)."""
    kept: list[LiftedSpine] = []
    for s in sorted(spines, key=lambda s: -s.score):
        if not any(
            abs(s.peak - k.peak) <= max_peak_distance and _footprint_iou(s, k) >= MERGE_IOU
            for k in kept
        ):
            kept.append(s)
    return sorted(kept, key=lambda s: (s.peak, s.box[0], s.box[2]))


def _footprint_iou(a: LiftedSpine, b: LiftedSpine) -> float:
    y0, y1 = max(a.box[0], b.box[0]), min(a.box[1], b.box[1])
    x0, x1 = max(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if y0 >= y1 or x0 >= x1:
        return 0.0
    ia = a.footprint[y0 - a.box[0] : y1 - a.box[0], x0 - a.box[2] : x1 - a.box[2]]
    ib = b.footprint[y0 - b.box[0] : y1 - b.box[0], x0 - b.box[2] : x1 - b.box[2]]
    inter = int(np.count_nonzero(ia & ib))
    return inter / (int(a.footprint.sum()) + int(b.footprint.sum()) - inter)


def _paint_plane(spines: list[LiftedSpine], z: int, shape: tuple[int, int]) -> np.ndarray:
    """Plane ``z``'s (Y, X) uint32 spine ids; where two spines meet, the better score wins."""
    ids = np.zeros(shape, np.uint32)
    best = np.zeros(shape, np.float32)
    for i, s in enumerate(spines, start=1):
        if s.z0 <= z < s.z1:
            y0, y1, x0, x1 = s.box
            win = s.footprint & (s.score > best[y0:y1, x0:x1])
            ids[y0:y1, x0:x1][win] = i
            best[y0:y1, x0:x1][win] = s.score
    return ids
