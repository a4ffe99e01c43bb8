"""The synthetic generators, with exact ground truth: dendrites, spines of five types, PSF,
noise and haze in planes and stacks (:func:`generate`); two-photon-like stacks
(:func:`generate_twophoton`); time series of the same dendrites over imaging sessions, with known
births, deaths and deformation (:func:`generate_series`)."""

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
from .twophoton import (
    TwoPhotonConfig,
    generate_twophoton,
    random_twophoton_config,
    twophoton_stack,
)

__all__ = [
    "CAMERA_OFFSET",
    "SeriesConfig",
    "SeriesSession",
    "SessionTruth",
    "SyntheticConfig",
    "SyntheticSample",
    "SyntheticSeries",
    "TwoPhotonConfig",
    "_smooth_field",
    "generate",
    "generate_series",
    "generate_twophoton",
    "random_config",
    "random_twophoton_config",
    "sample_plane",
    "sample_stack",
    "twophoton_stack",
]
