"""Column tables of a comparison: the per-object table (its columns, one row per object),
the one-row figures table, and writing either as CSV.

A table is a dict of column name → 1D numpy array, every column as long as the others; units
are in the column names (``_px`` pixels, ``_um`` µm). :mod:`.compare` builds its object tables
here; the CLI (``evaluate --csv``) and the "Metrics" dock write them with :func:`write_csv`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

Table = dict[str, np.ndarray]

OBJECT_COLUMNS = (
    "index",
    "status",
    "by",
    "pred_id",
    "truth_id",
    "iou",
    "distance_um",
    "centroid_z_px",
    "centroid_y_px",
    "centroid_x_px",
    "centroid_z_um",
    "centroid_y_um",
    "centroid_x_um",
    "size_px",
)
"""Columns of a per-object table, in order (a per-plane table has ``plane`` first); their
meaning is described on :class:`comparison.Comparison`."""

_DTYPES = {"status": object, "by": object, "pred_id": np.int64, "truth_id": np.int64}


def object_row(status, by, pred_id, truth_id, iou, dist, centroid_px, size, vox) -> dict:
    """One object as a dict of :data:`OBJECT_COLUMNS` values (all but ``index``).

    ``status`` "TP"/"FP"/"FN" and ``by`` "iou"/"distance" (str); ``pred_id``, ``truth_id`` int
    (0 = none); ``iou`` and ``dist`` (µm) float, NaN where not measured; ``centroid_px`` (3,)
    float (z, y, x) px; ``size`` int px; ``vox`` (3,) float (z, y, x) µm per px, which gives the
    ``centroid_*_um`` columns.
    """
    c = np.asarray(centroid_px, dtype=float)
    row = {
        "status": status,
        "by": by,
        "pred_id": int(pred_id),
        "truth_id": int(truth_id),
        "iou": float(iou),
        "distance_um": float(dist),
    }
    for k, axis in enumerate("zyx"):
        row[f"centroid_{axis}_px"] = float(c[k])
    for k, axis in enumerate("zyx"):
        row[f"centroid_{axis}_um"] = float(c[k] * vox[k])
    row["size_px"] = int(size)
    return row


def objects_table(rows: list[dict], extra: Sequence[str] = ()) -> Table:
    """Rows of :func:`object_row` (plus the ``extra`` columns, first) as a column table of
    ``len(rows)`` rows: ``index`` numbers them 1..n (int64); ``status``/``by`` object (str);
    ids, ``size_px`` and ``plane`` int64; the other columns float64."""
    columns = [*extra, *OBJECT_COLUMNS]
    table: Table = {}
    for c in columns:
        if c == "index":
            table[c] = np.arange(1, len(rows) + 1, dtype=np.int64)
            continue
        dtype = _DTYPES.get(c, np.int64 if c in ("size_px", "plane") else float)
        table[c] = np.array([r[c] for r in rows], dtype=dtype)
    return table


def figures_table(figures: dict[str, float], name: str = "stack") -> Table:
    """One comparison's figures as a one-row table: ``scope`` = ``name`` (object array of
    shape (1,)), then one (1,) array per figure (units as in the figure names)."""
    table: Table = {"scope": np.array([name], dtype=object)}
    for key, value in figures.items():
        table[key] = np.array([value])
    return table


def write_csv(path: str | Path, table: Table) -> Path:
    """Write a column table (figures or objects) as CSV atomically; NaN is written as ``nan``.
    Returns the path written."""
    from ..io import write_table_csv

    return write_table_csv(path, table)
