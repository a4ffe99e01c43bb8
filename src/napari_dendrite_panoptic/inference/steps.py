"""The steps that every stack mode shares: check the image, find its pixel size and intensity
range, run both networks over one 2D image with the out-of-memory retry, bring the result back
to the input's grid, and record the run's parameters. :mod:`.pipeline` (plane by plane) and
:mod:`.slabs` (projections of slabs of planes) are loops over these steps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core import as_zyx
from ..errors import InputError
from ..models import LoadedModels
from .config import InferenceConfig, PanopticResult, ProgressEvent
from .dendrite_depth import trim_dendrite_depth
from .flips import FLIP_VIEWS
from .memory import OutOfMemory, after_out_of_memory, is_out_of_memory
from .pixel_size import ESTIMATED, PixelSizeEstimate
from .planes import reading_dtype, resize, stack_percentiles
from .spine_table import SpineTableAccumulator, spine_table
from .tile_passes import plane_pass
from .tiling import plane_tiles
from .zlink import trim_out_of_focus

logger = logging.getLogger(__name__)

MAX_NATIVE_PIXELS = 1 << 30
"""Largest plane (px) after resampling to the model's pixel size; beyond it the pixel size is
surely wrong (e.g. nm taken for µm)."""
MIN_SCALE = 1 / 20
"""Pixel sizes below this fraction of the model's are refused: spines would shrink to a pixel
or less (e.g. a size in m or nm read as µm)."""


def checked_volume(image: Any) -> Any:
    """The image as (Z, Y, X); :class:`InputError` for no plane, tiny planes or no numbers."""
    volume = as_zyx(image)
    nz, ny, nx = (int(s) for s in volume.shape)
    if nz < 1:
        raise InputError(f"the image holds no plane (shape {tuple(image.shape)})")
    if ny < 2 or nx < 2:
        raise InputError(f"image planes of {ny}x{nx} px are too small to segment")
    dtype = np.dtype(getattr(volume, "dtype", np.float32))
    if dtype.kind not in "uifb":
        raise InputError(f"image dtype {dtype} is not a real number type")
    return volume


def pixel_size(
    cfg: InferenceConfig,
    voxel_size_um: tuple[float, float, float] | None,
    native: float,
    ny: int,
    nx: int,
    estimate: PixelSizeEstimate | None = None,
) -> tuple[tuple[float, float, float], str, tuple[int, int]]:
    """The run's voxel size (z, y, x) µm, where its pixel size came from, and the plane's
    (height, width) px at the model's ``native`` pixel size (µm). Without a pixel size from the
    config or the metadata, ``estimate`` (from the image) is used, else the model's."""
    if cfg.pixel_size_um is not None:
        px, source = float(cfg.pixel_size_um), "pixel_size_um parameter"
        py = px
        vz = float(voxel_size_um[0]) if voxel_size_um else 1.0
    elif voxel_size_um is not None:
        vz, py, px = (float(v) for v in voxel_size_um)
        source = "image metadata"
    elif estimate is not None:
        vz, py, px, source = 1.0, estimate.pixel_size_um, estimate.pixel_size_um, ESTIMATED
    else:
        vz, py, px, source = 1.0, native, native, "assumed (model native pixel size)"
    for size in (py, px):
        if not (size > 0 and np.isfinite(size)):
            raise InputError(f"pixel size must be a positive number of µm, got {size}")
    sy, sx = py / native, px / native  # each axis resampled by its own factor
    if not (ny * sy) * (nx * sx) <= MAX_NATIVE_PIXELS:  # also catches an infinite scale
        raise InputError(
            f"a pixel size of {max(py, px):g} µm is {max(sy, sx):.3g} times the model's "
            f"{native:g} µm: each {ny}x{nx} px plane would become {ny * sy:.4g}x{nx * sx:.4g} "
            "px; check the pixel size"
        )
    if min(sy, sx) < MIN_SCALE:
        raise InputError(
            f"a pixel size of {min(py, px):g} µm is {min(sy, sx):.3g} times the model's "
            f"{native:g} µm: each {ny}x{nx} px plane would shrink to "
            f"{ny * sy:.3g}x{nx * sx:.3g} px; plausible pixel sizes for this model are "
            f"{native * MIN_SCALE:g} to {native / MIN_SCALE:g} µm: check the pixel size (in µm)"
        )
    native_shape = (max(int(round(ny * sy)), 8), max(int(round(nx * sx)), 8))
    return (vz, py, px), source, native_shape


