"""Dock widget "Metrics": compare prediction layers with ground-truth layers and show where they
differ.

The widget only turns layers into arrays (µm from the layer scale) and results back into layers;
every figure comes from :mod:`napari_dendrite_panoptic.comparison`, the engine that
``dendrite-panoptic evaluate`` uses too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import comparison as cmp
from ..errors import DendritePanopticError, OutputExistsError
from ._common import (
    OURS,
    add_or_update_labels,
    button_row,
    form,
    is_ours,
    voxel_size_from_scale,
)

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

NONE = "(none)"
SCOPES = ("Current plane", "Whole stack", "Every plane")
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


class MetricsWidget(QWidget):
    """Compare predicted and ground-truth dendrite and spine layers.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose Labels (and, for spine ground truth, Points) layers are offered; it
        receives the difference layers ``<pred> vs <truth> matches`` (spines: one label per
        object of the table, coloured by TP/FP/FN; a Points layer for centre ground truth) and
        ``<pred> vs <truth> differences`` (dendrite: 1 = false positive, 2 = false negative).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.figures: cmp.Table = {}
        """The last figures table (one row per scope / plane) as column → array."""
        self.objects: cmp.Table = {}
        """The last per-object table (column → array), one row per TP/FP/FN spine."""
        self.match_layer: Any = None
        self._context: dict[str, Any] = {}
        self._split_name: str | None = None
        self.worker: Any = None
        """The running computation (a napari FunctionWorker), None when idle."""
        self._pending: dict[str, Any] = {}

        self.pred_dendrite = QComboBox()
        self.truth_dendrite = QComboBox()
        self.pred_spines = QComboBox()
        self.truth_spines = QComboBox()
        self.truth_spines.setToolTip("Labels with one id per spine, or Points at spine centres")
        self.iou = _spin(0.05, 1.0, cmp.DEFAULT_IOU, 0.05, 2)
        self.distance = _spin(0.01, 100.0, cmp.DEFAULT_DISTANCE_UM, 0.1, 2)
        self.distance.setSuffix(" µm")
        self.scope = QComboBox()
        self.scope.addItems(SCOPES)
        self.scope.setCurrentText("Whole stack")
        self.show_layers = QCheckBox("Show differences as layers")
        self.show_layers.setChecked(True)
        self.compute_button = QPushButton("Compute")
        self.compute_button.clicked.connect(self.compute)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._export_dialog)
        self.export_button.setEnabled(False)
        self.split_button = QPushButton()
        self.split_button.clicked.connect(self.split_semantic)
        self.split_button.setVisible(False)
        self.status_label = QLabel("Choose a prediction and a ground truth, then Compute.")
        self.status_label.setWordWrap(True)
        self.figures_table = _table()
        self.objects_table = _table()
        self.objects_table.itemSelectionChanged.connect(self._on_row_selected)
        self.canvas, self._axes = _plot_canvas()

        layout = QVBoxLayout(self)
        layout.addLayout(
            form(
                [
                    ("Dendrite prediction", self.pred_dendrite),
                    ("Dendrite ground truth", self.truth_dendrite),
                    ("Spine prediction", self.pred_spines),
                    ("Spine ground truth", self.truth_spines),
                    ("Match at IoU ≥", self.iou),
                    ("Centre within", self.distance),
                    ("Scope", self.scope),
                ]
            )
        )
        layout.addWidget(self.show_layers)
        layout.addLayout(button_row(self.compute_button, self.export_button))
        layout.addWidget(self.split_button)
        layout.addWidget(self.status_label)
        layout.addWidget(QLabel("Figures"))
        layout.addWidget(self.figures_table)
        if self.canvas is not None:
            layout.addWidget(self.canvas)
        layout.addWidget(QLabel("Spines (click a row to go to it)"))
        layout.addWidget(self.objects_table)

        events = self.viewer.layers.events
        for name in ("inserted", "removed", "reordered", "renamed"):
            if hasattr(events, name):
                getattr(events, name).connect(self.refresh_layers)
        self.refresh_layers()

    # --- pickers ---------------------------------------------------------------------------
    def refresh_layers(self, *_: Any) -> None:
        """Offer the viewer's Labels layers (and Points for spine ground truth); our own
        difference layers are left out. Keeps each choice while its layer exists."""
        from napari.layers import Labels, Points

        labels = [
            ly.name
            for ly in self.viewer.layers
            if isinstance(ly, Labels) and _role(ly) not in ("matches", "differences")
        ]
        points = [
            ly.name for ly in self.viewer.layers if isinstance(ly, Points) and not is_ours(ly)
        ]
        for combo, names in (
            (self.pred_dendrite, labels),
            (self.truth_dendrite, labels),
            (self.pred_spines, labels),
            (self.truth_spines, labels + points),
        ):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([NONE, *names])
            combo.setCurrentText(current if current in names else NONE)
            combo.blockSignals(False)

    def _layer(self, combo: QComboBox) -> Any:
        name = combo.currentText()
        return self.viewer.layers[name] if name != NONE and name in self.viewer.layers else None

    # --- computing -------------------------------------------------------------------------
    def compute(self) -> bool:
        """Check the chosen layers and score them in the chosen scope in a worker thread; when it
        returns, the tables and plot are filled and (when asked) the difference layers added.
        Returns False (with a message in the dock and a notification) when the inputs cannot be
        compared, or while a computation runs."""
        if self.worker is not None:
            return False
        try:
            job = self._prepare()
        except DendritePanopticError as exc:
            self._fail(str(exc))
            return False
        from napari.qt.threading import create_worker

        handlers = {"returned": self._on_returned, "finished": self._on_finished}
        self.worker = create_worker(_job, job, _connect=handlers, _start_thread=False)
        self._pending = job
        self.compute_button.setEnabled(False)
        self.status_label.setText("Computing…")
        self.worker.start()
        return True

    def _fail(self, message: str) -> None:
        show_error(message)
        self.status_label.setText(message)

    def _prepare(self) -> dict[str, Any]:
        """The job of the current choices: checks shapes, scales and origins (cheap, on the GUI
        thread) and gathers the layer data (possibly lazy), centres in µm and settings."""
        from napari.layers import Points

        layers = {
            "pred_dendrite": self._layer(self.pred_dendrite),
            "truth_dendrite": self._layer(self.truth_dendrite),
            "pred_spines": self._layer(self.pred_spines),
            "truth_spines": self._layer(self.truth_spines),
        }
        if (layers["pred_dendrite"] is None) != (layers["truth_dendrite"] is None):
            raise DendritePanopticError("Choose both a dendrite prediction and its ground truth.")
        if (layers["pred_spines"] is None) != (layers["truth_spines"] is None):
            raise DendritePanopticError("Choose both a spine prediction and its ground truth.")
        if not any(layers.values()):
            raise DendritePanopticError("Choose a prediction and a ground-truth layer first.")
        points_layer = layers["truth_spines"]
        if isinstance(points_layer, Points):
            layers["truth_spines"] = None
        else:
            points_layer = None
        grid = [(k, ly) for k, ly in layers.items() if ly is not None]
        data = {k: _labels_data(ly) for k, ly in grid}
        ref_key, ref = grid[0]
        for key, ly in grid:
            cmp.check_labels(data[key], ly.name)
            cmp.check_same_grid(
                data[ref_key].shape, data[key].shape, ref.name, ly.name, ref.scale, ly.scale
            )
            if not np.allclose(ref.translate, ly.translate):
                raise DendritePanopticError(
                    f"'{ref.name}' and '{ly.name}' are placed at different origins (translate "
                    f"{tuple(ref.translate)} vs {tuple(ly.translate)}): they must overlap."
                )
        ndim = len(data[ref_key].shape)
        voxel = voxel_size_from_scale(ref.scale)
        points_um = None
        if points_layer is not None:
            if points_layer.ndim != ndim:
                raise DendritePanopticError(
                    f"'{points_layer.name}' has {points_layer.ndim}D points but the labels are "
                    f"{ndim}D: the centres need one coordinate per axis."
                )
            world = np.asarray(points_layer.data, float) * np.asarray(points_layer.scale)
            world = world + np.asarray(points_layer.translate)
            points_um = world - np.asarray(ref.translate)  # from the labels' voxel 0, in µm
        plane = None
        scope = self.scope.currentText()
        if ndim == 3 and scope == "Current plane":
            z = float(ref.world_to_data(self.viewer.dims.point)[-3])
            plane = int(np.clip(round(z), 0, data[ref_key].shape[0] - 1))
        return {
            "data": data,
            "names": {k: ly.name for k, ly in grid},
            "layers": layers,
            "points_layer": points_layer,
            "points_um": points_um,
            "ref": ref,
            "ndim": ndim,
            "plane": plane,
            "every_plane": ndim == 3 and scope == "Every plane",
            "kwargs": {
                "voxel_size_um": voxel,
                "iou_threshold": self.iou.value(),
                "distance_um": self.distance.value(),
            },
        }

    def _on_returned(self, outcome: Any) -> None:
        job, self._pending = self._pending, {}
        if isinstance(outcome, Exception):
            text = str(outcome) if isinstance(outcome, DendritePanopticError) else repr(outcome)
            self._fail(f"Metrics failed: {text}")
            return
        warnings = outcome["warnings"]
        if job["points_layer"] is not None and not len(job["points_um"]):
            warnings.append(f"'{job['points_layer'].name}' holds no points.")
        for message in warnings:
            show_warning(message)
        self._split_name = outcome["split"]
        self.split_button.setVisible(self._split_name is not None)
        if self._split_name is not None:
            self.split_button.setText(f"Split '{self._split_name}' into instances")
        self.figures, self.objects = outcome["figures"], outcome["objects"]
        self.match_layer = None
        self._context = {**job, "arrays": outcome["arrays"]}
        self._fill_figures()
        self._fill_objects()
        self._plot()
        if self.show_layers.isChecked():
            self._show_layers()
        self.export_button.setEnabled(True)
        summary = _summary(self.figures) or "Computed."
        self.status_label.setText(summary + "".join(f"\n{w}" for w in warnings))

    def _on_finished(self) -> None:
        self.worker = None
        self.compute_button.setEnabled(True)

    # --- results in the dock ---------------------------------------------------------------
    def _fill_figures(self) -> None:
        table = self.figures
        scopes = [str(s) for s in table.get("scope", table.get("plane", []))]
        keys = [k for k in table if k not in ("scope", "plane")]
        t = self.figures_table
        t.clear()
        if len(scopes) == 1:  # one scope: a figure per row
            t.setRowCount(len(keys))
            t.setColumnCount(2)
            t.setHorizontalHeaderLabels(["figure", scopes[0]])
            for r, key in enumerate(keys):
                t.setItem(r, 0, QTableWidgetItem(key))
                t.setItem(r, 1, QTableWidgetItem(_fmt(table[key][0])))
        else:  # every plane: a plane per row
            t.setRowCount(len(scopes))
            t.setColumnCount(len(keys) + 1)
            t.setHorizontalHeaderLabels(["plane", *keys])
            for r, scope in enumerate(scopes):
                t.setItem(r, 0, QTableWidgetItem(scope))
                for c, key in enumerate(keys, start=1):
                    t.setItem(r, c, QTableWidgetItem(_fmt(table[key][r])))
        t.resizeColumnsToContents()

    def _fill_objects(self) -> None:
        t = self.objects_table
        cols = [c for c in TABLE_COLUMNS if c in self.objects]
        n = len(self.objects.get("index", ()))
        t.blockSignals(True)
        t.clear()
        t.setRowCount(n)
        t.setColumnCount(len(cols))
        t.setHorizontalHeaderLabels(cols)
        for r in range(n):
            for c, col in enumerate(cols):
                t.setItem(r, c, QTableWidgetItem(_fmt(self.objects[col][r])))
        t.blockSignals(False)
        t.resizeColumnsToContents()

    def plotted(self) -> dict[str, float]:
        """The figures drawn as bars: label → value (the last row: the scope, or all planes)."""
        out = {}
        for key, label in PLOT_FIGURES:
            if key in self.figures and np.isfinite(float(self.figures[key][-1])):
                out[label] = float(self.figures[key][-1])
        return out

    def _plot(self) -> None:
        if self._axes is None:
            return
        ax = self._axes
        ax.clear()
        values = self.plotted()
        labels = list(values)[::-1]
        ax.barh(labels, [values[k] for k in labels], color="#1b9e77")
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        for i, label in enumerate(labels):
            ax.text(
                min(values[label], 0.85) + 0.01, i, f"{values[label]:.2f}", va="center", fontsize=7
            )
        ax.figure.tight_layout()
        self.canvas.draw_idle()

    # --- difference layers -----------------------------------------------------------------
    def _show_layers(self) -> None:
        ctx = self._context
        layers, arrays, ref = ctx["layers"], ctx["arrays"], ctx["ref"]
        place = {"scale": list(ref.scale), "translate": list(ref.translate)}
        self.match_layer = None
        if "pred_dendrite" in arrays:
            diff = cmp.dendrite_diff_map(arrays["pred_dendrite"], arrays["truth_dendrite"])
            diff = self._only_plane(diff)
            name = f"{layers['pred_dendrite'].name} vs {layers['truth_dendrite'].name} differences"
            meta = {"role": "differences", "values": {"1": "FP", "2": "FN"}}
            layer = add_or_update_labels(self.viewer, name, diff, metadata=meta, **place)
            colours = {1: cmp.STATUS_COLOURS["FP"], 2: cmp.STATUS_COLOURS["FN"]}
            layer.colormap = _direct_colormap(colours)
        if "pred_spines" not in arrays:
            return
        import pandas as pd

        features = pd.DataFrame({c: self.objects[c] for c in self.objects})
        features = features[["index", *[c for c in features if c != "index"]]]
        pred = layers["pred_spines"]
        points_layer = ctx["points_layer"]
        truth_name = (points_layer or layers["truth_spines"]).name
        name = f"{pred.name} vs {truth_name} matches"
        if points_layer is None:
            status = cmp.spine_status_map(
                arrays["pred_spines"], arrays["truth_spines"], self.objects
            )
            meta = {"role": "matches", "colours": cmp.STATUS_COLOURS}
            layer = add_or_update_labels(
                self.viewer, name, status, metadata=meta, features=features, **place
            )
            colours = {
                int(i): cmp.STATUS_COLOURS[s]
                for i, s in zip(self.objects["index"], self.objects["status"], strict=True)
            }
            layer.colormap = _direct_colormap(colours)
        else:
            ndim = ctx["ndim"]
            cols = ["centroid_z_px", "centroid_y_px", "centroid_x_px"][-ndim:]
            data = np.column_stack([self.objects[c] for c in cols]) if len(features) else None
            colours = [cmp.STATUS_COLOURS[s] for s in self.objects["status"]]
            layer = _add_or_update_points(self.viewer, name, data, features, colours, ndim, place)
        self.match_layer = layer

    def _current_plane(self) -> int | None:
        return self._context.get("plane")

    def _only_plane(self, diff: np.ndarray) -> np.ndarray:
        plane = self._current_plane()
        if plane is None:
            return diff
        out = np.zeros_like(diff)
        out[plane] = diff[plane]
        return out

    # --- going to an object ----------------------------------------------------------------
    def _on_row_selected(self) -> None:
        rows = {i.row() for i in self.objects_table.selectedIndexes()}
        if len(rows) == 1:
            self.select_object(rows.pop())

    def select_object(self, row: int) -> None:
        """Select the spine of table row ``row`` (0-based) in the viewer and centre on it: the
        matches layer's ``selected_label`` (or selected point) becomes the object, the
        prediction's ``selected_label`` its predicted id, and the camera and current plane move
        to its centroid."""
        obj = self.objects
        if not 0 <= row < len(obj.get("index", ())):
            return
        ref = self._context["ref"]
        ndim = self._context["ndim"]
        um = np.array([obj[f"centroid_{a}_um"][row] for a in "zyx"][-ndim:])
        world = um + np.asarray(ref.translate, float)
        offset = self.viewer.dims.ndim - ndim
        for k in range(ndim - 2):
            self.viewer.dims.set_point(offset + k, float(world[k]))
        self.viewer.camera.center = (float(world[-2]), float(world[-1]))
        layer = self.match_layer
        if layer is not None and layer in self.viewer.layers:
            from napari.layers import Points

            if isinstance(layer, Points):
                layer.selected_data = {row}
            else:
                layer.selected_label = int(obj["index"][row])
        pred = self._context["layers"].get("pred_spines")
        pred_id = int(obj["pred_id"][row]) if "pred_id" in obj else 0
        if pred is not None and pred_id > 0 and pred in self.viewer.layers:
            pred.selected_label = pred_id

    # --- semantic → instances --------------------------------------------------------------
    def split_semantic(self) -> None:
        """Add the connected components of the 0/1 spine layer found by :meth:`compute` as a
        new Labels layer ``<name> instances`` and choose it instead."""
        name = self._split_name
        if name is None or name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        split = cmp.split_components(_labels_data(layer))
        meta = {"role": "split", "source_layer": name}
        new = add_or_update_labels(
            self.viewer,
            f"{name} instances",
            split,
            metadata=meta,
            scale=list(layer.scale),
            translate=list(layer.translate),
        )
        for combo in (self.pred_spines, self.truth_spines):
            if combo.currentText() == name:
                combo.setCurrentText(new.name)
        self.split_button.setVisible(False)
        self._split_name = None
        show_info(f"'{new.name}': {int(split.max())} spines from the regions of '{name}'.")

    # --- export ----------------------------------------------------------------------------
    def export_csv(self, path: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
        """Write the figures to ``path`` and the per-object table to ``<stem>_objects.csv``
        beside it (atomic writes). Raises :class:`OutputExistsError` for an existing file unless
        ``overwrite``."""
        if not self.figures:
            raise DendritePanopticError("Nothing to export yet: press Compute first.")
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        objects_path = path.with_name(f"{path.stem}_objects.csv")
        for p in (path, objects_path):
            if p.exists() and not overwrite:
                raise OutputExistsError(f"{p} exists already: choose another name.")
        cmp.write_csv(path, self.figures)
        cmp.write_csv(objects_path, self.objects)
        self.status_label.setText(f"Wrote {path.name} and {objects_path.name} in {path.parent}.")
        return path, objects_path

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export figures (the spine table goes to <name>_objects.csv)", "", "CSV (*.csv)"
        )
        if not path:
            return
        try:
            # the dialog has asked about replacing the figures file; the objects file goes along
            self.export_csv(path, overwrite=True)
        except (DendritePanopticError, OSError) as exc:
            self._fail(f"Export failed: {exc}")


