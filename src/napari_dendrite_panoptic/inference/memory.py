"""Memory guarding for inference: refuse a job that cannot fit, and recover from running out.

:func:`check_memory` refuses up front a job whose results and working set exceed this
machine's RAM (:func:`memory_needed`); :func:`is_out_of_memory` recognises PyTorch's and
Python's out-of-memory errors; :func:`after_out_of_memory` picks what to retry a plane with
(smaller tiles, then the CPU) or raises :class:`OutOfMemory`;
:func:`keep_large_blocks_off_the_heap` keeps a deep stack's planes from fragmenting glibc's heap
in runs short of memory. The inference loop itself is in
:mod:`napari_dendrite_panoptic.inference`.
"""

from __future__ import annotations

import ctypes
import functools
import sys

import torch

from ..errors import DendritePanopticError
from ..models import LoadedModels
from .tiling import ceil32, smaller_tile


class OutOfMemory(DendritePanopticError, MemoryError):
    """Inference ran out of memory even with the smallest tiles on the CPU."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for PyTorch's (CUDA, MPS, CPU allocator) out-of-memory errors and MemoryError."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


LARGE_BLOCK_BYTES = 16 * 2**20
"""Blocks of at least this size (a 2048² float32 plane) come straight from the system and go
back to it when freed (see :func:`keep_large_blocks_off_the_heap`)."""


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The GNU C library, or None (macOS, Windows, other C libraries)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def keep_large_blocks_off_the_heap() -> None:
    """Have glibc map blocks of :data:`LARGE_BLOCK_BYTES` and more from the system and unmap
    them when freed (``mallopt(M_MMAP_THRESHOLD)``); nothing elsewhere. By default glibc raises
    that threshold to 32 MiB after the first large block is freed, so a plane's arrays and
    tensors then live in its heap, where later planes fragment them and the process keeps
    growing. For the whole process, and only where memory is short (runs whose planes go to a
    ``plane_sink``): mapping each large block afresh costs time."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(-3, LARGE_BLOCK_BYTES)  # -3: M_MMAP_THRESHOLD


def memory_needed(nz: int, ny: int, nx: int, nh: int, nw: int) -> int:
    """Bytes of RAM a job needs besides the models: the (Z, Y, X) results (uint8 dendrite,
    uint32 spines; ``nz`` = 0 when planes go to a ``plane_sink``) and one plane's working set at
    input (``ny`` x ``nx``) and native (``nh`` x ``nw``) size (float32 copies, blended sums,
    labels)."""
    return nz * ny * nx * 5 + ny * nx * 24 + nh * nw * 20


def check_memory(nz: int, ny: int, nx: int, nh: int, nw: int) -> None:
    """Refuse up front a job that cannot fit in this machine's RAM, instead of failing late.

    Sizes in px as for :func:`memory_needed`; raises :class:`OutOfMemory` when its bytes exceed
    :func:`napari_dendrite_panoptic.io.physical_memory`.
    """
    from ..io import physical_memory  # looked up per call: tests patch io.physical_memory

    need, have = memory_needed(nz, ny, nx, nh, nw), physical_memory()
    if need > have:
        raise OutOfMemory(
            f"segmenting {nz} plane(s) of {ny}x{nx} px needs about {need / 2**30:.1f} GiB of "
            f"memory, more than this machine's {have / 2**30:.1f} GiB: crop the image, bin it, "
            "or segment fewer planes at a time"
        )


def _free_memory(device: torch.device) -> None:
    """Give cached GPU memory back after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _cpu_models(models: LoadedModels) -> LoadedModels:
    """The same networks on the CPU (rebuilt from the card, weights copied, nothing reloaded)."""
    from ..models import build_dendrite_model, build_spine_model, for_inference

    cpu = torch.device("cpu")
    spines = build_spine_model(models.card.spines.config)
    spines.load_state_dict(models.spines.state_dict())
    dendrites = build_dendrite_model(models.card.dendrites.config)
    dendrites.load_state_dict(models.dendrites.state_dict())
    return LoadedModels(
        models.card, models.folder, for_inference(spines, cpu), for_inference(dendrites, cpu), cpu
    )


def after_out_of_memory(
    models: LoadedModels,
    tile: int,
    tile_size: int,
    shape: tuple[int, int],
    native_shape: tuple[int, int],
) -> tuple[LoadedModels, int, str]:
    """What to retry a plane with after an out-of-memory error: smaller tiles, else the same
    tiles on the CPU; returns (models, tile size in px, warning for the user). Raises
    :class:`OutOfMemory` when neither is left. ``tile``: the tile size (px) that failed;
    ``tile_size``: the configured one, used again on the CPU; ``shape``: the plane's (Y, X) px;
    ``native_shape``: at the native pixel size."""
    _free_memory(models.device)
    nh, nw = native_shape
    smaller = smaller_tile(tile, nh, nw)
    used = min(tile, ceil32(max(nh, nw)))
    if smaller is not None:
        warning = (
            f"Out of memory on {models.device} with {used} px tiles: "
            f"retrying with {smaller} px tiles."
        )
        return models, smaller, warning
    if models.device.type != "cpu":
        warning = (
            f"Out of memory on {models.device} even with {used} px tiles: "
            "continuing on the CPU (slower)."
        )
        return _cpu_models(models), tile_size, warning
    raise OutOfMemory(
        f"Not enough memory to segment {shape[0]}x{shape[1]} px planes, even with "
        f"{used} px tiles on the CPU: close other programs or crop the image."
    ) from None
