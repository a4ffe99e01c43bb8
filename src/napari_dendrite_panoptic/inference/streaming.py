"""Segmenting stacks larger than memory: finished planes go to disk, outputs are written plane
by plane.

:class:`DiskPlaneSink` is an :func:`~napari_dendrite_panoptic.inference.iter_predict`
``plane_sink``: it appends each finished (dendrite, spines) plane to two hidden raw files next
to the outputs; :meth:`DiskPlaneSink.stream` gives them back as
:class:`~napari_dendrite_panoptic.io.PlaneStream` for the TIFF writers. Memory stays at a few
planes whatever the depth of the stack. No napari, no Qt.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..io import PlaneStream

RESULT_BYTES_PER_VOXEL = 5
"""uint8 dendrite + uint32 spines held by an in-memory result."""


def result_bytes(shape: tuple[int, ...]) -> int:
    """Bytes an in-memory result of a (Z, Y, X) stack takes (see :data:`RESULT_BYTES_PER_VOXEL`)."""
    return int(np.prod([int(s) for s in shape])) * RESULT_BYTES_PER_VOXEL


class DiskPlaneSink:
    """Collect finished planes of a (Z, Y, X) result in raw files in ``folder``.

    Use as a context manager: the raw files are removed on exit, whatever happened.
    """

    def __init__(self, folder: str | os.PathLike[str], stem: str, shape: tuple[int, int, int]):
        self.shape = tuple(int(s) for s in shape)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._paths = {
            "dendrite": folder / f".{stem}_dendrite.{os.getpid()}.raw.part",
            "spines": folder / f".{stem}_spines.{os.getpid()}.raw.part",
        }
        self._dtypes = {"dendrite": np.dtype(np.uint8), "spines": np.dtype(np.uint32)}
        self._files = {k: open(p, "wb") for k, p in self._paths.items()}  # noqa: SIM115
        self._next_z = 0
        self.max_id = 0

    def __call__(self, z: int, dendrite: np.ndarray, spines: np.ndarray) -> None:
        """Append plane ``z`` (planes arrive in z order): (Y, X) uint8 and (Y, X) uint32."""
        if z != self._next_z:
            raise ValueError(f"plane {z} arrived, plane {self._next_z} was expected")
        self._files["dendrite"].write(np.ascontiguousarray(dendrite, np.uint8).tobytes())
        self._files["spines"].write(np.ascontiguousarray(spines, np.uint32).tobytes())
        if spines.size:
            self.max_id = max(self.max_id, int(spines.max()))
        self._next_z += 1

    def stream(self, which: str) -> PlaneStream:
        """The collected "dendrite" or "spines" result, plane by plane (after all planes)."""
        for handle in self._files.values():
            handle.flush()
        if self._next_z != self.shape[0]:
            raise ValueError(f"{self._next_z} of {self.shape[0]} planes were collected")
        dtype, path = self._dtypes[which], self._paths[which]

        def planes() -> Iterator[np.ndarray]:
            with RawPlanes(path, dtype, self.shape) as raw:
                for z in range(self.shape[0]):
                    yield raw[z]

        top = self.max_id if which == "spines" else 1
        return PlaneStream(self.shape, dtype, planes, top)

    def written(self, which: str) -> RawPlanes:
        """The "dendrite" or "spines" planes collected so far, read and written back one plane
        at a time (for changes after the last plane, e.g. :func:`zlink.trim_out_of_focus`);
        close it (or use it as a context manager) when done."""
        self._files[which].flush()
        shape = (self._next_z, *self.shape[1:])
        return RawPlanes(self._paths[which], self._dtypes[which], shape)

    def close(self) -> None:
        """Close and remove the raw files."""
        for handle in self._files.values():
            handle.close()
        for path in self._paths.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def __enter__(self) -> DiskPlaneSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawPlanes:
    """A (Z, Y, X) array in a raw file, read and written one plane at a time: ``planes[z]`` is
    a copy of plane z, ``planes[z] = plane`` writes it back. Nothing of the file stays in the
    process's memory (a memory map would keep every page it touched resident, 20 MiB per
    2048² plane of spines and dendrite). Close it, or use it as a context manager."""

    def __init__(self, path: str | os.PathLike[str], dtype: np.dtype, shape: tuple[int, ...]):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._plane_items = int(np.prod(self.shape[1:]))
        self._handle = open(path, "r+b")  # noqa: SIM115  (closed by close())

    def _offset(self, z: int) -> int:
        if not 0 <= z < self.shape[0]:
            raise IndexError(f"plane {z} of a stack of {self.shape[0]}")
        return z * self._plane_items * self.dtype.itemsize

    def __getitem__(self, z: int) -> np.ndarray:
        self._handle.seek(self._offset(z))
        plane = np.fromfile(self._handle, dtype=self.dtype, count=self._plane_items)
        return plane.reshape(self.shape[1:])

    def __setitem__(self, z: int, plane: np.ndarray) -> None:
        self._handle.seek(self._offset(z))
        np.ascontiguousarray(plane, self.dtype).reshape(self.shape[1:]).tofile(self._handle)

    def close(self) -> None:
        """Write everything to the file and close it."""
        self._handle.close()

    def __enter__(self) -> RawPlanes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _memory_map_of(volume: object) -> np.memmap | None:
    """The numpy memory map under a (possibly nested) lazy view, or None."""
    for _ in range(8):
        if isinstance(volume, np.memmap):
            return volume
        volume = getattr(volume, "_source", None)
        if volume is None:
            return None
    return None


class ReleasingPlanes:
    """A lazy (Z, Y, X) volume read plane by plane: each plane is copied out, then the pages of
    the file's memory map are given back (``madvise(MADV_DONTNEED)``), so reading a whole stack
    does not leave it resident in the process. Other lazy sources are passed through."""

    def __init__(self, volume: object) -> None:
        self._volume = volume
        self.shape = tuple(int(s) for s in volume.shape)  # type: ignore[attr-defined]
        self.dtype = np.dtype(volume.dtype)  # type: ignore[attr-defined]
        self.ndim = len(self.shape)
        self._map = _memory_map_of(volume)

    def __getitem__(self, index: int) -> np.ndarray:
        plane = np.array(self._volume[index])  # type: ignore[index]
        raw = getattr(self._map, "_mmap", None)
        if raw is not None and hasattr(raw, "madvise"):
            import mmap

            with contextlib.suppress(OSError, ValueError):
                raw.madvise(mmap.MADV_DONTNEED)
        return plane
