"""One imaging session as the tracker sees it, and the per-spine features it matches on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..core import as_zyx
from ..errors import InputError

VOXEL_TOLERANCE = 0.01
"""Sessions whose voxel size differs from the first's by more than this fraction are resampled."""


@dataclass
class Session:
    """One session: ``dendrite`` (Z, Y, X) mask (non-zero on the shaft), ``spines`` (Z, Y, X)
    integer labels (one id per spine, 0 = none), ``image`` (Z, Y, X) intensities (None: the
    registration runs on the labels), ``voxel_size_um`` (z, y, x) µm, ``day`` (None: unknown),
    ``name`` for messages and tables, ``scores`` (label -> detection score 0-1) and ``types``
    (label -> spine type) when known."""

    dendrite: np.ndarray
    spines: np.ndarray
    voxel_size_um: tuple[float, float, float]
    image: np.ndarray | None = None
    day: float | None = None
    name: str = ""
    scores: dict[int, float] = field(default_factory=dict)
    types: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dendrite = as_zyx(np.asarray(self.dendrite))
        self.spines = as_zyx(np.asarray(self.spines))
        if self.image is not None:
            self.image = as_zyx(np.asarray(self.image))
        if self.dendrite.shape != self.spines.shape or (
            self.image is not None and self.image.shape != self.spines.shape
        ):
            raise InputError(
                f"session {self.name or '?'}: image, dendrite and spine labels differ in shape"
            )
        if self.spines.dtype.kind not in "iu" or (self.spines.size and self.spines.min() < 0):
            raise InputError(f"session {self.name or '?'}: spine labels must be integers >= 0")
        self.voxel_size_um = tuple(float(v) for v in self.voxel_size_um)

    def registration_image(self) -> np.ndarray:
        """(Z, Y, X) float32 image the registration uses: the image, else the labels (dendrite
        and spines as one mask)."""
        if self.image is not None:
            return np.asarray(self.image, dtype=np.float32)
        return ((self.dendrite > 0) | (self.spines > 0)).astype(np.float32)

    def resampled_to(self, voxel_um: tuple[float, float, float]) -> Session:
        """This session on a grid of ``voxel_um`` (z, y, x) µm: image linearly, labels by
        nearest neighbour."""
        factors = [a / b for a, b in zip(self.voxel_size_um, voxel_um, strict=True)]
        if self.spines.shape[0] == 1:
            factors[0] = 1.0

        def zoom(a, order):
            return (
                None
                if a is None
                else ndi.zoom(a, factors, order=order, grid_mode=True, mode="grid-constant")
            )

        return Session(
            dendrite=zoom(self.dendrite, 0),
            spines=zoom(self.spines, 0),
            voxel_size_um=tuple(voxel_um),
            image=zoom(None if self.image is None else self.image.astype(np.float32), 1),
            day=self.day,
            name=self.name,
            scores=dict(self.scores),
            types=dict(self.types),
        )


def voxel_differs(a: tuple[float, ...], b: tuple[float, ...], planar: bool) -> bool:
    """Whether two (z, y, x) voxel sizes differ by more than :data:`VOXEL_TOLERANCE` (z
    ignored for planes)."""
    axes = range(1, 3) if planar else range(3)
    return any(abs(a[k] - b[k]) > VOXEL_TOLERANCE * max(a[k], b[k]) for k in axes)


@dataclass
class SpineFeatures:
    """The spines of one session: ``labels`` (N,) their ids in the session's label image,
    ``centroid_um`` (N, 3) in the session's own frame, ``size`` (N,) voxels."""

    labels: np.ndarray
    centroid_um: np.ndarray
    size: np.ndarray


def spine_features(spines: np.ndarray, voxel_um: tuple[float, float, float]) -> SpineFeatures:
    """Centroids (µm) and sizes (voxels) of every spine of a (Z, Y, X) label image."""
    flat = spines.reshape(-1)
    idx = np.flatnonzero(flat)
    if idx.size == 0:
        return SpineFeatures(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.int64))
    lab = flat[idx].astype(np.int64)
    ids, inverse = np.unique(lab, return_inverse=True)
    count = np.bincount(inverse)
    coords = np.unravel_index(idx, spines.shape)
    cent = np.stack([np.bincount(inverse, weights=c) / count for c in coords], 1)
    return SpineFeatures(ids, cent * np.asarray(voxel_um), count)
