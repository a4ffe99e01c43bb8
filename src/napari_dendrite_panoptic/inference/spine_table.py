"""The per-spine table of a segmentation: one row per spine id (centroid in px and µm, size, score), built plane by plane."""

from __future__ import annotations

import numpy as np


class SpineTableAccumulator:
    """Per-spine sizes and centroids gathered plane by plane (for stacks too big to hold).

    Feed every (Y, X) plane of a label image with :meth:`add`, in any order; :meth:`table`
    gives the same table as :func:`spine_table` on the whole stack.
    """

    def __init__(self) -> None:
        self._sums = np.zeros((0, 4))  # per id: count, sum z, sum y, sum x
        self.n_planes = 0

    def add(self, z: int, plane: np.ndarray) -> None:
        """Count plane ``z`` (Y, X) of non-negative integer labels."""
        self.n_planes = max(self.n_planes, z + 1)
        flat = np.asarray(plane).ravel()
        mask = flat > 0
        if not mask.any():
            return
        ids = flat[mask].astype(np.int64)
        yy, xx = np.divmod(np.flatnonzero(mask), plane.shape[1])
        n = int(ids.max()) + 1
        if n > self._sums.shape[0]:
            self._sums = np.vstack([self._sums, np.zeros((n - self._sums.shape[0], 4))])
        counts = np.bincount(ids, minlength=n)
        self._sums[:n, 0] += counts
        self._sums[:n, 1] += counts * z
        self._sums[:n, 2] += np.bincount(ids, weights=yy, minlength=n)
        self._sums[:n, 3] += np.bincount(ids, weights=xx, minlength=n)

    def table(
        self, scores: dict[int, float], voxel_size_um: tuple[float, float, float]
    ) -> dict[str, np.ndarray]:
        """The spine table (see :func:`spine_table`)."""
        ids = np.flatnonzero(self._sums[:, 0] > 0)
        ids = ids[ids > 0].astype(np.int64)
        sizes = self._sums[ids, 0]
        cents = self._sums[ids, 1:] / sizes[:, None] if ids.size else np.zeros((0, 3))
        vz, vy, vx = (float(v) for v in voxel_size_um)
        table: dict[str, np.ndarray] = {"id": ids}
        for k, axis in enumerate("zyx"):
            table[f"centroid_{axis}_px"] = cents[:, k]
        for k, (axis, v) in enumerate(zip("zyx", (vz, vy, vx), strict=False)):
            table[f"centroid_{axis}_um"] = cents[:, k] * v
        table["size_px"] = sizes.astype(np.int64)
        if self.n_planes == 1:
            table["area_um2"] = sizes * vy * vx
        else:
            table["volume_um3"] = sizes * vz * vy * vx
        table["score"] = np.array([scores.get(int(i), np.nan) for i in ids], dtype=float)
        return table


def spine_table(
    spines: np.ndarray, scores: dict[int, float], voxel_size_um: tuple[float, float, float]
) -> dict[str, np.ndarray]:
    """One row per spine id of a (Z, Y, X) label image.

    Columns: ``id``, ``centroid_{z,y,x}_px``, ``centroid_{z,y,x}_um``, ``size_px``, then
    ``area_um2`` for a single plane or ``volume_um3`` for a stack, and ``score`` (detection score,
    NaN where unknown).
    """
    acc = SpineTableAccumulator()
    for z in range(spines.shape[0]):  # one plane at a time: ``spines`` may be planes on disk
        acc.add(z, spines[z])
    acc.n_planes = spines.shape[0]
    return acc.table(scores, voxel_size_um)