def intensity_range(volume: Any, norm: dict) -> tuple[float, float]:
    """(low, span) of the card's normalisation percentiles over the stack, in image units."""
    try:
        lo, hi = stack_percentiles(volume, float(norm["low"]), float(norm["high"]))
    except MemoryError:
        ny, nx = volume.shape[-2:]
        raise OutOfMemory(
            f"not enough memory to read the image's {ny}x{nx} px planes: close other programs "
            "or crop the image"
        ) from None
    return lo, (hi - lo if hi > lo else 1.0)


@dataclass
class Run:
    """Progress of one run in tiles, the tile size in use, and the warnings so far; ``nz``
    2D images (planes, slabs or a projection, as ``label`` says) to segment."""

    cfg: InferenceConfig
    native_shape: tuple[int, int]
    nz: int
    tile: int
    done: int = 0
    total: int = 0
    notices: list[str] = field(default_factory=list)
    label: str = "plane"

    def __post_init__(self) -> None:
        self.total = self.tiles_per_plane() * self.nz

    def tiles_per_plane(self) -> int:
        _, _, _, ys, xs = plane_tiles(*self.native_shape, self.tile, self.cfg.tile_overlap)
        return len(ys) * len(xs) * (len(FLIP_VIEWS) if self.cfg.test_time_flips else 1)

    def event(self, message: str, warning: str = "") -> ProgressEvent:
        return ProgressEvent(self.done, self.total, message, warning=warning)


def segment_plane(
    native_plane: torch.Tensor,
    models: LoadedModels,
    score: float,
    should_stop: Callable[[], bool],
    run: Run,
    z: int,
    shape: tuple[int, int],
) -> Generator[ProgressEvent, None, tuple[torch.Tensor, np.ndarray, list, LoadedModels]]:
    """Both networks over one plane at the native pixel size, yielding progress; after an
    out-of-memory error the plane starts again with smaller tiles, then on the CPU
    (:func:`after_out_of_memory`). Returns (dendrite probability, spine labels, scores,
    the models now in use)."""
    message = f"{run.label} {z + 1}/{run.nz}"
    while True:
        done_before = run.done
        passes = None
        try:
            passes = plane_pass(
                native_plane.to(models.device), models, run.cfg, score, should_stop, run.tile
            )
            while True:
                try:
                    run.done += next(passes)
                except StopIteration as finished:
                    return (*finished.value, models)
                yield run.event(message)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if passes is not None:
                passes.close()
            del passes
            run.done = done_before
            models, run.tile, warning = after_out_of_memory(
                models, run.tile, run.cfg.tile_size, shape, run.native_shape
            )
            logger.warning(warning)
            run.notices.append(warning)
            run.total = run.done + run.tiles_per_plane() * (run.nz - z)
            yield run.event(message, warning=warning)


def back_to_input_grid(
    prob: torch.Tensor, labels: np.ndarray, shape: tuple[int, int], cfg: InferenceConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plane's dendrite mask (uint8, the probability at least ``cfg.dendrite_threshold``, which
    :func:`iter_predict` has settled), spine labels (int32) and dendrite probability (float32,
    0-1) on the input's (Y, X) grid, from the native-size probability and labels."""
    prob_full = resize(prob[None, None].float().cpu(), shape)[0, 0].numpy()
    lab_full = resize(torch.from_numpy(labels)[None, None].float(), shape, "nearest")
    lab_full = lab_full[0, 0].numpy().astype(np.int32)
    return (prob_full >= cfg.dendrite_threshold).astype(np.uint8), lab_full, prob_full


def run_parameters(cfg: InferenceConfig, models: LoadedModels, run: Run, score: float) -> dict:
    """The run's parameters for the result and the run record: the config, and what was used."""
    params = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}  # type: ignore[attr-defined]
    params["device_used"] = str(models.device)
    params["tile_size_used"] = run.tile
    params["warnings"] = run.notices
    params["spine_score_threshold_used"] = score
    return params


