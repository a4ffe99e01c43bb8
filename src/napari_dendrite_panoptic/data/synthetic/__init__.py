"""The synthetic generator: dendrites, spines of five types, PSF, noise and haze, with exact ground truth; time series of the same dendrites over imaging sessions (known births, deaths and deformation)."""

from .generator import (
    CAMERA_OFFSET,
    SyntheticConfig,
    SyntheticSample,
    _smooth_field,
    generate,
    random_config,
    sample_plane,
    sample_stack,
)
from .series import SeriesConfig, SeriesSession, SessionTruth, SyntheticSeries, generate_series

__all__ = [
    "CAMERA_OFFSET",
    "SyntheticConfig",
    "SyntheticSample",
    "_smooth_field",
    "generate",
    "random_config",
    "sample_plane",
    "sample_stack",
    "SeriesConfig",
    "SeriesSession",
    "SessionTruth",
    "SyntheticSeries",
    "generate_series",
]
