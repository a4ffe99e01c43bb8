"""Column tables (dict of equal-length 1D arrays) written as CSV, atomically."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..core import atomic_path

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text: a cell starting with ``= + - @``, a tab
    or a carriage return would be read as a formula, so it gets a leading ``'`` (OWASP's rule
    against CSV injection). Numbers are written as they are, not through this."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def write_table_csv(path: str | Path, table: dict[str, np.ndarray]) -> Path:
    """Write a column table as CSV atomically (header = column names); text cells pass through
    :func:`spreadsheet_safe`."""
    columns = list(table)
    n = len(next(iter(table.values()))) if table else 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([spreadsheet_safe(str(c)) for c in columns])
        for i in range(n):
            row = []
            for c in columns:
                v = table[c][i]
                if isinstance(v, (float, np.floating)):
                    row.append(f"{v:.6g}")
                elif isinstance(v, (str, np.str_, bytes)):
                    row.append(spreadsheet_safe(str(v)))
                else:
                    row.append(str(v))
            writer.writerow(row)
    return Path(path)
