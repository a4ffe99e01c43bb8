"""TIFF writing for the engine: stacks and label images with their voxel size and a record.

:func:`write_tiff_atomic` writes any numeric (Y, X) to (T, C, Z, Y, X) array, or a
:class:`PlaneStream` given plane by plane, under a temporary name and then renames it; uint8,
uint16 and float32 become ImageJ hyperstacks, other dtypes plain TIFFs with a JSON description.
:func:`write_labels_tiff` picks the smallest unsigned dtype that holds the largest label.
Voxel sizes are (z, y, x) in µm; axes are an ordered subset of :data:`CANONICAL_AXES`.

Reading lives in :mod:`napari_dendrite_panoptic.io`, which re-exports the names here
(``io.write_tiff_atomic``, ``io.write_labels_tiff``, ``io.PlaneStream``); this module does not
import it. It never imports napari, Qt or torch.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..core import atomic_path
from ..errors import InputError, OutputExistsError

logger = logging.getLogger(__name__)

CANONICAL_AXES = "TCZYX"
"""Axis letters in the order stacks are stored and returned (any ordered subset ending in YX)."""

_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


@dataclass(frozen=True)
class PlaneStream:
    """A (Z, Y, X) array given plane by plane, so that it is written without ever being whole
    in memory: ``planes()`` yields the Z planes (Y, X) of ``dtype`` in order; ``max_value`` is
    the largest value (labels pick their dtype from it)."""

    shape: tuple[int, int, int]
    dtype: np.dtype
    planes: Callable[[], Iterator[np.ndarray]]
    max_value: int = 0

    @property
    def ndim(self) -> int:
        return 3


def write_tiff_atomic(
    path: str | os.PathLike[str],
    array: Any,
    voxel_size_um: tuple[float, float, float] | None = (1.0, 1.0, 1.0),
    metadata: dict[str, Any] | None = None,
    *,
    axes: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write an array to a TIFF file atomically, with its voxel size and a metadata record.

    uint8, uint16 and float32 (and bool, stored as uint8) arrays are written as ImageJ
    hyperstacks (resolution in pixels per µm, unit ``um``, z ``spacing``); other dtypes as a
    plain TIFF with resolution tags in pixels per cm and a JSON description holding the axes,
    the z spacing and the record. The file is written under a temporary name in the same
    folder, then renamed: readers never see half a file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; missing parent folders are created.
    array : array-like
        Pixels, shape given by `axes` (e.g. (Z, Y, X)); any numeric dtype.
    voxel_size_um : tuple of float or None, optional
        (z, y, x) voxel size in µm, each finite and > 0. None writes no calibration.
    metadata : dict, optional
        JSON-serialisable record (e.g. provenance); :func:`read_tiff` returns it as
        ``ImageStack.metadata``.
    axes : str, optional
        Canonical axes of `array` (subset of "TCZYX" ending in "YX"); default "YX", "ZYX",
        "CZYX" or "TCZYX" by number of dimensions.
    overwrite : bool, optional
        False raises :class:`OutputExistsError` when `path` exists.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    InputError
        For an unusable array, axes, voxel size or a record that is not JSON-serialisable.
    OutputExistsError
        When the file exists and `overwrite` is False.
    """
    path = Path(path)
    stream = array if isinstance(array, PlaneStream) else None
    data = np.empty((0,) * 3, array.dtype) if stream else np.asarray(array)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if data.dtype.kind not in "biuf":
        raise InputError(f"Cannot write {data.dtype} data to '{path}': only numbers can be saved.")
    axes = _default_axes(data.ndim) if axes is None else axes
    _check_axes(axes)
    if len(axes) != data.ndim:
        raise InputError(
            f"Cannot write to '{path}': array of shape {data.shape} does not match axes '{axes}'."
        )
    if stream is not None and axes != "ZYX":
        raise InputError(f"Cannot write to '{path}': a plane stream is (Z, Y, X), not '{axes}'.")
    if voxel_size_um is not None:
        voxel_size_um = _check_voxel_size(voxel_size_um)
    description = None
    if metadata is not None:
        try:
            description = json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"Cannot write '{path}': its metadata is not JSON-serialisable ({exc})."
            ) from exc
    if path.exists() and not overwrite:
        raise OutputExistsError(f"'{path}' exists; choose another name or allow overwriting.")
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = _tiff_kwargs(data, axes, voxel_size_um, description)
    if kwargs["imagej"] and stream is None:
        data = np.transpose(data, [axes.index(a) for a in kwargs["metadata"]["axes"]])
    with atomic_path(path) as tmp_name:
        if stream is not None:  # written plane by plane, never whole in memory
            kwargs.update(shape=stream.shape, dtype=stream.dtype)
            tifffile.imwrite(tmp_name, stream.planes(), **kwargs)
        else:
            tifffile.imwrite(tmp_name, data, **kwargs)
        with open(tmp_name, "rb+") as handle:
            os.fsync(handle.fileno())
    logger.info("Wrote '%s': %s %s, voxel size %s µm", path, data.shape, data.dtype, voxel_size_um)
    return path


