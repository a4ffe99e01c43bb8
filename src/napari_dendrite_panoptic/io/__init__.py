"""Layer 1: TIFF reading (lazy for large files, voxel size from ImageJ/OME metadata), TIFF writing (atomic, plane by plane), CSV tables and overlay PNGs."""

from ._lazy import LazyArray, physical_memory
from .overlay import overlay_rgb, save_png
from .tables import spreadsheet_safe, write_table_csv
from .tiff_read import ImageStack, channel_data, read_tiff, stack_zyx
from .tiff_write import PlaneStream, write_labels_tiff, write_tiff_atomic

__all__ = [
    "ImageStack",
    "LazyArray",
    "PlaneStream",
    "stack_zyx",
    "channel_data",
    "overlay_rgb",
    "physical_memory",
    "read_tiff",
    "save_png",
    "spreadsheet_safe",
    "write_labels_tiff",
    "write_table_csv",
    "write_tiff_atomic",
]
