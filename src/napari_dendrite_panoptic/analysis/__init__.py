"""Layer 3: spine analysis: dendrite skeleton and length, per-spine measurements, spine types, per-branch density, and the tables and ROI sets users export. Plain numpy/scipy/skan; no napari or Qt."""

from .branch_summary import branch_summary
from .exports import analysis_paths, write_analysis_outputs, write_tables
from .pipeline import SpineAnalysis, analyse
from .roi_export import write_roi_zip
from .skeleton import DendriteSkeleton, dendrite_length_um, skeletonize_dendrite
from .spine_measurements import measure_spines
from .spine_types import TypeRules, classify, classify_rules

__all__ = [
    "DendriteSkeleton",
    "SpineAnalysis",
    "TypeRules",
    "analyse",
    "analysis_paths",
    "branch_summary",
    "classify",
    "classify_rules",
    "dendrite_length_um",
    "measure_spines",
    "skeletonize_dendrite",
    "write_analysis_outputs",
    "write_roi_zip",
    "write_tables",
]
