"""TIFF input and output for the engine: stacks with their voxel size, labels, provenance.

This module never imports napari, Qt or torch. Stacks are returned in a canonical axis order,
a subset of ``"TCZYX"`` in that order, with the voxel size in µm as (z, y, x).
Stacks larger than a quarter of the machine's memory are opened lazily, as a :class:`LazyArray`
that reads only the planes that are indexed: with plain reads when the pixels are stored
uncompressed in one block (never a memory map, which turns a file cut short into a bus error),
otherwise through a zarr view of the file.

Parsing of the stored metadata (voxel size, channel names, record) lives in
:mod:`._tiff_metadata`, the mapping of tifffile's axes onto the canonical order in
:mod:`._tiff_axes`, the read-on-demand arrays in :mod:`._lazy`, writing
(:func:`write_tiff_atomic`, :func:`write_labels_tiff`, :class:`PlaneStream`) in
:mod:`.tiff_write`; the package :mod:`napari_dendrite_panoptic.io` is their public face.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError, TiffReadError
from ._lazy import LazyArray, expand_axis, lazy_source, physical_memory, take_axis
from ._tiff_axes import apply_plan, plan_axes, plan_samples
from ._tiff_metadata import read_channel_names, read_stored_metadata, read_voxel_size
from .tiff_write import (
    _check_axes,
)

logger = logging.getLogger(__name__)

VOXEL_SIZE_SOURCES = ("imagej", "ome", "resolution", "none")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_OTHER_FORMATS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"PK\x03\x04": "a ZIP archive",
    b"\x93NUMPY": "a NumPy .npy file",
    b"\x89HDF": "an HDF5 file",
}
_DAMAGE_WORDS = ("offset", "corrupt", "failed to read", "truncat")


@dataclass(frozen=True, eq=False)
class ImageStack:
    """An image stack read from a file, in canonical axis order, with its voxel size.

    Attributes
    ----------
    data : numpy.ndarray or array-like
        Pixels with one dimension per letter of `axes`. A ``numpy.ndarray`` when read eagerly;
        a :class:`LazyArray` (``shape``, ``dtype``, ``__getitem__``,
        ``__array__``) when `lazy` is True. The dtype is the file's (e.g. uint8, uint16, float32).
    axes : str
        Ordered subset of ``"TCZYX"`` that always ends in ``"YX"``, e.g. ``"ZYX"``, ``"CZYX"``.
    voxel_size_um : tuple of float
        (z, y, x) voxel size in µm; 1.0 where unknown (and z is 1.0 for 2D images).
    voxel_size_source : str
        Where the voxel size came from: ``"imagej"``, ``"ome"``, ``"resolution"`` (TIFF
        resolution tags) or ``"none"`` (nothing usable was stored: all sizes are 1.0).
    channel_names : tuple of str
        One name per channel when `axes` has a C axis, else empty.
    path : pathlib.Path
        The file the stack was read from.
    lazy : bool
        True when `data` reads from the file on demand.
    metadata : dict
        JSON-compatible record stored with the file: the JSON object in the ImageJ ``Info``
        property or under ``"metadata"`` in a tifffile JSON description (this is what
        :func:`write_tiff_atomic` writes); otherwise the simple ImageJ or description entries.
    notes : tuple of str
        What the reader chose that the user should know, one sentence each (which of several
        image series it read; planes marked as colour that it read as Z).
    """

    data: Any
    axes: str
    voxel_size_um: tuple[float, float, float] = (1.0, 1.0, 1.0)
    voxel_size_source: str = "none"
    channel_names: tuple[str, ...] = ()
    path: Path = field(default_factory=Path)
    lazy: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_axes(self.axes)
        if len(self.data.shape) != len(self.axes):
            raise InputError(
                f"Stack data has {len(self.data.shape)} dimensions {tuple(self.data.shape)} "
                f"but axes '{self.axes}' name {len(self.axes)}."
            )
        if self.voxel_size_source not in VOXEL_SIZE_SOURCES:
            raise InputError(f"Unknown voxel_size_source {self.voxel_size_source!r}.")
        n_channels = self.data.shape[self.axes.index("C")] if "C" in self.axes else 0
        if len(self.channel_names) != n_channels:
            raise InputError(
                f"{len(self.channel_names)} channel names given for {n_channels} channels."
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of `data`, one entry per letter of `axes`."""
        return tuple(int(n) for n in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """Pixel data type."""
        return np.dtype(self.data.dtype)


def read_tiff(path: str | os.PathLike[str], lazy: bool | None = None) -> ImageStack:
    """Read the first image series of a TIFF file with its voxel size and channel names.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` file (plain, ImageJ hyperstack or OME-TIFF).
    lazy : bool or None, optional
        True reads pixels on demand, False reads them all now; None (default) reads lazily
        only when the uncompressed pixels exceed a quarter of the machine's memory.

    Returns
    -------
    ImageStack
        `data` in canonical axis order (subset of "TCZYX"), same dtype as the file;
        `voxel_size_um` is (z, y, x) in µm. Unknown leading axes (tifffile's Q, I, ...) become
        Z, then T, then C. A greyscale image stored as RGB(A) is read as one channel; colour
        samples of more than 8 bits stored as separate planes (how tifffile saves a
        (3|4, Y, X) array without axes metadata) are read as Z planes.

    Raises
    ------
    TiffReadError
        When the file is missing, empty, not a TIFF, truncated or damaged, or holds 8-bit
        colour RGB data; the message names the file and the problem in plain words.
    """
    path = Path(path)
    _check_file(path)
    with _tifffile_errors() as damage:
        try:
            tif = tifffile.TiffFile(path)
        except Exception as exc:
            raise _read_error(path, exc) from exc
        try:
            stack = _read_open_file(tif, path, lazy, damage)
        except TiffReadError:
            tif.close()
            raise
        except Exception as exc:
            tif.close()
            raise _read_error(path, exc) from exc
    if not isinstance(stack.data, LazyArray):
        tif.close()
    logger.info(
        "Read '%s': axes %s, shape %s, %s, voxel size %s µm (%s)%s",
        path,
        stack.axes,
        stack.shape,
        stack.dtype,
        stack.voxel_size_um,
        stack.voxel_size_source,
        ", lazily" if stack.lazy else "",
    )
    return stack


def stack_zyx(stack: ImageStack, channel: int = 0, time: int = 0) -> Any:
    """Return one channel at one time point of a stack as a (Z, Y, X) array (the shape rule
    of :func:`napari_dendrite_panoptic.core.as_zyx`, keeping lazy stacks lazy).

    Parameters
    ----------
    stack : ImageStack
        A stack from :func:`read_tiff`.
    channel : int, optional
        Channel index; a stack without a C axis has one channel (0, or -1).
    time : int, optional
        Time-point index, ignored when the stack has no T axis.

    Returns
    -------
    numpy.ndarray or array-like
        (Z, Y, X) pixels with the stack's dtype; a 2D image gets Z of length 1. Stays lazy
        (nothing read) when the stack is lazy.

    Raises
    ------
    InputError
        When `channel` or `time` is out of range.
    """
    data, axes = stack.data, stack.axes
    for letter, index, what in (("T", time, "time point"), ("C", channel, "channel")):
        if letter in axes:
            n = data.shape[axes.index(letter)]
            if not -n <= index < n:
                raise InputError(
                    f"{what.capitalize()} {index} does not exist in '{stack.path}': "
                    f"it has {n} {what}s (0 to {n - 1})."
                )
            data = take_axis(data, axes.index(letter), index)
            axes = axes.replace(letter, "")
    if "C" not in stack.axes and channel not in (0, -1):
        raise InputError(
            f"Channel {channel} does not exist in '{stack.path}': it has one channel (0)."
        )
    if "Z" not in axes:
        data = expand_axis(data, 0)
    return data


def channel_data(stack: ImageStack, channel: int) -> Any:
    """Return one channel of a stack, with the other axes in order ("TZYX" minus absent ones).

    Parameters
    ----------
    stack : ImageStack
        A stack from :func:`read_tiff`.
    channel : int
        Channel index; ignored (the whole stack is returned) when there is no C axis.

    Returns
    -------
    numpy.ndarray or array-like
        The channel's pixels, same dtype; a view (nothing read) for eager and lazy stacks.

    Raises
    ------
    InputError
        When `channel` is out of range.
    """
    if "C" not in stack.axes:
        return stack.data
    axis = stack.axes.index("C")
    n = stack.data.shape[axis]
    if not -n <= channel < n:
        raise InputError(
            f"Channel {channel} does not exist in '{stack.path}': it has {n} channels."
        )
    return take_axis(stack.data, axis, channel)


# --- reading ---------------------------------------------------------------------------------


def _check_file(path: Path) -> None:
    """Raise a plain-words TiffReadError for a missing, empty, non-regular or non-TIFF file
    (a named pipe or device is refused before it is opened: reading one could wait for ever)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise TiffReadError(
                f"Cannot read '{path}': it is a symbolic link to a file that does not exist."
            ) from None
        raise TiffReadError(f"Cannot read '{path}': the file does not exist.") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TiffReadError(f"Cannot read '{path}': it is a loop of symbolic links.") from None
        raise TiffReadError(f"Cannot read '{path}': {exc.strerror or exc}.") from None
    if stat.S_ISDIR(mode):
        raise TiffReadError(f"Cannot read '{path}': it is a folder, not a TIFF file.")
    if not stat.S_ISREG(mode):
        raise TiffReadError(
            f"Cannot read '{path}': it is not a regular file (a named pipe, socket or device)."
        )
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise TiffReadError(f"Cannot read '{path}': {exc.strerror or exc}.") from exc
    if size == 0:
        raise TiffReadError(f"Cannot read '{path}': the file is empty (0 bytes).")
    if size < 8 and any(magic.startswith(head[:4]) for magic in _TIFF_MAGIC):
        raise TiffReadError(
            f"Cannot read '{path}': the file is incomplete (only {size} bytes; was it truncated "
            "while copying or saving?)."
        )
    if head[:4] not in _TIFF_MAGIC:
        kind = next((name for m, name in _OTHER_FORMATS.items() if head.startswith(m)), None)
        what = f"it looks like {kind}" if kind else f"it starts with {head[:4]!r}"
        raise TiffReadError(
            f"Cannot read '{path}': the file is not a TIFF image ({what}); "
            "convert it to TIFF, e.g. with Fiji."
        )


def _read_error(path: Path, exc: BaseException) -> TiffReadError:
    """Wrap a tifffile/struct/OS exception in a TiffReadError that keeps its message."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError):
        problem = "there is not enough memory to load it; open it lazily (lazy=True)"
    elif any(word in str(exc).lower() for word in (*_DAMAGE_WORDS, "unpack requires")):
        problem = "the file is incomplete or damaged (was it truncated while copying or saving?)"
    else:
        problem = "the file is damaged or uses a TIFF variant that cannot be read"
    return TiffReadError(f"Cannot read '{path}': {problem}. Details: {text}")


@contextlib.contextmanager
def _tifffile_errors() -> Iterator[list[str]]:
    """Collect the error messages tifffile logs in this thread (it logs, not raises, damage)."""
    messages: list[str] = []
    thread = threading.get_ident()

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread and record.levelno >= logging.ERROR:
                messages.append(record.getMessage())

    handler = _Collect()
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(handler)
    try:
        yield messages
    finally:
        tiff_logger.removeHandler(handler)


def _check_damage(path: Path, messages: list[str], tif: tifffile.TiffFile) -> None:
    """Raise when tifffile reported damage or the pixel data runs past the end of the file."""
    damaged = [m for m in messages if any(w in m.lower() for w in _DAMAGE_WORDS)]
    if damaged:
        raise TiffReadError(
            f"Cannot read '{path}': the file is incomplete or damaged (was it truncated while "
            f"copying or saving?). Details: {damaged[0]}"
        )
    size = path.stat().st_size
    series = tif.series[0]
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        end = 0
        for page in series.pages:
            if page is None or not page.dataoffsets:
                continue
            end = max(
                end, max(o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False))
            )
    if end > size:
        raise TiffReadError(
            f"Cannot read '{path}': the file is incomplete (truncated?): its pixels should end "
            f"at byte {end} but the file has {size} bytes."
        )


