"""napari reader: opens TIFF stacks with their voxel size as one image layer per channel; label
TIFFs this plugin wrote (``segment``'s, or a Labels layer saved with napari) open as a Labels
layer that keeps the record of what the model wrote, so the training dock can tell the planes
a user edited.

A thin adapter over :func:`napari_dendrite_panoptic.io.read_tiff`; napari is imported only
inside functions, when a notification is shown or the layer keywords are checked.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

from . import io
from .core import LABEL_HASHES, LAYER_KEY

logger = logging.getLogger(__name__)

PathOrPaths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
LayerData = tuple[Any, dict[str, Any], str]
TIFF_SUFFIXES = (".tif", ".tiff")


def napari_get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """Return :func:`read_tiff_layers` when every path is a ``.tif``/``.tiff`` file, else None.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        What napari was asked to open.

    Returns
    -------
    callable or None
        The reader function, or None so that napari tries another reader.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(_is_tiff_name(p) for p in paths):
        return None
    return read_tiff_layers


def read_tiff_layers(path: PathOrPaths) -> list[LayerData]:
    """Read TIFF files as napari layer data: one image layer per channel.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        One or more TIFF files.

    Returns
    -------
    list of (data, kwargs, "image")
        Per channel: data (T, Z, Y, X) without absent axes, same dtype as the file (lazy for
        stacks larger than a quarter of RAM); kwargs with ``name`` (``<stem>`` or
        ``<stem> <channel name>``), ``scale`` (voxel size in µm for z, y, x, 1.0 for T),
        ``units`` when napari supports them, and ``metadata`` (``voxel_size_um``,
        ``voxel_size_source``, ``path``, ``channel``, ``file_metadata``).

    Raises
    ------
    TiffReadError
        When a file cannot be read; the message names the file.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerData] = []
    for one in paths:
        layers.extend(_layers_of(io.read_tiff(one)))
    return layers


def _layers_of(stack: io.ImageStack) -> list[LayerData]:
    """Split a stack into one image layer per channel, with scale and metadata."""
    for note in stack.notes:  # what the reader chose: which series, planes marked as colour
        _show_warning(note)
    if stack.voxel_size_source == "none":
        _show_warning(
            f"No voxel size was stored in '{stack.path.name}': using a scale of 1 pixel. "
            "Sizes and distances will be in pixels."
        )
    spatial = [a for a in stack.axes if a != "C"]
    scale = [_axis_scale(a, stack.voxel_size_um) for a in spatial]
    units = ["pixel" if a == "T" else "µm" for a in spatial]
    channels = stack.channel_names or ("",)
    written = _written_labels(stack) if len(channels) == 1 else None
    layers: list[LayerData] = []
    for index, channel_name in enumerate(channels):
        data = io.channel_data(stack, index)
        name = f"{stack.path.stem} {channel_name}" if channel_name else stack.path.stem
        kwargs: dict[str, Any] = {
            "name": name,
            "scale": scale,
            "rgb": False,
            "metadata": {
                "voxel_size_um": list(stack.voxel_size_um),
                "voxel_size_source": stack.voxel_size_source,
                "path": str(stack.path),
                "channel": channel_name or None,
                "file_metadata": stack.metadata,
            },
        }
        if stack.voxel_size_source != "none" and _layers_take_units():
            kwargs["units"] = units
        if written is not None:  # labels this plugin wrote: a Labels layer, ready to correct
            kwargs["metadata"].update(written)
            del kwargs["rgb"]
            layers.append((data, kwargs, "labels"))
            continue
        layers.append((data, kwargs, "image"))
    return layers


def _written_labels(stack: io.ImageStack) -> dict[str, Any] | None:
    """For a labels TIFF this plugin wrote, the layer metadata that lets the training dock tell
    the planes a user edited (``{LAYER_KEY: {"plane_hashes": [...]}}``), else None. A Labels
    layer saved with napari keeps its own record; ``segment``'s label files carry both roles'
    hashes in their run record, the role read from the name's ``_dendrite``/``_spines``."""
    import numpy as np

    if not np.issubdtype(stack.dtype, np.integer):
        return None
    record = stack.metadata or {}
    ours = record.get(LAYER_KEY)
    if isinstance(ours, dict) and isinstance(ours.get("plane_hashes"), list):
        return {LAYER_KEY: ours}
    hashes = record.get(LABEL_HASHES)
    role = next((r for r in ("dendrite", "spines") if stack.path.stem.endswith(f"_{r}")), None)
    if isinstance(hashes, dict) and role and isinstance(hashes.get(role), list):
        return {LAYER_KEY: {"plane_hashes": [str(h) for h in hashes[role]]}}
    return None


def _axis_scale(axis: str, voxel_size_um: tuple[float, float, float]) -> float:
    """Scale of one layer axis: the voxel size for Z, Y and X, 1.0 for T."""
    return {"Z": voxel_size_um[0], "Y": voxel_size_um[1], "X": voxel_size_um[2]}.get(axis, 1.0)


def _is_tiff_name(path: Any) -> bool:
    """True for a path whose name ends in .tif or .tiff (any case)."""
    return isinstance(path, str | os.PathLike) and Path(path).suffix.lower() in TIFF_SUFFIXES


@functools.lru_cache(maxsize=1)
def _layers_take_units() -> bool:
    """True when the installed napari's Image layer accepts a ``units`` keyword."""
    import napari.layers

    return "units" in inspect.signature(napari.layers.Image.__init__).parameters


def _show_warning(message: str) -> None:
    """Show `message` as a napari warning notification (and log it)."""
    logger.warning(message)
    from napari.utils.notifications import show_warning

    show_warning(message)