class PlaneAssembler:
    """Finished planes of global spine ids, spines winning over dendrite, into the (Z, Y, X)
    result or the ``plane_sink``; the spine table's sums. ``scores``: spine id → score."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        plane_sink: Callable[[int, np.ndarray, np.ndarray], None] | None,
    ) -> None:
        self.sink = plane_sink
        self.dendrite = self.spines = None
        if plane_sink is None:
            self.dendrite = np.zeros(shape, dtype=np.uint8)
            self.spines = np.zeros(shape, dtype=np.uint32)
        self.scores: dict[int, float] = {}
        self.table_sums = SpineTableAccumulator()
        self.table_sums.n_planes = shape[0]

    def finish(self, z: int, dendrite_plane: np.ndarray, ids: np.ndarray) -> None:
        """Plane ``z``: (Y, X) uint8 dendrite and uint32 spine ids; spines win, then hand on."""
        dendrite_plane[ids > 0] = 0
        self.table_sums.add(z, ids)
        if self.sink is not None:
            self.sink(z, dendrite_plane, ids)
        else:
            self.dendrite[z], self.spines[z] = dendrite_plane, ids


def trim_in_depth(
    out: PlaneAssembler,
    volume: Any,
    lo: float,
    voxel: tuple[float, float, float],
    cfg: InferenceConfig,
    notices: list[str],
) -> dict[str, np.ndarray]:
    """In a stack, trim the dendrite to the planes a tube-shaped shaft fills and each spine to
    its in-focus planes (in memory, or on the sink's files one plane at a time); returns the
    spine table."""
    nz = int(volume.shape[0])
    trim_dendrite = nz > 1 and cfg.dendrite_depth_tolerance is not None
    trim_spines = nz > 1 and cfg.spine_focus_fraction > 0
    sink_keeps_planes = out.sink is None or getattr(out.sink, "written", None) is not None
    if (trim_dendrite or trim_spines) and not sink_keeps_planes:
        notices.append("spines and dendrite were not trimmed to their in-focus planes")
        trim_dendrite = trim_spines = False
    light = _background_free(volume, lo)
    with contextlib.ExitStack() as files:
        if trim_dendrite:
            dendrite = _kept(out, "dendrite", files)
            trim_dendrite_depth(dendrite, light, voxel, cfg.dendrite_depth_tolerance)
        if trim_spines:
            spines = _kept(out, "spines", files)
            trim_out_of_focus(spines, light, cfg.spine_focus_fraction)
            return spine_table(spines, out.scores, voxel)
    return out.table_sums.table(out.scores, voxel)


def _background_free(volume: Any, lo: float) -> Callable[[int], np.ndarray]:
    """``planes(z)`` → (Y, X) float32 plane ``z`` of ``volume`` minus ``lo``, NaN as 0."""

    def planes(z: int) -> np.ndarray:
        plane = np.asarray(volume[z], dtype=reading_dtype(volume.dtype)) - lo
        return np.nan_to_num(plane).astype(np.float32, copy=False)

    return planes


def _kept(out: PlaneAssembler, which: str, files: contextlib.ExitStack) -> Any:
    """The assembled "dendrite" or "spines" (Z, Y, X): in memory, or the sink's planes on disk
    (closed, with every change written, when ``files`` closes)."""
    if out.sink is None:
        return getattr(out, which)
    planes = out.sink.written(which)
    if hasattr(planes, "__exit__"):
        files.enter_context(planes)
    return planes


def assembled_result(
    out: PlaneAssembler,
    table: dict[str, np.ndarray],
    voxel: tuple[float, float, float],
    models: LoadedModels,
    source: str,
    parameters: dict[str, Any],
) -> PanopticResult:
    """The :class:`PanopticResult` of an assembled run (arrays None when planes went to a sink)."""
    return PanopticResult(
        dendrite=out.dendrite,
        spines=out.spines,
        table=table,
        voxel_size_um=voxel,
        model_name=models.card.name,
        pixel_size_source=source,
        parameters=parameters,
    )
