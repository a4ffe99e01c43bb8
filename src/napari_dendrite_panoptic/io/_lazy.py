"""Read-on-demand arrays for stacks too large to load: :class:`LazyArray` and its sources.

A lazily read TIFF series is a :class:`FileBlock` (pixels stored uncompressed, in one block, in
the machine's byte order, read plane by plane with plain reads) or a zarr view of the file,
wrapped in a :class:`LazyArray`, which reorders axes, fixes some at one index and inserts length-1 axes without reading, and
reads only the planes that are indexed. :func:`physical_memory` gives the RAM that
:func:`napari_dendrite_panoptic.io.read_tiff` compares a stack's size with.

This module never imports napari, Qt or torch; zarr is imported only when a compressed or
tiled file is opened lazily.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import tifffile


class LazyArray:
    """Read-on-demand view of a lazily indexed array (e.g. a zarr array over a TIFF file).

    The view reorders the source's axes, fixes some source axes at one index and can insert
    length-1 axes, without reading anything. Indexing with integers and slices reads only the
    needed part; ``numpy.asarray(view)`` reads everything.

    Parameters
    ----------
    source : array-like
        Array with ``shape``, ``dtype`` and basic (integer and slice) ``__getitem__``.
    axis_map : tuple of (int or None)
        For each axis of the view, the source axis it shows, or None for an inserted axis
        of length 1.
    fixed : mapping of int to int, optional
        Source axes that the view does not show, each read at the given index.
    keepalive : object, optional
        Object kept referenced while the view lives (e.g. the open ``tifffile.TiffFile``).
    """

    def __init__(
        self,
        source: Any,
        axis_map: tuple[int | None, ...],
        fixed: Mapping[int, int] | None = None,
        keepalive: Any = None,
    ) -> None:
        self._source = source
        self._axis_map = tuple(axis_map)
        self._fixed = dict(fixed or {})
        self._keepalive = keepalive
        shown = [a for a in self._axis_map if a is not None]
        if sorted(shown + list(self._fixed)) != list(range(len(source.shape))):
            raise ValueError(f"axis_map {axis_map} and fixed {fixed} do not cover the source.")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the view."""
        return tuple(1 if a is None else int(self._source.shape[a]) for a in self._axis_map)

    @property
    def dtype(self) -> np.dtype:
        """Data type of the source."""
        return np.dtype(self._source.dtype)

    @property
    def ndim(self) -> int:
        """Number of dimensions of the view."""
        return len(self._axis_map)

    @property
    def size(self) -> int:
        """Number of elements of the view."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the view takes once read."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyArray(shape={self.shape}, dtype={self.dtype})"

    def take_index(self, axis: int, index: int) -> LazyArray:
        """Return a view without `axis`, fixed at `index` (nothing is read)."""
        index = _normalise_index(index, self.shape[axis])
        axis_map = list(self._axis_map)
        source_axis = axis_map.pop(axis)
        fixed = dict(self._fixed)
        if source_axis is not None:
            fixed[source_axis] = index
        return LazyArray(self._source, tuple(axis_map), fixed, self._keepalive)

    def expand_dims(self, axis: int) -> LazyArray:
        """Return a view with a new axis of length 1 at position `axis` (nothing is read)."""
        axis_map = list(self._axis_map)
        axis_map.insert(axis, None)
        return LazyArray(self._source, tuple(axis_map), self._fixed, self._keepalive)

    def transpose(self, order: tuple[int, ...]) -> LazyArray:
        """Return a view with the axes reordered as `order` (nothing is read)."""
        axis_map = tuple(self._axis_map[i] for i in order)
        return LazyArray(self._source, axis_map, self._fixed, self._keepalive)

    def __getitem__(self, key: Any) -> np.ndarray:
        expanded = _expand_key(key, self.ndim)
        if expanded is None:  # fancy indexing: read all, then index with numpy
            return np.asarray(self)[key]
        key = expanded
        source_key: list[Any] = [slice(None)] * len(self._source.shape)
        for source_axis, index in self._fixed.items():
            source_key[source_axis] = index
        kept: list[tuple[int | None, int]] = []  # (source axis, length) of each output axis
        for (source_axis, item), n in zip(
            zip(self._axis_map, key, strict=True), self.shape, strict=True
        ):
            if isinstance(item, slice):
                kept.append((source_axis, len(range(n)[item])))
                if source_axis is not None:
                    source_key[source_axis] = item
            elif source_axis is not None:
                source_key[source_axis] = _normalise_index(item, n)
            else:
                _normalise_index(item, n)  # an inserted axis: only 0 and -1 are valid
        block = np.asarray(self._source[tuple(source_key)])
        read_axes = [a for a, k in enumerate(source_key) if isinstance(k, slice)]
        order = [read_axes.index(a) for a, _ in kept if a is not None]
        block = block.transpose(order)
        for position, (source_axis, length) in enumerate(kept):
            if source_axis is None:
                block = np.expand_dims(block, position)[
                    (slice(None),) * position + (slice(length),)
                ]
        return block

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        block = self[...]
        return block if dtype is None else block.astype(dtype, copy=False)


def lazy_source(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> Any:
    """Open series 0 of `tif` for reading on demand.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file; it must stay open while the result is used.
    series : tifffile.TiffPageSeries
        Its first series (``tif.series[0]``).

    Returns
    -------
    FileBlock or zarr.Array
        A :class:`FileBlock` in the series' own axis order when the pixels are contiguous,
        uncompressed and in the machine's byte order; otherwise a zarr array over the file.
    """
    keyframe = series.keyframe
    native = "<" if sys.byteorder == "little" else ">"
    if (
        series.dataoffset is not None
        and tif.byteorder == native
        and int(keyframe.compression) == 1
        and int(keyframe.predictor) == 1
        and int(keyframe.fillorder) == 1
        and keyframe.bitspersample == keyframe.dtype.itemsize * 8
    ):
        return FileBlock(
            tif.filehandle.path, keyframe.dtype, int(series.dataoffset), tuple(series.shape)
        )
    import zarr

    return zarr.open(tif.aszarr(series=0, level=0), mode="r")


class FileBlock:
    """Uncompressed pixels stored in one block of a file, read plane by plane with ordinary
    reads. Unlike a memory map, a file cut short while it is read gives a
    :class:`~napari_dendrite_panoptic.errors.TiffReadError`, never a bus error that ends the
    process (and the batch with it).

    Indexed like a numpy array with one int or slice per axis; the last two axes are a plane.
    """

    def __init__(self, path: str, dtype: Any, offset: int, shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.offset = str(path), np.dtype(dtype), int(offset)
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        import itertools

        from ..errors import TiffReadError

        key = _expand_key(key, self.ndim)
        if key is None:
            raise IndexError("a FileBlock takes one int or slice per axis")
        lead_shape, (ny, nx) = self.shape[:-2], self.shape[-2:]
        ranges = [
            range(n)[k] if isinstance(k, slice) else [_normalise_index(k, n)]
            for k, n in zip(key[:-2], lead_shape, strict=True)
        ]
        plane_bytes = ny * nx * self.dtype.itemsize
        planes = []
        with open(self.path, "rb") as fh:
            for index in itertools.product(*ranges):
                flat = int(np.ravel_multi_index(index, lead_shape)) if lead_shape else 0
                fh.seek(self.offset + flat * plane_bytes)
                data = fh.read(plane_bytes)
                if len(data) < plane_bytes:
                    raise TiffReadError(
                        f"Cannot read '{self.path}': the file is incomplete (truncated while it "
                        f"was read?): plane {flat + 1} ends at byte "
                        f"{self.offset + (flat + 1) * plane_bytes} but the file has "
                        f"{os.path.getsize(self.path)} bytes."
                    )
                planes.append(np.frombuffer(data, self.dtype).reshape(ny, nx)[key[-2:]])
        kept = [len(r) for k, r in zip(key[:-2], ranges, strict=True) if isinstance(k, slice)]
        if not planes:
            return np.empty((*kept, *np.empty((ny, nx))[key[-2:]].shape), self.dtype)
        return np.stack(planes).reshape(*kept, *planes[0].shape)


def physical_memory() -> int:
    """Return the machine's RAM in bytes (psutil: Linux, macOS and Windows alike).

    Returns
    -------
    int
        The total physical memory; 8 GiB only where psutil cannot tell.
    """
    import psutil

    try:
        return int(psutil.virtual_memory().total)
    except (OSError, RuntimeError, AttributeError):
        return 8 * 1024**3


def _normalise_index(index: Any, n: int) -> int:
    """A non-negative int index into an axis of length `n`, or IndexError."""
    index = int(index)
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of bounds for an axis of length {n}")
    return index % n


def _expand_key(key: Any, ndim: int) -> tuple[Any, ...] | None:
    """Key as one int or slice per axis; None when it needs numpy's advanced indexing."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is None or not isinstance(k, slice | int | np.integer | type(...)) for k in key):
        return None
    if sum(k is Ellipsis for k in key) > 1:
        return None
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: {len(key)} for {ndim} dimensions")
    return key + (slice(None),) * (ndim - len(key))


def take_axis(data: Any, axis: int, index: int) -> Any:
    """Return `data` without `axis`, taken at `index`, without reading it.

    Parameters
    ----------
    data : numpy.ndarray or LazyArray
        The array.
    axis : int
        Axis to drop.
    index : int
        Position along `axis` to keep (already checked by the caller).

    Returns
    -------
    numpy.ndarray or LazyArray
        A numpy view for numpy arrays (memmaps included), a lazy view for :class:`LazyArray`.
    """
    if isinstance(data, LazyArray):
        return data.take_index(axis, index)
    return data[(slice(None),) * axis + (index,)]


def expand_axis(data: Any, axis: int) -> Any:
    """Return `data` with a new length-1 axis at position `axis`, without reading it.

    Parameters
    ----------
    data : numpy.ndarray or LazyArray
        The array.
    axis : int
        Position of the new axis.

    Returns
    -------
    numpy.ndarray or LazyArray
        A numpy view for numpy arrays, a lazy view for :class:`LazyArray`.
    """
    if isinstance(data, LazyArray):
        return data.expand_dims(axis)
    return np.expand_dims(data, axis)
