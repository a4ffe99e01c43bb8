"""Layer 0: what every layer shares: atomic writes, the (Z, Y, X) shape rule, percentile normalisation, and the vocabulary (spine types, the ignore label). numpy and the standard library only."""

from .arrays import as_zyx
from .atomic import atomic_path, atomic_write_text
from .normalise import finite_percentiles, percentile_normalise
from .vocabulary import IGNORE, SPINE_TYPES

__all__ = [
    "IGNORE",
    "SPINE_TYPES",
    "as_zyx",
    "atomic_path",
    "atomic_write_text",
    "finite_percentiles",
    "percentile_normalise",
]
