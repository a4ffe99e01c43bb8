"""Training checkpoints: written atomically with their SHA-256 on record, loaded as data only.

:func:`save_checkpoint` writes ``<name>`` and ``<name>.sha256.json`` so a killed run never
leaves half a file nor a checkpoint without a recorded hash; :func:`load_checkpoint` checks the
hash and loads with ``torch.load(weights_only=True)`` (no code in the file is run), raising
:class:`CheckpointError` for anything that cannot be resumed from. The training loop
(:mod:`napari_dendrite_panoptic.training`) decides what goes into a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..core import atomic_path, atomic_write_text
from ..errors import DendritePanopticError
from ..models import sha256_file


class CheckpointError(DendritePanopticError):
    """A training checkpoint that cannot be resumed from (damaged, or not a checkpoint)."""


def _hashes_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".sha256.json")


def _recorded_hashes(path: Path) -> list[str] | None:
    try:
        return list(json.loads(_hashes_path(path).read_text(encoding="utf-8"))["sha256"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read '{_hashes_path(path)}': {exc}") from None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a training checkpoint atomically (a killed run never leaves half a file), with its
    SHA-256 in ``<name>.sha256.json``.

    ``state``: a dict of tensors (any dtype, best on the CPU so it loads anywhere), numbers,
    strings and nested dicts/lists of them, as ``torch.load(weights_only=True)`` accepts. The
    hash file is written before the checkpoint is renamed into place and lists the new and the
    previous checkpoint's hashes, so a kill between the two writes still leaves a checkpoint
    whose hash is on record.
    """
    path = Path(path)
    previous = (_recorded_hashes(path) or [None])[0] if path.is_file() else None
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        hashes = [sha256_file(tmp)] + ([previous] if previous else [])
        atomic_write_text(_hashes_path(path), json.dumps({"sha256": hashes}))


def delete_checkpoint(path: Path) -> None:
    """Remove a checkpoint and its hash record (either may be absent)."""
    Path(path).unlink(missing_ok=True)
    _hashes_path(path).unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint as data only (``weights_only=True``: no code in it is run), after
    checking its SHA-256 against ``<name>.sha256.json`` when that exists.

    Returns the saved dict, its tensors on the CPU; it holds at least ``step`` (int),
    ``spines`` and ``dendrites`` (state dicts).

    Raises
    ------
    CheckpointError
        When the file is damaged or holds something other than a checkpoint's tensors and
        numbers.
    """
    hashes = _recorded_hashes(path)
    if hashes is not None and Path(path).is_file() and sha256_file(Path(path)) not in hashes:
        raise CheckpointError(
            f"cannot resume from '{path}': it does not match the SHA-256 recorded when it was "
            "written (altered or damaged); delete it or train without resuming (--no-resume)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, pickle and storage errors all mean "damaged"
        raise CheckpointError(
            f"cannot resume from '{path}': the checkpoint is damaged or not a checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); delete it "
            "or train without resuming (--no-resume)"
        ) from None
    if not isinstance(state, dict) or not {"step", "spines", "dendrites"} <= set(state):
        raise CheckpointError(f"cannot resume from '{path}': it is not a training checkpoint")
    return state
