"""Reading an image plane by plane for inference, and resampling planes to and from the model.

:func:`stack_percentiles` finds the
normalisation bounds of a stack from a few of its planes; :class:`PlaneReader` reads, normalises
and resamples each plane once, with the neighbours a multi-plane model sees; :func:`resize`
resamples (B, C, H, W) tensors (to the model's pixel size and back). Used by
:func:`napari_dendrite_panoptic.inference.iter_predict`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..core import finite_percentiles
from .memory import OutOfMemory


def reading_dtype(dtype: Any) -> np.dtype:
    """The float type planes of ``dtype`` are read and normalised in: float64 for 32- and 64-bit
    integers and float64 (float32 keeps only 24 bits: an int32 image with a large offset would
    collapse to a few grey levels), else float32."""
    dtype = np.dtype(dtype)
    wide = (dtype.kind in "iu" and dtype.itemsize >= 4) or (
        dtype.kind == "f" and dtype.itemsize > 4
    )
    return np.dtype(np.float64 if wide else np.float32)


def stack_percentiles(volume: Any, low: float, high: float) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles (0-100) of a (Z, Y, X) volume of any real dtype, in
    its intensity units, over at most 16 evenly spaced planes (each subsampled to about 250 000
    pixels), finite values only; (0.0, 1.0) when no value is finite."""
    nz = volume.shape[0]
    zs = np.unique(np.linspace(0, nz - 1, min(nz, 16)).round().astype(int))
    values = []
    for z in zs:
        plane = np.asarray(volume[int(z)], dtype=reading_dtype(volume.dtype)).ravel()
        step = max(1, plane.size // 250_000)
        values.append(plane[::step])
    bounds = finite_percentiles(np.concatenate(values), low, high)
    return bounds if bounds is not None else (0.0, 1.0)


def resize(t: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a (B, C, H, W) float tensor to ``size`` (h, w) px, same dtype and device.

    ``mode`` "bilinear" (anti-aliased when shrinking) or "nearest" (centred, for labels: pixel
    centres map to pixel centres). Returned unchanged when already of that size.
    """
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    if mode == "nearest":
        return F.interpolate(t, size=size, mode="nearest-exact")
    shrink = size[0] < t.shape[-2] or size[1] < t.shape[-1]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrink)


class PlaneReader:
    """The planes of a (Z, Y, X) volume, each read and resampled once.

    ``raw(z)``: plane z as read, (Y, X) float32 (float64 for 32- and 64-bit integers and
    float64, :func:`reading_dtype`) with non-finite pixels set to ``lo``.
    ``native(z)``: (P, nh, nw) float32, planes z - reach .. z + reach (clamped to the stack),
    normalised as ``(raw - lo) / span`` and resampled to the model's native pixel size; P is
    ``2 * reach + 1``, the planes the networks see. ``forget_before(z)`` drops the planes no
    plane from z on needs, so a stack is read in the memory of a few planes.
    """

    def __init__(
        self, volume: Any, lo: float, span: float, native_shape: tuple[int, int], reach: int
    ) -> None:
        self.volume, self.lo, self.span = volume, lo, span
        self.native_shape, self.reach = native_shape, reach
        self.nz = int(volume.shape[0])
        self._raws: dict[int, np.ndarray] = {}
        self._natives: dict[int, torch.Tensor] = {}

    def raw(self, z: int) -> np.ndarray:
        if z not in self._raws:
            try:
                raw = np.asarray(self.volume[z], dtype=reading_dtype(self.volume.dtype))
                self._raws[z] = np.where(np.isfinite(raw), raw, self.lo)
            except MemoryError:
                ny, nx = (int(s) for s in self.volume.shape[1:])
                raise OutOfMemory(
                    f"not enough memory to read plane {z + 1} of {ny}x{nx} px: close other "
                    "programs or crop the image"
                ) from None
        return self._raws[z]

    def native(self, z: int) -> torch.Tensor:
        out = []
        for k in range(z - self.reach, z + self.reach + 1):
            k = min(max(k, 0), self.nz - 1)
            if k not in self._natives:
                scaled = (self.raw(k) - self.lo) / self.span  # in the reading dtype, then float32
                plane = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))
                self._natives[k] = resize(plane[None, None], self.native_shape)[0, 0]
            out.append(self._natives[k])
        return torch.stack(out)

    def forget_before(self, z: int) -> None:
        for cache in (self._raws, self._natives):
            for k in [k for k in cache if k < z - self.reach]:
                del cache[k]
