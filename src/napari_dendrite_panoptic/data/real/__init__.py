"""The real annotated data sets (found through ``DENDRITE_PANOPTIC_DATA``) as records, and the sources that turn them into training samples."""

from .findspines import findspines_split, load_findspines
from .hard_negatives import hard_negatives
from .records import DATA_ROOT, ENV_VAR, data_root
from .smirnov import load_smirnov
from .sources import PSEUDO_RADIUS_UM, mask_source, mixed_source, point_source, pseudo_spine_masks
from .yolo11 import load_yolo11

__all__ = [
    "DATA_ROOT",
    "ENV_VAR",
    "PSEUDO_RADIUS_UM",
    "data_root",
    "findspines_split",
    "hard_negatives",
    "load_findspines",
    "load_smirnov",
    "load_yolo11",
    "mask_source",
    "mixed_source",
    "point_source",
    "pseudo_spine_masks",
]
