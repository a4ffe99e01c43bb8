"""Layer 2: panoptic segmentation of a 2D or 3D image: plane reading, tiling, both networks, flips, plane linking, depth trims, memory guard, streaming outputs, the spine table, the run record, and the pixel size of an uncalibrated image estimated from its dendrite width."""

from .config import InferenceConfig, PanopticResult
from .memory import memory_needed
from .pipeline import iter_predict, predict
from .pixel_size import (
    ESTIMATED,
    PIXEL_SIZE_RANGE_UM,
    PLAUSIBLE_FACTOR,
    TYPICAL_SHAFT_WIDTH_UM,
    PixelSizeEstimate,
    estimate_notice,
    estimate_pixel_size,
    plausible,
)
from .provenance import (
    check_model_matches,
    config_from_record,
    load_record,
    recorded_channel,
    run_record,
)
from .streaming import DiskPlaneSink, ReleasingPlanes, result_bytes

__all__ = [
    "ESTIMATED",
    "PIXEL_SIZE_RANGE_UM",
    "PLAUSIBLE_FACTOR",
    "TYPICAL_SHAFT_WIDTH_UM",
    "PixelSizeEstimate",
    "estimate_notice",
    "estimate_pixel_size",
    "plausible",
    "DiskPlaneSink",
    "InferenceConfig",
    "PanopticResult",
    "ReleasingPlanes",
    "check_model_matches",
    "config_from_record",
    "recorded_channel",
    "iter_predict",
    "load_record",
    "memory_needed",
    "predict",
    "result_bytes",
    "run_record",
]
