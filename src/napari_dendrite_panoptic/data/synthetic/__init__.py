"""The synthetic generators: dendrites, spines of five types, PSF, noise and haze, with exact ground truth; planes and stacks (:func:`generate`) and two-photon-like stacks (:func:`generate_twophoton`)."""

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
from .twophoton import (
    TwoPhotonConfig,
    generate_twophoton,
    random_twophoton_config,
    twophoton_stack,
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
    "TwoPhotonConfig",
    "generate_twophoton",
    "random_twophoton_config",
    "twophoton_stack",
]
