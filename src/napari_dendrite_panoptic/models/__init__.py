"""Layer 1: models: cards (data), builders (Mask R-CNN for spines, FCN for dendrites), weight storage.

A model folder holds ``card.json`` and one safetensors file per network
(``spines.safetensors``, ``dendrites.safetensors``). Loading never executes code."""

# first: triton must be loaded safely before builders.py imports torchvision
from .. import _triton_guard  # noqa: F401
from .builders import (
    DENDRITE_DEFAULTS,
    SPINE_DEFAULTS,
    build_dendrite_model,
    build_spine_model,
    trunk_modules,
    widen_input_planes,
)
from .card import ModelCard, NetworkCard
from .store import (
    LoadedModels,
    available_devices,
    bundled_model_dir,
    for_inference,
    list_model_folders,
    load_models,
    resolve_device,
    save_models,
    sha256_file,
    user_model_folder,
    user_models_dir,
)

__all__ = [
    "DENDRITE_DEFAULTS",
    "LoadedModels",
    "ModelCard",
    "NetworkCard",
    "SPINE_DEFAULTS",
    "available_devices",
    "build_dendrite_model",
    "build_spine_model",
    "bundled_model_dir",
    "for_inference",
    "list_model_folders",
    "load_models",
    "resolve_device",
    "save_models",
    "sha256_file",
    "trunk_modules",
    "user_model_folder",
    "user_models_dir",
    "widen_input_planes",
]
