"""The Metrics dock's view of a comparison: the figures table, the per-spine table, the bar chart
and the one-line summary (Qt and matplotlib; no napari layers)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from ..evaluation import Table

logger = logging.getLogger(__name__)

PLOT_FIGURES = (
    ("dendrite_iou", "dendrite IoU"),
    ("dendrite_precision", "dendrite precision"),
    ("dendrite_recall", "dendrite recall"),
    ("spine_pixel_iou", "spine pixel IoU"),
    ("spine_precision", "spine precision"),
    ("spine_recall", "spine recall"),
    ("spine_f1", "spine F1"),
    ("spine_pq", "spine PQ"),
    ("point_precision", "centre precision"),
    ("point_recall", "centre recall"),
    ("point_f1", "centre F1"),
)
"""Figures drawn as bars (key, label), in this order, when present."""
TABLE_COLUMNS = ("index", "plane", "status", "by", "pred_id", "truth_id", "iou", "distance_um")
"""Per-object columns shown in the dock (the CSV holds all of them)."""


def results_table() -> QTableWidget:
    """A read-only table whose rows are selected one whole row at a time."""
    t = QTableWidget()
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    return t


def plot_canvas() -> tuple[Any, Any]:
    """(Qt canvas, axes) for the bar chart, or (None, None) when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:  # matplotlib is optional: the tables still show every figure
        logger.info("matplotlib is not installed: no bar chart in the Metrics dock")
        return None, None
    fig = Figure(figsize=(4, 2.6))
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumHeight(180)
    return canvas, fig.add_subplot(1, 1, 1)


def fill_figures_table(t: QTableWidget, table: Table) -> None:
    """Show a figures table: one figure per row for a single scope, else one plane per row."""
    scopes = [str(s) for s in table.get("scope", table.get("plane", []))]
    keys = [k for k in table if k not in ("scope", "plane")]
    t.clear()
    if len(scopes) == 1:  # one scope: a figure per row
        t.setRowCount(len(keys))
        t.setColumnCount(2)
        t.setHorizontalHeaderLabels(["figure", "value"])
        t.horizontalHeaderItem(1).setToolTip(f"Scope: {scopes[0]}")
        for r, key in enumerate(keys):
            t.setItem(r, 0, QTableWidgetItem(key))
            t.setItem(r, 1, QTableWidgetItem(fmt(table[key][0])))
    else:  # every plane: a plane per row
        t.setRowCount(len(scopes))
        t.setColumnCount(len(keys) + 1)
        t.setHorizontalHeaderLabels(["plane", *keys])
        for r, scope in enumerate(scopes):
            t.setItem(r, 0, QTableWidgetItem(scope))
            for c, key in enumerate(keys, start=1):
                t.setItem(r, c, QTableWidgetItem(fmt(table[key][r])))
    t.resizeColumnsToContents()


def fill_objects_table(t: QTableWidget, objects: Table) -> None:
    """Show the :data:`TABLE_COLUMNS` of a per-object table, one row per object, without
    emitting selection signals while filling."""
    cols = [c for c in TABLE_COLUMNS if c in objects]
    n = len(objects.get("index", ()))
    t.blockSignals(True)
    t.clear()
    t.setRowCount(n)
    t.setColumnCount(len(cols))
    t.setHorizontalHeaderLabels(cols)
    for r in range(n):
        for c, col in enumerate(cols):
            t.setItem(r, c, QTableWidgetItem(fmt(objects[col][r])))
    t.blockSignals(False)
    t.resizeColumnsToContents()


def plotted_figures(figures: Table) -> dict[str, float]:
    """The figures drawn as bars: label → value of the last row (the scope, or all planes);
    absent and non-finite figures are left out."""
    out = {}
    for key, label in PLOT_FIGURES:
        if key in figures and np.isfinite(float(figures[key][-1])):
            out[label] = float(figures[key][-1])
    return out


def draw_bars(ax: Any, values: dict[str, float]) -> None:
    """Draw ``values`` (label → value in [0, 1]) as labelled horizontal bars on ``ax``, the
    first at the top (the caller redraws the canvas)."""
    ax.clear()
    labels = list(values)[::-1]
    ax.barh(labels, [values[k] for k in labels], color="#1b9e77")
    ax.set_xlim(0, 1)
    ax.tick_params(labelsize=7)
    for i, label in enumerate(labels):
        ax.text(min(values[label], 0.85) + 0.01, i, f"{values[label]:.2f}", va="center", fontsize=7)
    ax.figure.tight_layout()


def fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits ("n/a" when not finite), others as str."""
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def summary(figures: Table) -> str:
    """The headline figures of the last row, e.g. ``"spine F1 0.75, PQ 0.75"`` ("" if none)."""
    parts = []
    for key, label in (
        ("dendrite_iou", "dendrite IoU"),
        ("spine_f1", "spine F1"),
        ("spine_pq", "PQ"),
        ("point_f1", "centre F1"),
    ):
        if key in figures:
            parts.append(f"{label} {fmt(figures[key][-1])}")
    return ", ".join(parts)
