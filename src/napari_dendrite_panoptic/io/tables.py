"""Column tables (dict of equal-length 1D arrays) written as CSV, atomically."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..core import atomic_path


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
