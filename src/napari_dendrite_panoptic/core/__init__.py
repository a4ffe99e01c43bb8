"""Layer 0: what every layer shares: atomic writes, the (Z, Y, X) shape rule, percentile normalisation, the zero-denominator rule of every score, and the vocabulary (spine types, the ignore label, the labels' metadata keys), the slab rule of stacks. numpy and scipy only."""

from .arrays import as_zyx, mask_to_instances
from .atomic import atomic_path, atomic_write_text, staged_outputs
from .normalise import finite_percentiles, percentile_normalise, sampled_percentiles
from .scores import ratio
from .slabs import SLAB_UM, UNKNOWN_Z_SLAB_PLANES, slab_planes, slab_ranges
from .vocabulary import IGNORE, LABEL_HASHES, LAYER_KEY, SPINE_TYPES, STACK_MODES

__all__ = [
    "IGNORE",
    "LABEL_HASHES",
    "LAYER_KEY",
    "SPINE_TYPES",
    "STACK_MODES",
    "SLAB_UM",
    "UNKNOWN_Z_SLAB_PLANES",
    "slab_planes",
    "slab_ranges",
    "as_zyx",
    "mask_to_instances",
    "ratio",
    "atomic_path",
    "atomic_write_text",
    "staged_outputs",
    "finite_percentiles",
    "percentile_normalise",
    "sampled_percentiles",
]
