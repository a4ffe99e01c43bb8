"""The synthetic generator: dendrites, spines of five types, PSF, noise and haze, with exact ground truth."""

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

__all__ = [
    "CAMERA_OFFSET",
    "SyntheticConfig",
    "SyntheticSample",
    "_smooth_field",
    "generate",
    "random_config",
    "sample_plane",
    "sample_stack",
]
