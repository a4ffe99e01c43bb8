"""The Spine analysis dock's view of a result: sortable spine and branch tables, and the legend of
the spine type colours (Qt; no napari layers)."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

TYPE_COLOURS = {
    "mushroom": "#e6194b",
    "stubby": "#3cb44b",
    "branched": "#ffe119",
    "thin": "#4363d8",
    "filopodium": "#f58231",
}
"""The colour of each spine type, in the spine layer and in the legend."""


def type_legend_html() -> str:
    """The type colours as one line of HTML: a coloured square and the type's name each."""
    return " ".join(
        f'<span style="color:{colour}">&#9632;</span>&nbsp;{name}'
        for name, colour in TYPE_COLOURS.items()
    )


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number, not its text."""

    def __init__(self, value: Any) -> None:
        text = f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)
        super().__init__(text)
        self.value = value
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        try:
            a, b = float(self.value), float(other.value)  # type: ignore[attr-defined]
        except (TypeError, ValueError, AttributeError):
            return self.text() < other.text()
        if np.isnan(a):
            return False
        return True if np.isnan(b) else a < b


def fill_table(widget: QTableWidget, table: dict[str, np.ndarray]) -> None:
    """Show ``table`` (column → values) in ``widget``, one row per entry, sortable by number."""
    widget.setSortingEnabled(False)
    cols = list(table)
    n = len(next(iter(table.values()))) if cols else 0
    widget.clear()
    widget.setColumnCount(len(cols))
    widget.setRowCount(n)
    widget.setHorizontalHeaderLabels(cols)
    for j, c in enumerate(cols):
        values = np.asarray(table[c])
        for i in range(n):
            widget.setItem(i, j, NumberItem(values[i].item() if values.ndim else values))
    widget.setSortingEnabled(True)