def _job(job: dict[str, Any]) -> dict[str, Any] | Exception:
    """Worker body: read the layer data, check it, score it (comparison.py). Returns the
    outcome, or the exception that stopped it (shown on the GUI thread)."""
    try:
        arrays = {k: np.asarray(a) for k, a in job["data"].items()}
        names = job["names"]
        warnings: list[str] = []
        split = None
        for key, array in arrays.items():
            instances = key.endswith("spines")
            found = cmp.input_warnings(array, names[key], _ROLES[key], instances)
            warnings += found
            if instances and found and split is None and cmp.looks_semantic(array):
                split = names[key]
        plane, kwargs, points = job["plane"], job["kwargs"], job["points_um"]
        if plane is not None:
            figures, objects = cmp.compare_planes(
                **arrays, truth_points_um=points, planes=[plane], **kwargs
            )
            figures = {k: v[:1] for k, v in figures.items() if k != "plane"}
            figures = {"scope": np.array([f"plane {plane}"], dtype=object), **figures}
        elif job["every_plane"]:
            figures, objects = cmp.compare_planes(**arrays, truth_points_um=points, **kwargs)
        else:
            result = cmp.compare(**arrays, truth_points_um=points, **kwargs)
            name = "stack" if job["ndim"] == 3 else "plane"
            figures, objects = cmp.figures_table(result.figures(), name), result.objects
    except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
        if not isinstance(exc, DendritePanopticError):
            logger.exception("metrics failed")
        return exc
    return {
        "arrays": arrays,
        "figures": figures,
        "objects": objects,
        "warnings": warnings,
        "split": split,
    }