def write_labels_tiff(
    path: str | os.PathLike[str],
    labels: Any,
    voxel_size_um: tuple[float, float, float] | None,
    metadata: dict[str, Any] | None = None,
    *,
    axes: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a label image with the smallest unsigned dtype that holds its largest label.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.tif`` file.
    labels : array-like
        Integer or bool label image, (Y, X) or (Z, Y, X) (or as given by `axes`); 0 is
        background, values must be >= 0.
    voxel_size_um : tuple of float or None
        (z, y, x) voxel size in µm; None writes no calibration.
    metadata : dict, optional
        JSON-serialisable record stored with the file (see :func:`write_tiff_atomic`).
    axes : str, optional
        Canonical axes of `labels`; default from the number of dimensions.
    overwrite : bool, optional
        False raises :class:`OutputExistsError` when `path` exists.

    Returns
    -------
    pathlib.Path
        The written file, stored as uint8 (max < 256, ImageJ), uint16 (max < 65536, ImageJ),
        uint32 or, above 2**32 - 1, uint64 (plain TIFF).

    Raises
    ------
    InputError
        When the labels are not integers or hold negative values.
    """
    if isinstance(labels, PlaneStream):
        high = int(labels.max_value)
        dtype = next(
            t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if high <= np.iinfo(t).max
        )
        planes = labels.planes
        stream = PlaneStream(
            labels.shape,
            np.dtype(dtype),
            lambda: (p.astype(dtype, copy=False) for p in planes()),
            high,
        )
        return write_tiff_atomic(
            path, stream, voxel_size_um, metadata, axes=axes, overwrite=overwrite
        )
    data = np.asarray(labels)
    if data.dtype.kind not in "biu":
        raise InputError(
            f"Cannot save labels to '{path}': labels must be integers, got {data.dtype} values."
        )
    low = int(data.min()) if data.size else 0
    high = int(data.max()) if data.size else 0
    if low < 0:
        raise InputError(
            f"Cannot save labels to '{path}': labels must be >= 0, the smallest is {low}."
        )
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if high <= np.iinfo(dtype).max:
            break
    return write_tiff_atomic(
        path,
        data.astype(dtype, copy=False),
        voxel_size_um,
        metadata,
        axes=axes,
        overwrite=overwrite,
    )


# --- helpers -------------------------------------------------------------------------------------


def _tiff_kwargs(
    data: np.ndarray,
    axes: str,
    voxel_size_um: tuple[float, float, float] | None,
    description: str | None,
) -> dict[str, Any]:
    """tifffile.imwrite keyword arguments: ImageJ hyperstack when the dtype allows it."""
    if data.dtype in _IMAGEJ_DTYPES:
        ij_axes = "".join(a for a in "TZCYX" if a in axes)
        meta: dict[str, Any] = {"axes": ij_axes}
        kwargs: dict[str, Any] = {"imagej": True, "metadata": meta}
        if voxel_size_um is not None:
            z, y, x = voxel_size_um
            meta.update(spacing=z, unit="um")
            kwargs["resolution"] = (1.0 / x, 1.0 / y)
        if description is not None:
            meta["Info"] = description
        return kwargs
    meta = {"axes": axes}
    kwargs = {"imagej": False, "metadata": meta, "photometric": "minisblack"}
    if voxel_size_um is not None:
        z, y, x = voxel_size_um
        meta.update(spacing=z, unit="um")
        kwargs.update(resolution=(1e4 / x, 1e4 / y), resolutionunit="CENTIMETER")
    if description is not None:
        meta["metadata"] = json.loads(description)
    return kwargs


def _check_voxel_size(voxel_size_um: Any) -> tuple[float, float, float]:
    """Return (z, y, x) as floats, or raise InputError unless three finite values > 0."""
    try:
        values = tuple(float(v) for v in voxel_size_um)
    except (TypeError, ValueError) as exc:
        raise InputError(f"Voxel size must be three numbers (z, y, x) in µm: {exc}") from exc
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(
            f"Voxel size must be three finite numbers > 0 (z, y, x) in µm, got {voxel_size_um}."
        )
    return values[0], values[1], values[2]


def _check_axes(axes: str) -> None:
    """Raise InputError unless `axes` is an ordered subset of 'TCZYX' ending in 'YX'."""
    remaining = CANONICAL_AXES
    for letter in axes:
        if letter not in remaining:
            raise InputError(f"Axes '{axes}' must be an ordered subset of 'TCZYX'.")
        remaining = remaining[remaining.index(letter) + 1 :]
    if not axes.endswith("YX"):
        raise InputError(f"Axes '{axes}' must end with 'YX'.")


def _default_axes(ndim: int) -> str:
    """Canonical axes assumed for an array of `ndim` dimensions."""
    defaults = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}
    if ndim not in defaults:
        raise InputError(f"Only 2D to 5D arrays can be saved as TIFF, got {ndim}D.")
    return defaults[ndim]
