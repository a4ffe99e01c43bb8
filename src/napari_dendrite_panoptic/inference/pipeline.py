"""Panoptic inference: image stack in, dendrite mask + spine instances + per-spine table out.

normalise (percentiles over the stack) ▸ resample each plane to the model's native pixel size ▸
overlapping tiles ▸ FCN (dendrite probability, blended) + Mask R-CNN (spine instances, kept by the
tile whose core holds their centre) ▸ resample back ▸ link spines across neighbouring planes into
3D objects ▸ panoptic merge (every voxel is background, dendrite or exactly one spine).

:func:`iter_predict` is a generator of :class:`ProgressEvent` that ends with a
:class:`PanopticResult`; the GUI and the CLI both drive it and can stop between tiles.
:func:`predict` runs it to the end. This module never imports napari or Qt.

Where the steps live: reading, normalising and resampling the planes (:class:`PlaneReader`,
:func:`as_zyx`, :func:`stack_percentiles`, :func:`resize`) in
:mod:`napari_dendrite_panoptic.plane_reader`; the networks over one plane, tile by tile and in
mirror views (:func:`plane_pass`, :func:`run_networks`, :func:`configure_detector`,
``EMPTY_TILE_PROB``, ``MASK_OFFSET_PX``) in :mod:`napari_dendrite_panoptic.tile_passes` (tests
that replace the networks patch ``tile_passes.run_networks``); memory guarding (the up-front RAM
check, recognising out-of-memory errors, retrying with smaller tiles or on the CPU;
:class:`OutOfMemory`, :func:`is_out_of_memory` and :func:`memory_needed`, re-exported here) in
:mod:`napari_dendrite_panoptic.memory_guard`. This module keeps the job's settings, its events
and result, and the plane loop that drives them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..core import as_zyx
from ..errors import InputError
from ..models import LoadedModels, load_models
from .config import InferenceConfig, PanopticResult, ProgressEvent
from .dendrite_depth import trim_dendrite_depth
from .flips import FLIP_VIEWS
from .memory import OutOfMemory, after_out_of_memory, check_memory, is_out_of_memory
from .planes import PlaneReader, resize, stack_percentiles
from .spine_table import SpineTableAccumulator, spine_table
from .tile_passes import plane_pass
from .tiling import plane_tiles
from .zlink import PlaneLinker, trim_out_of_focus

logger = logging.getLogger(__name__)


MAX_NATIVE_PIXELS = 1 << 30
"""Largest plane (px) after resampling to the model's pixel size; beyond it the pixel size is
surely wrong (e.g. nm taken for µm)."""


def iter_predict(
    image: Any,
    voxel_size_um: tuple[float, float, float] | None,
    config: InferenceConfig | None = None,
    models: LoadedModels | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    plane_sink: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> Iterator[ProgressEvent | PanopticResult]:
    """Segment a plane or stack, yielding progress events, then the :class:`PanopticResult`.

    Parameters
    ----------
    image
        (Y, X) or (Z, Y, X) array of any real dtype; lazy arrays (zarr, memmap, dask) are read
        plane by plane.
    voxel_size_um
        (z, y, x) voxel size in µm, or None when unknown (then the model's native pixel size is
        assumed, and ``pixel_size_source`` says "assumed").
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
    """
    cfg = config or InferenceConfig()
    volume = as_zyx(image)
    nz, ny, nx = (int(s) for s in volume.shape)
    if nz < 1:
        raise InputError(f"the image holds no plane (shape {tuple(image.shape)})")
    if ny < 2 or nx < 2:
        raise InputError(f"image planes of {ny}x{nx} px are too small to segment")
    dtype = np.dtype(getattr(volume, "dtype", np.float32))
    if dtype.kind not in "uifb":
        raise InputError(f"image dtype {dtype} is not a real number type")
    models = models or load_models(cfg.model, cfg.device)
    native = models.card.pixel_size_um
    if cfg.pixel_size_um is not None:
        px, source = float(cfg.pixel_size_um), "pixel_size_um parameter"
        vz = float(voxel_size_um[0]) if voxel_size_um else 1.0
    elif voxel_size_um is not None:
        vz, px, source = float(voxel_size_um[0]), float(voxel_size_um[-1]), "image metadata"
    else:
        vz, px, source = 1.0, native, "assumed (model native pixel size)"
    if not (px > 0 and np.isfinite(px)):
        raise InputError(f"pixel size must be a positive number of µm, got {px}")
    voxel = (vz, px, px)
    scale = px / native
    if not (ny * scale) * (nx * scale) <= MAX_NATIVE_PIXELS:  # also catches an infinite scale
        raise InputError(
            f"a pixel size of {px:g} µm is {scale:.3g} times the model's {native:g} µm: each "
            f"{ny}x{nx} px plane would become {ny * scale:.4g}x{nx * scale:.4g} px; check the "
            "pixel size"
        )
    nh, nw = max(int(round(ny * scale)), 8), max(int(round(nx * scale)), 8)
    check_memory(0 if plane_sink else nz, ny, nx, nh, nw)
    norm = models.card.normalisation
    score = cfg.spine_score_threshold
    if score is None:
        score = float(models.card.inference.get("spine_score_threshold", 0.5))
    try:
        lo, hi = stack_percentiles(volume, float(norm["low"]), float(norm["high"]))
    except MemoryError:
        raise OutOfMemory(
            f"not enough memory to read the image's {ny}x{nx} px planes: close other programs "
            "or crop the image"
        ) from None
    span = hi - lo if hi > lo else 1.0

    def tiles_per_plane(tile: int) -> int:
        _, _, _, ys, xs = plane_tiles(nh, nw, tile, cfg.tile_overlap)
        return len(ys) * len(xs) * (len(FLIP_VIEWS) if cfg.test_time_flips else 1)

    tile = cfg.tile_size
    notices: list[str] = []
    total = tiles_per_plane(tile) * nz
    done = 0
    yield ProgressEvent(0, total, f"{nz} plane(s), {ny}x{nx} px at {px:.4g} µm/px")
    dendrite = spines = None
    if plane_sink is None:
        dendrite = np.zeros((nz, ny, nx), dtype=np.uint8)
        spines = np.zeros((nz, ny, nx), dtype=np.uint32)
    linker = PlaneLinker(cfg.link_iou)
    table_sums = SpineTableAccumulator()
    table_sums.n_planes = nz

    def finish_plane(z: int, dendrite_plane: np.ndarray, local: np.ndarray, scores: list) -> None:
        """Link the plane's spines to the plane before, let spines win over dendrite, hand on."""
        ids = linker.add(local, scores)
        dendrite_plane[ids > 0] = 0
        table_sums.add(z, ids)
        if plane_sink is not None:
            plane_sink(z, dendrite_plane, ids)
        else:
            dendrite[z], spines[z] = dendrite_plane, ids

    planes = PlaneReader(volume, lo, span, (nh, nw), models.card.input_planes // 2)

    uniform: list[float] = []
    for z in range(nz):
        planes.forget_before(z)
        raw = planes.raw(z)
        if raw.min() == raw.max():  # nothing to see (e.g. all zero): no dendrite, no spine
            uniform.append(float(raw.flat[0]))
            empty = np.zeros((ny, nx), dtype=np.uint8)
            finish_plane(z, empty, np.zeros((ny, nx), dtype=np.int32), [])
            done += tiles_per_plane(tile)
            yield ProgressEvent(done, total, f"plane {z + 1}/{nz}: uniform, skipped")
            continue
        native_plane = planes.native(z)
        while True:  # until the plane is done; after an out-of-memory error, again smaller
            done_before = done
            passes = None
            try:
                passes = plane_pass(
                    native_plane.to(models.device), models, cfg, score, should_stop, tile
                )
                while True:
                    try:
                        done += next(passes)
                    except StopIteration as finished:
                        prob, labels, scores = finished.value
                        break
                    yield ProgressEvent(done, total, f"plane {z + 1}/{nz}")
                break
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if passes is not None:
                    passes.close()
                del passes
                done = done_before
                models, tile, warning = after_out_of_memory(
                    models, tile, cfg.tile_size, (ny, nx), (nh, nw)
                )
                logger.warning(warning)
                notices.append(warning)
                total = done + tiles_per_plane(tile) * (nz - z)
                yield ProgressEvent(done, total, f"plane {z + 1}/{nz}", warning=warning)
        prob_full = resize(prob[None, None].float().cpu(), (ny, nx))[0, 0].numpy()
        lab_full = resize(torch.from_numpy(labels)[None, None].float(), (ny, nx), "nearest")
        lab_full = lab_full[0, 0].numpy().astype(np.int32)
        finish_plane(z, (prob_full >= cfg.dendrite_threshold).astype(np.uint8), lab_full, scores)
    if len(uniform) == nz:
        value = f"every pixel is {uniform[0]:g}" if len(set(uniform)) == 1 else "uniform planes"
        warning = f"The image holds no structure ({value}): nothing to segment."
        notices.append(warning)
        yield ProgressEvent(done, total, "", warning=warning)
    trim_dendrite = nz > 1 and cfg.dendrite_depth_tolerance is not None
    trim_spines = nz > 1 and cfg.spine_focus_fraction > 0
    kept_dendrite, kept_spines = dendrite, spines  # in memory, or kept on disk by the sink
    if plane_sink is not None and (trim_dendrite or trim_spines):
        written = getattr(plane_sink, "written", None)
        if written is None:
            notices.append("spines and dendrite were not trimmed to their in-focus planes")
            trim_dendrite = trim_spines = False
        else:
            kept_dendrite = written("dendrite") if trim_dendrite else None
            kept_spines = written("spines") if trim_spines else None

    def background_free(z: int) -> np.ndarray:
        return np.nan_to_num(np.asarray(volume[z], dtype=np.float32) - lo)

    if trim_dendrite:
        trim_dendrite_depth(kept_dendrite, background_free, voxel, cfg.dendrite_depth_tolerance)
    if trim_spines:
        trim_out_of_focus(kept_spines, background_free, cfg.spine_focus_fraction)
        table = spine_table(kept_spines, linker.scores, voxel)
    else:
        table = table_sums.table(linker.scores, voxel)
    for kept in (kept_dendrite, kept_spines):  # a sink's memory maps: on disk before it streams
        if isinstance(kept, np.memmap):
            kept.flush()
    params = {
        k: getattr(cfg, k)
        for k in cfg.__dataclass_fields__  # type: ignore[attr-defined]
    }
    params["device_used"] = str(models.device)
    params["tile_size_used"] = tile
    params["warnings"] = notices
    params["spine_score_threshold_used"] = score
    yield PanopticResult(
        dendrite=dendrite,
        spines=spines,
        table=table,
        voxel_size_um=voxel,
        model_name=models.card.name,
        pixel_size_source=source,
        parameters=params,
    )


def predict(
    image: Any,
    voxel_size_um: tuple[float, float, float] | None = None,
    config: InferenceConfig | None = None,
    models: LoadedModels | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PanopticResult:
    """Run :func:`iter_predict` to the end and return its result."""
    result = None
    for event in iter_predict(image, voxel_size_um, config, models, should_stop):
        if isinstance(event, PanopticResult):
            result = event
    assert result is not None
    return result
