"""napari writer: saves a Labels layer as a TIFF with its voxel size and metadata record."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .errors import InputError

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
_LABEL_AXES = {2: "YX", 3: "ZYX", 4: "TZYX"}


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer to a TIFF file (npe2 single-layer writer).

    Parameters
    ----------
    path : str
        Destination; ``.tif`` is appended when it ends in neither ``.tif`` nor ``.tiff``.
    data : array-like
        Integer labels, (Y, X), (Z, Y, X) or (T, Z, Y, X); for a multiscale layer, the list
        of levels (the first, full-resolution one is saved).
    meta : dict
        The layer attributes napari passes: ``scale`` (voxel size in µm for the last two or
        three axes; a 2D layer gets z = 1.0) and ``metadata`` (its JSON-serialisable parts
        are stored with the file and come back as ``ImageStack.metadata``).

    Returns
    -------
    list of str
        The written path.

    Raises
    ------
    InputError
        When the labels have an unsupported number of dimensions, are not integers, or the
        scale is not a usable voxel size.
    """
    if not path.lower().endswith(TIFF_SUFFIXES):
        path = f"{path}.tif"
    if isinstance(data, list | tuple):  # multiscale: save the full-resolution level
        data = data[0]
    labels = np.asarray(data)
    if labels.ndim not in _LABEL_AXES:
        raise InputError(
            f"Cannot save '{path}': labels must be 2D, 3D or 4D (T, Z, Y, X), "
            f"got shape {labels.shape}."
        )
    layer_metadata = json_safe(meta.get("metadata") or {})
    voxel_size = _voxel_size_from_scale(meta.get("scale"), labels.ndim, layer_metadata)
    written = io.write_labels_tiff(
        path, labels, voxel_size, layer_metadata, axes=_LABEL_AXES[labels.ndim]
    )
    return [str(written)]


def json_safe(value: Any) -> Any:
    """Return the JSON-serialisable part of `value` (dicts, lists, str, numbers, bool, None).

    numpy scalars and arrays of up to 10,000 elements become Python numbers and lists; dict
    entries with non-string keys, non-finite floats and other objects are dropped.
    """
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            safe = json_safe(item)
            if isinstance(key, str) and (safe is not None or item is None):
                result[key] = safe
        return result
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray) and value.size <= 10_000:
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Path):
        return str(value)
    logger.debug("Not storing %r in the TIFF metadata: not JSON-serialisable.", type(value))
    return None


def _voxel_size_from_scale(
    scale: Any, ndim: int, metadata: dict[str, Any]
) -> tuple[float, float, float] | None:
    """(z, y, x) µm from a layer scale; None when the layer was never calibrated."""
    values = [1.0] * ndim if scale is None else [float(s) for s in scale]
    spatial = values[-3:] if ndim >= 3 else [1.0, *values[-2:]]
    if metadata.get("voxel_size_source") == "none" and all(v == 1.0 for v in spatial):
        return None
    return spatial[0], spatial[1], spatial[2]
