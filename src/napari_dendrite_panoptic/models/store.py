"""Model folders on disk: save (safetensors + card, atomically), find, load (hash-checked, cached).

Loaded networks are cached per (folder, card content, device), so pressing Run twice does not
rebuild anything.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core import atomic_path
from ..errors import InputError, ModelError
from .builders import build_dendrite_model, build_spine_model
from .card import CARD_FILE, ModelCard

logger = logging.getLogger(__name__)

BUNDLED_NAME = "bundled"
MODELS_DIR_ENV = "DENDRITE_PANOPTIC_MODELS_DIR"


@dataclass(frozen=True)
class LoadedModels:
    """Both networks of a model folder, in eval mode on ``device``."""

    card: ModelCard
    folder: Path
    spines: torch.nn.Module
    dendrites: torch.nn.Module
    device: torch.device


def bundled_model_dir() -> Path:
    """Folder of the model pair shipped inside the package (read-only)."""
    return Path(__file__).parent / "weights" / BUNDLED_NAME


def user_models_dir() -> Path:
    """Folder for fine-tuned models: ``$DENDRITE_PANOPTIC_MODELS_DIR`` or the platformdirs user
    data folder."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    import platformdirs

    return platformdirs.user_data_path("napari-dendrite-panoptic") / "models"


def user_model_folder(name: str) -> Path:
    """The folder of a new model named ``name`` in :func:`user_models_dir`; InputError when the
    name cannot be a folder name (empty, a path separator or other character a file system
    refuses, or a leading dot)."""
    if not name or any(c in name for c in '/\\:*?"<>|') or name.startswith("."):
        raise InputError(f"'{name}' cannot be a folder name: use letters, digits, - and _.")
    return user_models_dir() / name


def list_model_folders() -> list[Path]:
    """The bundled model folder (if present) followed by the user's model folders, newest first."""
    found = []
    if (bundled_model_dir() / CARD_FILE).is_file():
        found.append(bundled_model_dir())
    user = user_models_dir()
    if user.is_dir():
        mine = [p for p in user.iterdir() if (p / CARD_FILE).is_file()]
        found.extend(sorted(mine, key=lambda p: p.stat().st_mtime, reverse=True))
    return found


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_weights(module: torch.nn.Module, path: Path, half: bool) -> str:
    state = {}
    for key, value in module.state_dict().items():
        t = value.detach().cpu().contiguous()
        if half and t.is_floating_point():
            t = t.half()
        state[key] = t
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    return sha256_file(path)


def save_models(
    folder: Path,
    card: ModelCard,
    spines: torch.nn.Module,
    dendrites: torch.nn.Module,
    half: bool = True,
    overwrite: bool = False,
) -> ModelCard:
    """Write a model folder: ``spines.safetensors``, ``dendrites.safetensors`` and ``card.json``.

    Float weights are stored as fp16 when ``half``. The card is written last and records each
    file's SHA-256, so a folder without a card is incomplete. Returns the card as written.
    """
    folder = Path(folder)
    if folder.resolve() == bundled_model_dir().resolve() and not overwrite:
        raise ModelError("the bundled model folder is read-only; save fine-tuned models elsewhere")
    if (folder / CARD_FILE).exists() and not overwrite:
        raise ModelError(f"model folder '{folder}' exists already; choose a new name")
    folder.mkdir(parents=True, exist_ok=True)
    nets = {}
    for key, module in (("spines", spines), ("dendrites", dendrites)):
        net = getattr(card, key)
        digest = _write_weights(module, folder / net.weights_file, half)
        nets[key] = replace(net, sha256=digest)
    card = replace(card, **nets)
    card.save(folder)
    load_models.cache_clear()
    return card


_SHA256 = re.compile(r"[0-9a-f]{64}")


def weights_path(folder: Path, weights_file: object) -> Path:
    """The weight file a card names, which must be a plain name inside the model folder
    (no absolute path, no ``..`` out of it)."""
    folder = Path(folder)
    if not isinstance(weights_file, str) or not weights_file.strip():
        raise ModelError(f"{folder / CARD_FILE}: weights_file must be a file name")
    path = folder / weights_file
    root = folder.resolve()
    if Path(weights_file).is_absolute() or not path.resolve().is_relative_to(root):
        raise ModelError(
            f"{folder / CARD_FILE}: weights_file '{weights_file}' lies outside the model folder; "
            "weights must be inside it"
        )
    return path


