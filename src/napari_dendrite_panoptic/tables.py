"""Per-spine tables: column name → 1D array, units in the column names."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .atomic import atomic_path


def spine_table(
    spines: np.ndarray, scores: dict[int, float], voxel_size_um: tuple[float, float, float]
) -> dict[str, np.ndarray]:
    """One row per spine id of a (Z, Y, X) label image.

    Columns: ``id``, ``centroid_{z,y,x}_px``, ``centroid_{z,y,x}_um``, ``size_px``, then
    ``area_um2`` for a single plane or ``volume_um3`` for a stack, and ``score`` (detection score,
    NaN where unknown).
    """
    ids = np.unique(spines)
    ids = ids[ids > 0].astype(np.int64)
    vz, vy, vx = (float(v) for v in voxel_size_um)
    if ids.size:
        cents = np.array(ndi.center_of_mass(np.ones_like(spines, dtype=np.uint8), spines, ids))
        cents = cents.reshape(-1, 3)
        sizes = np.asarray(ndi.sum_labels(np.ones_like(spines, dtype=np.uint8), spines, ids))
    else:
        cents = np.zeros((0, 3))
        sizes = np.zeros(0)
    table: dict[str, np.ndarray] = {"id": ids}
    for k, axis in enumerate("zyx"):
        table[f"centroid_{axis}_px"] = cents[:, k]
    for k, (axis, v) in enumerate(zip("zyx", (vz, vy, vx), strict=False)):
        table[f"centroid_{axis}_um"] = cents[:, k] * v
    table["size_px"] = sizes.astype(np.int64)
    if spines.shape[0] == 1:
        table["area_um2"] = sizes * vy * vx
    else:
        table["volume_um3"] = sizes * vz * vy * vx
    table["score"] = np.array([scores.get(int(i), np.nan) for i in ids], dtype=float)
    return table


def write_table_csv(path: str | Path, table: dict[str, np.ndarray]) -> Path:
    """Write a column table as CSV atomically (header = column names)."""
    columns = list(table)
    n = len(next(iter(table.values()))) if table else 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for i in range(n):
            row = []
            for c in columns:
                v = table[c][i]
                row.append(f"{v:.6g}" if isinstance(v, (float, np.floating)) else str(v))
            writer.writerow(row)
    return Path(path)