def _read_open_file(
    tif: tifffile.TiffFile, path: Path, lazy: bool | None, damage: list[str]
) -> ImageStack:
    """Build the ImageStack of series 0 of an open TiffFile."""
    if not tif.series:
        raise TiffReadError(f"Cannot read '{path}': the file holds no image.")
    series = tif.series[0]
    _check_damage(path, damage, tif)
    notes = [note for note in (_larger_series_note(tif, path),) if note]
    src_axes, src_shape = series.axes, tuple(series.shape)
    photometric = int(series.keyframe.photometric)
    out_axes, axis_map, fixed, rgb_axis = plan_axes(src_axes, src_shape, photometric, path)
    if lazy is None:
        lazy = series.nbytes > physical_memory() // 4
    if lazy:
        source: Any = lazy_source(tif, series)
    else:
        source = series.asarray()
        if damage:
            _check_damage(path, damage, tif)
    if rgb_axis is not None:
        plan = (out_axes, axis_map, fixed)
        pixels = None if lazy else source
        out_axes, axis_map, fixed, note = plan_samples(series, pixels, rgb_axis, plan, path)
        notes += [note] if note else []
    data: Any = (
        LazyArray(source, axis_map, fixed, keepalive=tif)
        if lazy
        else np.ascontiguousarray(apply_plan(source, axis_map, fixed))
    )
    voxel, source_name = read_voxel_size(tif, "Z" in out_axes, path)
    n_channels = data.shape[out_axes.index("C")] if "C" in out_axes else 0
    return ImageStack(
        data=data,
        axes=out_axes,
        voxel_size_um=voxel,
        voxel_size_source=source_name,
        channel_names=read_channel_names(tif, n_channels),
        path=path,
        lazy=bool(lazy),
        metadata=read_stored_metadata(tif),
        notes=tuple(notes),
    )


def _larger_series_note(tif: tifffile.TiffFile, path: Path) -> str:
    """A note when a series after the first, which the reader reads, is larger ("" if none)."""
    series = tif.series[0]
    larger = [i for i, other in enumerate(tif.series) if other.size > series.size]
    if not larger:
        return ""
    other = tif.series[larger[0]]
    note = (
        f"'{path.name}' holds {len(tif.series)} image series; reading the first ({series.axes}, "
        f"shape {tuple(series.shape)}), though series {larger[0] + 1} is larger ({other.axes}, "
        f"shape {tuple(other.shape)}): if that is the image, save it as its own file (e.g. in Fiji)."
    )
    logger.warning("%s", note)
    return note
