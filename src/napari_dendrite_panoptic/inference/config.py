"""What a segmentation run takes and gives: :class:`InferenceConfig`, the typed :class:`ProgressEvent` and the :class:`PanopticResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import SLAB_UM, STACK_MODES
from ..errors import InputError


@dataclass(frozen=True)
class InferenceConfig:
    """Settings of one inference job (validated on construction).

    ``model``: a model folder, or None for the bundled model. ``pixel_size_um``: overrides the
    image's (y, x) pixel size. ``tile_size`` is the largest tile; a plane is cut into as few
    tiles as that allows, each as small as possible (see :func:`tile_layout`).
    ``spine_score_threshold`` and ``dendrite_threshold`` (0-1) None use the thresholds
    recommended in the model card (``inference.spine_score_threshold`` and
    ``inference.dendrite_threshold``, else 0.5 each). Sizes in px are at the
    model's native pixel size. ``spine_focus_fraction``: in a stack, each spine keeps only the
    planes where its mean intensity is at least this fraction of its brightest plane's (0 keeps
    all; see :func:`zlink.trim_out_of_focus`). ``dendrite_depth_tolerance``: in a stack, each
    (y, x) column keeps the dendrite planes a tube-shaped shaft fills, plus this many planes
    (None keeps all; see :func:`dendrite_depth.trim_dendrite_depth`). With a ``plane_sink`` both
    trims need the sink's ``written(which)`` (as :class:`streaming.DiskPlaneSink` has).
    ``test_time_flips``: segment each plane in its four mirror views and let them vote
    (:mod:`.flips`; four times the network time for a small gain, docs/models.md).
    ``stack_mode``: how a stack is segmented (:mod:`.slabs`): ``auto``, ``slabs`` (projections
    of overlapping slabs ``slab_um`` thick), ``projection`` (the whole stack at once) or
    ``planes`` (every plane, linked across planes); ``lift_fraction``: a projected spine keeps
    the planes where its light is at least this fraction of its peak.
    """

    model: str | None = None
    device: str = "auto"
    tile_size: int = 1024
    tile_overlap: int = 64
    batch_tiles: int = 2
    spine_score_threshold: float | None = None
    spine_mask_threshold: float = 0.5
    dendrite_threshold: float | None = None
    min_spine_px: int = 6
    link_iou: float = 0.2
    pixel_size_um: float | None = None
    spine_focus_fraction: float = 0.9
    dendrite_depth_tolerance: float | None = 0.5
    test_time_flips: bool = False
    stack_mode: str = "auto"
    slab_um: float = SLAB_UM
    lift_fraction: float = 0.9

    def __post_init__(self) -> None:
        if self.stack_mode not in STACK_MODES:
            raise InputError(
                f"stack mode must be one of {', '.join(STACK_MODES)}, got {self.stack_mode!r}"
            )
        if not self.slab_um > 0:
            raise InputError(f"slab thickness must be > 0 µm, got {self.slab_um}")
        if self.tile_size < 64 or self.tile_size % 32:
            raise InputError(f"tile_size must be a multiple of 32 and >= 64, got {self.tile_size}")
        if not 0 <= self.tile_overlap <= self.tile_size // 2:
            raise InputError("tile_overlap must be between 0 and half the tile size")
        for name in (
            "spine_score_threshold",
            "spine_mask_threshold",
            "dendrite_threshold",
            "spine_focus_fraction",
            "lift_fraction",
        ):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be between 0 and 1, got {value}")
        if self.pixel_size_um is not None and not (self.pixel_size_um > 0):
            raise InputError(f"pixel size must be > 0 µm, got {self.pixel_size_um}")
        if self.dendrite_depth_tolerance is not None and not self.dendrite_depth_tolerance >= 0:
            raise InputError(
                f"dendrite_depth_tolerance must be >= 0 planes, got {self.dendrite_depth_tolerance}"
            )
        if self.batch_tiles < 1 or self.min_spine_px < 0:
            raise InputError("batch_tiles must be >= 1 and min_spine_px >= 0")


@dataclass
class ProgressEvent:
    """``done`` of ``total`` units (tiles) finished; ``message`` says where.

    ``warning`` is non-empty when the job changed course for the user to know about (out of
    memory: smaller tiles, or the CPU instead of the GPU); the dock shows it as a napari
    notification and the CLI prints it.
    """

    done: int
    total: int
    message: str = ""
    warning: str = ""


@dataclass
class PanopticResult:
    """Result of one image, all arrays ``(Z, Y, X)`` of the input's spatial shape.

    ``dendrite`` uint8 0/1; ``spines`` uint32 ids (0 none), never overlapping the dendrite
    (both None when the planes went to :func:`iter_predict`'s ``plane_sink``); ``table`` one row
    per spine (see :func:`tables.spine_table`); ``voxel_size_um`` (z, y, x).
    """

    dendrite: np.ndarray | None
    spines: np.ndarray | None
    table: dict[str, np.ndarray]
    voxel_size_um: tuple[float, float, float]
    model_name: str
    pixel_size_source: str
    parameters: dict[str, Any] = field(default_factory=dict)