def _load_network(folder: Path, card: ModelCard, key: str) -> torch.nn.Module:
    net = getattr(card, key)
    path = weights_path(folder, net.weights_file)
    if not isinstance(net.sha256, str) or not _SHA256.fullmatch(net.sha256):
        raise ModelError(
            f"{folder / CARD_FILE}: the {key} network has no valid SHA-256 for "
            f"'{net.weights_file}' ({net.sha256!r}); weights that cannot be verified are refused"
        )
    if not path.is_file():
        raise ModelError(f"model folder '{folder}' is missing its weight file '{net.weights_file}'")
    if sha256_file(path) != net.sha256:
        raise ModelError(
            f"weight file '{path}' does not match the SHA-256 in its card: it was altered or is "
            "damaged"
        )
    build = build_spine_model if key == "spines" else build_dendrite_model
    try:
        module = build(dict(net.config))
    except (ValueError, TypeError, KeyError, RuntimeError, OverflowError) as exc:
        raise ModelError(
            f"{folder / CARD_FILE}: the {key} network's config {net.config} cannot be built "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot read weight file '{path}': {exc}") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    problem = _state_mismatch(module.state_dict(), state)
    if problem:
        raise ModelError(f"weight file '{path}' does not fit its architecture: {problem}")
    module.load_state_dict(state, strict=True)
    return module


def _state_mismatch(expected: dict, found: dict) -> str:
    """One short sentence on how ``found`` tensors differ from ``expected`` ones ('' if not)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        k for k in expected if k in found and tuple(expected[k].shape) != tuple(found[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return ""
    parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected"]
    parts.append(f"{len(shapes)} wrong-shaped tensors")
    if shapes:
        k = shapes[0]
        example = f"'{k}' is {tuple(found[k].shape)} in the file, {tuple(expected[k].shape)} here"
    else:
        example = f"'{(missing or unexpected)[0]}'"
    return f"{', '.join(parts)} (e.g. {example}); is the card for these weights?"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU here")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ModelError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def available_devices() -> list[str]:
    """Device choices that work on this machine, ``auto`` first."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def for_inference(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` on ``device`` in eval mode, laid out for fast inference there.

    On the CPU the weights go to channels-last memory format, so that oneDNN's convolutions
    run without reordering every feature map: a 1024² plane of the bundled pair took 2.3-2.6 s
    instead of 2.9-3.5 s on a 2-core AVX2 CPU, with the same output
    (``benchmarks/bench_inference.py``, docs/performance.md). Training keeps the default layout
    (channels-last did not make its steps faster there), and GPUs keep it too (not measured).
    """
    net = net.to(device).eval()
    if device.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    return net


@functools.lru_cache(maxsize=4)
def _load_cached(folder: str, card_stamp: tuple[float, int], device: str) -> LoadedModels:
    path = Path(folder)
    card = ModelCard.load(path)
    dev = torch.device(device)
    spines = for_inference(_load_network(path, card, "spines"), dev)
    dendrites = for_inference(_load_network(path, card, "dendrites"), dev)
    logger.info("loaded model %s from %s on %s", card.name, path, dev)
    return LoadedModels(card, path, spines, dendrites, dev)


def load_models(folder: Path | str | None = None, device: str = "auto") -> LoadedModels:
    """Load a model folder (default: the bundled one) onto ``device`` (auto, cpu, cuda).

    Weight files are checked against the SHA-256 in the card. Results are cached per folder,
    card file and device.
    """
    path = Path(folder) if folder is not None else bundled_model_dir()
    card_path = path / CARD_FILE
    if not card_path.is_file():
        raise ModelError(f"'{path}' is not a model folder: it has no {CARD_FILE}")
    st = card_path.stat()
    dev = resolve_device(device)
    return _load_cached(str(path.resolve()), (st.st_mtime, st.st_size), str(dev))


load_models.cache_clear = _load_cached.cache_clear  # type: ignore[attr-defined]
