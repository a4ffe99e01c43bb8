"""Dock widget "Metrics": compare prediction layers with ground-truth layers and show where they
differ.

The widget only turns layers into arrays (µm from the layer scale) and results back into layers;
every figure comes from :mod:`napari_dendrite_panoptic.evaluation`, the engine that
``dendrite-panoptic evaluate`` uses too (here through
:func:`napari_dendrite_panoptic.evaluation.compare_in_scope`). The tables and bar chart
are drawn by :mod:`.metrics_view`, the difference layers written by :mod:`.metrics_layers`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QPushButton,
    QWidget,
)

from .. import evaluation as cmp
from ..core import mask_to_instances
from ..errors import DendritePanopticError, OutputExistsError
from ..evaluation import compare_in_scope
from ._common import (
    OURS,
    add_or_update_labels,
    button_row,
    camera,
    form,
    is_ours,
    layer_picker,
    placement,
    reset_picker,
    scrolling_layout,
    spin_box,
    voxel_size_from_scale,
)
from .metrics_layers import show_comparison_layers
from .metrics_view import (
    draw_bars,
    fill_figures_table,
    fill_objects_table,
    plot_canvas,
    plotted_figures,
    results_table,
    summary,
)

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

SCOPES = ("Current plane", "Whole stack", "Every plane")


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

        from napari.layers import Labels, Points

        # Labels layers, our own difference layers left out; spine ground truth may be Points
        # (centres), not our own
        def is_input(layer: Any) -> bool:
            if isinstance(layer, Points):
                return not is_ours(layer)
            return _role(layer) not in ("matches", "differences")

        self.pred_dendrite = layer_picker(napari_viewer, Labels, optional=True, keep=is_input)
        self.truth_dendrite = layer_picker(napari_viewer, Labels, optional=True, keep=is_input)
        self.pred_spines = layer_picker(napari_viewer, Labels, optional=True, keep=is_input)
        self.truth_spines = layer_picker(
            napari_viewer,
            (Labels, Points),
            optional=True,
            keep=is_input,
            tooltip="Labels with one id per spine, or Points at spine centres",
        )
        self.iou = spin_box(0.05, 1.0, cmp.DEFAULT_IOU, 0.05, 2)
        self.distance = spin_box(0.01, 100.0, cmp.DEFAULT_DISTANCE_UM, 0.1, 2)
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
        self.figures_table = results_table()
        self.objects_table = results_table()
        self.objects_table.itemSelectionChanged.connect(self._on_row_selected)
        self.canvas, self._axes = plot_canvas()

        layout = scrolling_layout(self)
        layout.addLayout(
            form(
                [
                    ("Dendrite prediction", self.pred_dendrite.native),
                    ("Dendrite ground truth", self.truth_dendrite.native),
                    ("Spine prediction", self.pred_spines.native),
                    ("Spine ground truth", self.truth_spines.native),
                    ("Match at IoU >", self.iou),
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

    # --- pickers ---------------------------------------------------------------------------
    def reset_choices(self, *_: Any) -> None:
        """Re-read the viewer's layers into the four pickers (napari calls this on every change
        of the layer list); each keeps its choice while that layer is offered."""
        for picker in (
            self.pred_dendrite,
            self.truth_dendrite,
            self.pred_spines,
            self.truth_spines,
        ):
            reset_picker(picker)

    def _layer(self, picker: Any) -> Any:
        layer = picker.value
        return layer if layer is not None and layer in self.viewer.layers else None

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
        fill_figures_table(self.figures_table, self.figures)
        fill_objects_table(self.objects_table, self.objects)
        self._plot()
        if self.show_layers.isChecked():
            self.match_layer = show_comparison_layers(self.viewer, self._context, self.objects)
        self.export_button.setEnabled(True)
        text = summary(self.figures) or "Computed."
        self.status_label.setText(text + "".join(f"\n{w}" for w in warnings))

    def _on_finished(self) -> None:
        self.worker = None
        self.compute_button.setEnabled(True)

    # --- results in the dock ---------------------------------------------------------------
    def plotted(self) -> dict[str, float]:
        """The figures drawn as bars: label → value (the last row: the scope, or all planes)."""
        return plotted_figures(self.figures)

    def _plot(self) -> None:
        if self._axes is None:
            return
        draw_bars(self._axes, self.plotted())
        self.canvas.draw_idle()

    # --- going to an object ----------------------------------------------------------------
    def _on_row_selected(self) -> None:
        rows = {i.row() for i in self.objects_table.selectedIndexes()}
        if len(rows) == 1:
            self.select_object(rows.pop())

    def select_object(self, row: int) -> None:
        """Select the spine of table row ``row`` (0-based) in the viewer and centre on it: the
        matches layer's ``selected_label`` (or selected point) becomes the object, the
        prediction's ``selected_label`` its predicted id, and the camera and current plane move
        to its centroid, zoomed in so that the object fills about a quarter of the view (in 2D
        display)."""
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
        self._zoom_to(row, (float(world[-2]), float(world[-1])))
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

    def _zoom_to(self, row: int, centre: tuple[float, float]) -> None:
        """Centre the camera on ``centre`` (world y, x) and zoom to the object of ``row``."""
        cam = camera(self.viewer)
        if self.viewer.dims.ndisplay == 2:
            extent = self.viewer.layers.extent.world
            span = float(np.max(extent[1, -2:] - extent[0, -2:]))
            size = self._object_size_um(row)
            field = min(span, max(4.0 * size, 2.0)) if size else min(span, 5.0)
            self.viewer.reset_view()  # the zoom at which everything fits
            if field > 0 and span > 0:
                cam.zoom = cam.zoom * span / field
        cam.center = centre

    def _object_size_um(self, row: int) -> float | None:
        """The larger side (µm, in y/x) of the bounding box of the object of table ``row``: its
        predicted spine, else its true spine; None for a clicked centre alone."""
        obj, arrays, ref = self.objects, self._context["arrays"], self._context["ref"]
        for key, column in (("pred_spines", "pred_id"), ("truth_spines", "truth_id")):
            label = int(obj[column][row]) if column in obj else 0
            if label > 0 and key in arrays:
                where = np.nonzero(np.asarray(arrays[key]) == label)
                if where[0].size:
                    spans = [int(w.max() - w.min()) + 1 for w in where[-2:]]
                    return max(n * float(s) for n, s in zip(spans, ref.scale[-2:], strict=True))
        return None

    # --- semantic → instances --------------------------------------------------------------
    def split_semantic(self) -> None:
        """Add the connected components of the 0/1 spine layer found by :meth:`compute` as a
        new Labels layer ``<name> instances`` and choose it instead."""
        name = self._split_name
        if name is None or name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        split = mask_to_instances(_labels_data(layer))
        meta = {"role": "split", "source_layer": name}
        new = add_or_update_labels(
            self.viewer,
            f"{name} instances",
            split,
            metadata=meta,
            **placement(layer),
        )
        for picker in (self.pred_spines, self.truth_spines):
            if picker.value == layer:
                picker.value = new
        self.split_button.setVisible(False)
        self._split_name = None
        show_info(f"'{new.name}': {int(split.max())} spines from the regions of '{name}'.")

    # --- export ----------------------------------------------------------------------------
    def export_csv(
        self, path: str | Path, confirmed: str | Path | None = None
    ) -> tuple[Path, Path]:
        """Write the figures to ``path`` (``.csv`` added when missing) and the per-object table to
        ``<stem>_objects.csv`` beside it (atomic writes). Raises :class:`OutputExistsError`, and
        writes nothing, when either file exists, except the figures file when it is exactly
        ``confirmed`` (the path whose replacing the user confirmed in the save dialog)."""
        if not self.figures:
            raise DendritePanopticError("Nothing to export yet: press Compute first.")
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        objects_path = path.with_name(f"{path.stem}_objects.csv")
        if path.exists() and (confirmed is None or path != Path(confirmed)):
            raise OutputExistsError(f"{path} exists already: choose another name.")
        if objects_path.exists():
            raise OutputExistsError(
                f"{objects_path} (the per-spine table of '{path.name}') exists already: "
                "choose another name."
            )
        cmp.write_csv(path, self.figures)
        cmp.write_csv(objects_path, self.objects)
        self.status_label.setText(f"Wrote {path.name} and {objects_path.name} in {path.parent}.")
        return path, objects_path

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export figures (the spine table goes to <name>_objects.csv)", "", "CSV (*.csv)"
        )
        if path:
            self._export_to(path)

    def _export_to(self, path: str) -> None:
        """Export to ``path`` as chosen in the save dialog, which has asked about replacing that
        exact file (and no other); a failure is shown as one line."""
        try:
            self.export_csv(path, confirmed=path)
        except (DendritePanopticError, OSError) as exc:
            self._fail(f"Export failed: {exc}")


def _job(job: dict[str, Any]) -> dict[str, Any] | Exception:
    """Worker body: read the layer data, check it, score it (evaluation.compare_in_scope). Returns the
    outcome, or the exception that stopped it (shown on the GUI thread)."""
    try:
        arrays = {k: np.asarray(a) for k, a in job["data"].items()}
        outcome = compare_in_scope(
            arrays,
            job["names"],
            ndim=job["ndim"],
            plane=job["plane"],
            every_plane=job["every_plane"],
            truth_points_um=job["points_um"],
            **job["kwargs"],
        )
    except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
        if not isinstance(exc, DendritePanopticError):
            logger.exception("metrics failed")
        return exc
    return {"arrays": arrays, **outcome}


# --- helpers -------------------------------------------------------------------------------------
def _role(layer: Any) -> str | None:
    meta = getattr(layer, "metadata", {}).get(OURS)
    return meta.get("role") if isinstance(meta, dict) else None


def _labels_data(layer: Any) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)
