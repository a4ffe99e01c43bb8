"""Models: cards (data), builders (Mask R-CNN for spines, FCN for dendrites), weight storage.

A model folder holds ``card.json`` and one safetensors file per network
(``spines.safetensors``, ``dendrites.safetensors``). Loading never executes code.
"""

# first: triton must be loaded safely before builders.py imports torchvision
from .. import _triton_guard  # noqa: F401
from .card import ModelCard, NetworkCard
from .store import (
    LoadedModels,
    bundled_model_dir,
    list_model_folders,
    load_models,
    save_models,
    user_models_dir,
)

__all__ = [
    "LoadedModels",
    "ModelCard",
    "NetworkCard",
    "bundled_model_dir",
    "list_model_folders",
    "load_models",
    "save_models",
    "user_models_dir",
]