# --- helpers -------------------------------------------------------------------------------------
_ROLES = {
    "pred_dendrite": "dendrite prediction",
    "truth_dendrite": "dendrite ground truth",
    "pred_spines": "spine prediction",
    "truth_spines": "spine ground truth",
}


def _role(layer: Any) -> str | None:
    meta = getattr(layer, "metadata", {}).get(OURS)
    return meta.get("role") if isinstance(meta, dict) else None


def _labels_data(layer: Any) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def _spin(lo: float, hi: float, value: float, step: float, decimals: int) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


def _table() -> QTableWidget:
    t = QTableWidget()
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    return t


def _plot_canvas() -> tuple[Any, Any]:
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


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def _summary(figures: cmp.Table) -> str:
    parts = []
    for key, label in (
        ("dendrite_iou", "dendrite IoU"),
        ("spine_f1", "spine F1"),
        ("spine_pq", "PQ"),
        ("point_f1", "centre F1"),
    ):
        if key in figures:
            parts.append(f"{label} {_fmt(figures[key][-1])}")
    return ", ".join(parts)


def _direct_colormap(colours: dict[int, str]) -> Any:
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **colours})


def _add_or_update_points(viewer, name, data, features, colours, ndim, place) -> Any:
    """Our Points layer ``name`` (updated in place when it is ours, else a new name)."""
    from napari.layers import Points

    data = np.zeros((0, ndim)) if data is None else data
    meta = {OURS: {"role": "matches", "colours": cmp.STATUS_COLOURS}}
    candidate, k = name, 1
    while candidate in viewer.layers:
        existing = viewer.layers[candidate]
        if isinstance(existing, Points) and is_ours(existing) and existing.ndim == ndim:
            existing.data = data
            existing.features = features
            existing.face_color = colours if len(data) else "transparent"
            existing.scale, existing.translate = place["scale"], place["translate"]
            return existing
        k += 1
        candidate = f"{name} [{k}]"
    if candidate != name:
        show_warning(f"A layer named '{name}' exists already: the matches go into '{candidate}'.")
    return viewer.add_points(
        data,
        name=candidate,
        features=features,
        face_color=colours if len(data) else "white",
        border_color="white",
        size=6,
        metadata=meta,
        **place,
    )
