"""Panoptic inference: image stack in, dendrite mask + spine instances + per-spine table out.

normalise (percentiles over the stack) ▸ resample each plane to the model's native pixel size ▸
overlapping tiles ▸ FCN (dendrite probability, blended) + Mask R-CNN (spine instances, kept by the
tile whose core holds their centre) ▸ resample back ▸ link spines across neighbouring planes into
3D objects ▸ panoptic merge (every voxel is background, dendrite or exactly one spine).

:func:`iter_predict` is a generator of :class:`ProgressEvent` that ends with a
:class:`PanopticResult`; the GUI and the CLI both drive it and can stop between tiles.
:func:`predict` runs it to the end. This module never imports napari or Qt.

The loop in :func:`iter_predict` reads as its steps: check the image (``checked_volume``),
find its pixel size (``pixel_size``) and intensity range, then per plane the networks with an
out-of-memory retry (``segment_plane``, policy in :mod:`.memory`), back to the input grid, and
linking into 3D (:class:`.zlink.PlaneLinker`, :class:`.steps.PlaneAssembler`); last the depth
trims in stacks (``trim_in_depth``). The
planes are read by :class:`.planes.PlaneReader`; the networks run tile by tile in
:mod:`.tile_passes` (tests that replace the networks patch ``tile_passes.run_networks``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..models import LoadedModels, load_models
from .config import InferenceConfig, PanopticResult, ProgressEvent
from .memory import check_memory, keep_large_blocks_off_the_heap
from .pixel_size import PixelSizeEstimate, estimate_notice, estimate_pixel_size, plausible
from .planes import PlaneReader
from .slabs import iter_predict_slabs, plan_stack
from .steps import (
    PlaneAssembler,
    Run,
    assembled_result,
    back_to_input_grid,
    checked_volume,
    intensity_range,
    pixel_size,
    run_parameters,
    segment_plane,
    trim_in_depth,
)
from .zlink import PlaneLinker

logger = logging.getLogger(__name__)


def iter_predict(
    image: Any,
    voxel_size_um: tuple[float, float, float] | None,
    config: InferenceConfig | None = None,
    models: LoadedModels | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    plane_sink: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    probability_sink: Callable[[int, np.ndarray], None] | None = None,
) -> Iterator[ProgressEvent | PanopticResult]:
    """Segment a plane or stack, yielding progress events, then the :class:`PanopticResult`.

    Parameters
    ----------
    image
        (Y, X) or (Z, Y, X) array of any real dtype; lazy arrays (zarr, memmap, dask) are read
        plane by plane.
    voxel_size_um
        (z, y, x) voxel size in µm, or None when unknown: then, unless ``config`` gives a
        pixel size, it is estimated from the dendrite width (:func:`estimate_pixel_size`;
        ``pixel_size_source`` says "estimated from dendrite width", the first event's
        ``warning`` gives the value, ``parameters["pixel_size_estimate"]`` the measurement).
    config
        Thresholds, tiling, device, model folder.
    models
        Already loaded models (else loaded from ``config.model`` on ``config.device``).
    should_stop
        Polled between tiles; raises :class:`Cancelled` when true.
    plane_sink
        Called as ``plane_sink(z, dendrite (Y, X) uint8, spines (Y, X) uint32)`` with every
        finished plane, in z order; the engine then keeps no (Z, Y, X) result, so a stack of any
        depth is segmented in the memory of a few planes, and the result's ``dendrite`` and
        ``spines`` are None (its table is complete). A sink with a ``written(which)`` method
        returning its (Z, Y, X) "dendrite" or "spines", writable, gets them trimmed after the
        last plane (``spine_focus_fraction``, ``dendrite_depth_tolerance``).
    probability_sink
        Called as ``probability_sink(z, (Y, X) float32 dendrite probability 0-1)`` for every
        plane segmented on its own (2D images, and stacks segmented plane by plane; slab and
        projection runs segment projections, not planes, and do not call it).
    """
    asked = config or InferenceConfig()
    volume = checked_volume(image)
    if plane_sink is not None:  # memory is short: planes' arrays go back to the system
        keep_large_blocks_off_the_heap()
    models = models or load_models(asked.model, asked.device)
    dendrite = asked.dendrite_threshold
    if dendrite is None:
        dendrite = models.card.threshold("dendrite_threshold")
    cfg = replace(asked, dendrite_threshold=dendrite)
    native = models.card.pixel_size_um
    notices: list[str] = []
    estimate = used = None
    if cfg.pixel_size_um is None and voxel_size_um is None:  # never a silent default
        try:
            estimate = estimate_pixel_size(volume)
            notices.append(estimate_notice(estimate, native))
            used = estimate if plausible(estimate, native) else None
        except InputError as exc:
            notices.append(f"no pixel size given and {exc}: assuming the model's {native:g} µm")
    for notice in notices:
        yield ProgressEvent(0, 1, warning=notice)
    steps = _iter_predict(
        volume, voxel_size_um, cfg, models, should_stop, plane_sink, used, probability_sink
    )
    for event in steps:
        if isinstance(event, PanopticResult):
            event.parameters["dendrite_threshold"] = asked.dendrite_threshold
            event.parameters["dendrite_threshold_used"] = dendrite
            event.parameters["warnings"] = [*notices, *event.parameters.get("warnings", [])]
            if estimate is not None:
                record = {**estimate.as_record(), "used": used is not None}
                event.parameters["pixel_size_estimate"] = record
        yield event


def _iter_predict(
    volume: Any,
    voxel_size_um: tuple[float, float, float] | None,
    cfg: InferenceConfig,
    models: LoadedModels,
    should_stop: Callable[[], bool],
    plane_sink: Callable[[int, np.ndarray, np.ndarray], None] | None,
    estimate: PixelSizeEstimate | None,
    probability_sink: Callable[[int, np.ndarray], None] | None = None,
) -> Iterator[ProgressEvent | PanopticResult]:
    """:func:`iter_predict` once the pixel size's source is settled (``estimate``: the one to
    use, None for the model's when nothing else gives one)."""
    nz, ny, nx = (int(s) for s in volume.shape)
    native = models.card.pixel_size_um
    voxel, source, native_shape = pixel_size(cfg, voxel_size_um, native, ny, nx, estimate)
    check_memory(0 if plane_sink else nz, ny, nx, *native_shape)
    score = cfg.spine_score_threshold
    if score is None:
        score = models.card.threshold("spine_score_threshold")
    z_step = voxel[0] if voxel_size_um is not None else None
    plan = plan_stack(cfg.stack_mode, nz, z_step, cfg.slab_um)
    if plan.mode != "planes":
        yield from iter_predict_slabs(
            volume, voxel, source, native_shape, plan, cfg, models, score, should_stop, plane_sink
        )
        return
    lo, span = intensity_range(volume, models.card.normalisation)
    run = Run(cfg, native_shape, nz, cfg.tile_size)
    yield run.event(f"{nz} plane(s), {ny}x{nx} px at {voxel[-1]:.4g} µm/px")
    out = PlaneAssembler((nz, ny, nx), plane_sink)
    linker = PlaneLinker(cfg.link_iou)
    out.scores = linker.scores
    planes = PlaneReader(volume, lo, span, native_shape, models.card.input_planes // 2)
    uniform: list[float] = []
    for z in range(nz):
        planes.forget_before(z)
        raw = planes.raw(z)
        if raw.min() == raw.max():  # nothing to see (e.g. all zero): no dendrite, no spine
            uniform.append(float(raw.flat[0]))
            ids = linker.add(np.zeros((ny, nx), np.int32), [])
            out.finish(z, np.zeros((ny, nx), np.uint8), ids)
            if probability_sink is not None:
                probability_sink(z, np.zeros((ny, nx), np.float32))
            run.done += run.tiles_per_plane()
            yield run.event(f"plane {z + 1}/{nz}: uniform, skipped")
            continue
        prob, labels, scores, models = yield from segment_plane(
            planes.native(z), models, score, should_stop, run, z, (ny, nx)
        )
        dendrite_plane, local, probability = back_to_input_grid(prob, labels, (ny, nx), cfg)
        if probability_sink is not None:
            probability_sink(z, probability)
        out.finish(z, dendrite_plane, linker.add(local, scores))
    if len(uniform) == nz:
        value = f"every pixel is {uniform[0]:g}" if len(set(uniform)) == 1 else "uniform planes"
        run.notices.append(f"The image holds no structure ({value}): nothing to segment.")
        yield run.event("", warning=run.notices[-1])
    table = trim_in_depth(out, volume, lo, voxel, cfg, run.notices)
    params = run_parameters(cfg, models, run, score)
    params.update(stack_mode_used=plan.mode, stack_mode_reason=plan.reason)
    yield assembled_result(out, table, voxel, models, source, params)


def predict(
    image: Any,
    voxel_size_um: tuple[float, float, float] | None = None,
    config: InferenceConfig | None = None,
    models: LoadedModels | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    probability_sink: Callable[[int, np.ndarray], None] | None = None,
) -> PanopticResult:
    """Run :func:`iter_predict` to the end and return its result."""
    result = None
    steps = iter_predict(image, voxel_size_um, config, models, should_stop, None, probability_sink)
    for event in steps:
        if isinstance(event, PanopticResult):
            result = event
    assert result is not None
    return result
