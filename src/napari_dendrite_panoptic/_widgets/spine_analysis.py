"""Dock widget "Spine analysis": measurements, types and density of the spines of a Labels layer.

Takes an Image layer, a dendrite Labels layer and a spine Labels layer (e.g. ``<image> dendrites``
/ ``<image> spines`` from the inference dock), uses the spine layer's scale as voxel size (µm),
runs :func:`napari_dendrite_panoptic.analysis.analyse` in a thread worker and shows (tables in
:mod:`.spine_analysis_view`, layers in :mod:`.spine_analysis_layers`):

- a table of spines (also stored as the spine layer's ``features``) and one of branches, both
  sortable; clicking a spine row selects that label and centres the camera on it;
- a Shapes layer ``<spines> skeleton`` with one path per dendrite branch;
- spine colours by type or by any numeric measurement.

Editing the spine or dendrite labels (painting, erasing, new data) re-runs the analysis after a
short pause (debounced), or on "Recompute". "Export CSV / ROI…" writes the same files as the CLI.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QWidget,
)

from ..errors import DendritePanopticError
from ._common import (
    button_row,
    camera,
    form,
    layer_picker,
    reset_picker,
    scrolling_layout,
    voxel_size_from_scale,
)
from .spine_analysis_layers import show_skeleton, spine_colormap, spine_features
from .spine_analysis_view import fill_table, type_legend_html

if TYPE_CHECKING:
    import napari

    from ..analysis import TypeRules

logger = logging.getLogger(__name__)

DEBOUNCE_MS = 600


def export_stem(layer_name: str) -> str:
    """File stem of a spine layer's exports: ``"cell spines"`` → ``"cell"`` (the files are
    ``cell_spines.csv``, ``cell_dendrites.csv``, ...), other names with spaces as ``_``."""
    stem = layer_name.strip()
    for suffix in (" spines", "_spines"):
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem.replace(" ", "_")


def _job(image, dendrite, spines, voxel, method, rules):
    from ..analysis import analyse

    return analyse(dendrite, spines, voxel, image, type_method=method, rules=rules)


class SpineAnalysisWidget(QWidget):
    """Measure, classify and tabulate the spines of a spine Labels layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: Any = None
        self.worker: Any = None
        self._pending = False
        self._watched: list[Any] = []
        self._running: dict[str, Any] | None = None
        self._analysed: dict[str, Any] | None = None
        """The shown analysis's job: its ``spines_layer`` and ``dend_layer`` objects (renaming
        them does not lose them), the ``spines`` array it measured and the layer ``names``."""

        from napari.layers import Image, Labels

        self._ready = False  # until the pickers made their first guesses
        self.image_picker = layer_picker(napari_viewer, Image)
        self.dendrite_picker = layer_picker(napari_viewer, Labels)
        self.spine_picker = layer_picker(napari_viewer, Labels)
        self.method_combo = QComboBox()
        self.method_combo.addItems(["auto", "learned", "rules"])
        self.auto_update = QCheckBox("Recompute after edits")
        self.auto_update.setChecked(True)
        self.recompute_button = QPushButton("Recompute")
        self.recompute_button.clicked.connect(self.recompute)
        self.export_button = QPushButton("Export CSV / ROI…")
        self.export_button.clicked.connect(self._export_dialog)
        self.colour_combo = QComboBox()
        self.colour_combo.addItem("type")
        self.colour_combo.currentTextChanged.connect(self.colour_spines)
        self.legend = QLabel(type_legend_html())
        self.legend.setWordWrap(True)
        self.legend.setToolTip("Spine colours when coloured by type")
        self.status_label = QLabel("Choose the layers and press Recompute.")
        self.status_label.setWordWrap(True)
        self.spine_table = QTableWidget()
        self.spine_table.setSortingEnabled(True)
        self.spine_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.spine_table.cellClicked.connect(self._on_spine_clicked)
        self.branch_table = QTableWidget()
        self.branch_table.setSortingEnabled(True)

        from ..analysis import TypeRules

        self.rule_widgets: dict[str, Any] = {}
        rules_box = QGroupBox("Type rules (used by 'rules')")
        rules_form = QFormLayout(rules_box)
        for key, value in TypeRules().to_dict().items():
            if isinstance(value, int):
                w: Any = QSpinBox()
                w.setRange(2, 99)  # a branched spine has two tips at least
            else:
                w = QDoubleSpinBox()
                w.setRange(0.0, 99.0)
                w.setSingleStep(0.1)
                w.setDecimals(2)
            w.setValue(value)
            rules_form.addRow(key.replace("_", " "), w)
            self.rule_widgets[key] = w

        layout = scrolling_layout(self)
        layout.addLayout(
            form(
                [
                    ("Image", self.image_picker.native),
                    ("Dendrite labels", self.dendrite_picker.native),
                    ("Spine labels", self.spine_picker.native),
                    ("Spine types", self.method_combo),
                    ("Colour spines by", self.colour_combo),
                ]
            )
        )
        layout.addWidget(self.legend)
        layout.addWidget(self.auto_update)
        layout.addLayout(button_row(self.recompute_button, self.export_button))
        layout.addWidget(self.status_label)
        layout.addWidget(QLabel("Spines"))
        layout.addWidget(self.spine_table, 3)
        layout.addWidget(QLabel("Branches"))
        layout.addWidget(self.branch_table, 1)
        layout.addWidget(rules_box)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.recompute)

        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._picked: set[int] = set()  # ids of the pickers the user chose in by hand
        for picker in (self.dendrite_picker, self.spine_picker):
            picker.native.activated.connect(lambda _i, p=picker: self._picked.add(id(p)))
        self.spine_picker.changed.connect(self._watch_layers)
        self.dendrite_picker.changed.connect(self._watch_layers)
        self.reset_choices()
        self._ready = True

    def _on_layer_removed(self, event: Any) -> None:
        """Clear the tables when the spine or dendrite layer they describe is deleted."""
        removed = getattr(event, "value", None)
        job = self._analysed
        if job is None or not any(removed == job[k] for k in ("spines_layer", "dend_layer")):
            return
        name = removed.name
        self.result = None
        self._analysed = None
        for table in (self.spine_table, self.branch_table):
            table.clear()
            table.setRowCount(0)
            table.setColumnCount(0)
        self.status_label.setText(f"'{name}' was deleted: its tables are cleared.")

    # --- pickers ---------------------------------------------------------------------------
    def reset_choices(self, *_: Any) -> None:
        """Re-read the Image and Labels layers into the pickers (napari calls this on every
        change of the layer list). A choice is kept while its layer exists; a label picker
        whose layer is gone, or that the user has not chosen in, takes the first layer whose
        name holds "dendrite" / "spine" (so ``<image> spines`` is found when the inference dock
        adds it after ``<image> dendrites``)."""
        for picker, hint in (
            (self.image_picker, None),
            (self.dendrite_picker, "dendrite"),
            (self.spine_picker, "spine"),
        ):
            before = picker.value if self._ready else None
            with picker.changed.blocked():
                reset_picker(picker)
                lost = before is None or before != picker.value
                unpicked = id(picker) not in self._picked
                if hint is not None and (lost or unpicked) and hint not in _name(picker.value):
                    guess = [ly for ly in picker.choices if hint in ly.name.lower()]
                    if guess:
                        picker.value = guess[0]
        self._watch_layers()

    def _layer(self, picker: Any) -> Any:
        layer = picker.value
        return layer if layer is not None and layer in self.viewer.layers else None

    def _watch_layers(self, *_: Any) -> None:
        """Re-run (debounced) when the chosen label layers are painted or get new data."""
        for layer in self._watched:
            for ev in ("data", "paint", "set_data"):
                emitter = getattr(layer.events, ev, None)
                if emitter is not None:
                    emitter.disconnect(self._on_edit)
        self._watched = [
            ly for ly in (self._layer(self.spine_picker), self._layer(self.dendrite_picker)) if ly
        ]
        for layer in self._watched:
            for ev in ("data", "paint", "set_data"):
                emitter = getattr(layer.events, ev, None)
                if emitter is not None:
                    emitter.connect(self._on_edit)

    def _on_edit(self, *_: Any) -> None:
        if self.auto_update.isChecked() and self.result is not None:
            self._debounce.start()

    def rules(self) -> TypeRules:
        """The rule thresholds as set in the dock."""
        from ..analysis import TypeRules

        return TypeRules(**{k: w.value() for k, w in self.rule_widgets.items()})

    # --- running ---------------------------------------------------------------------------
    def recompute(self) -> None:
        """Analyse the chosen layers in a worker thread (queued if one is running)."""
        if self.worker is not None:
            self._pending = True
            return
        spines_layer = self._layer(self.spine_picker)
        dend_layer = self._layer(self.dendrite_picker)
        image_layer = self._layer(self.image_picker)
        if spines_layer is None or dend_layer is None:
            show_error("Choose a dendrite Labels layer and a spine Labels layer first.")
            return
        spines = np.array(spines_layer.data)  # a copy: painting changes the layer's in place
        dend = np.asarray(dend_layer.data)
        if spines.shape != dend.shape or spines.ndim not in (2, 3):
            show_error(
                f"The spine labels {spines.shape} and dendrite labels {dend.shape} must be one "
                "2D or 3D shape."
            )
            return
        image = None
        if image_layer is not None and tuple(image_layer.data.shape) == spines.shape:
            image = np.asarray(image_layer.data)
        voxel = voxel_size_from_scale(spines_layer.scale)
        self._running = {
            "spines_layer": spines_layer,
            "dend_layer": dend_layer,
            "spines": spines,
            "names": (spines_layer.name, dend_layer.name, getattr(image_layer, "name", "")),
        }
        self.status_label.setText("Analysing…")
        self.recompute_button.setEnabled(False)
        method = self.method_combo.currentText()
        self.worker = create_worker(
            _job, image, dend, spines, voxel, method, self.rules(), _start_thread=False
        )
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def _on_error(self, exc: Exception) -> None:
        if not isinstance(exc, DendritePanopticError):
            logger.error("spine analysis failed", exc_info=exc)
        show_error(f"Spine analysis failed: {exc}")
        self.status_label.setText(f"Failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.recompute_button.setEnabled(True)
        if self._pending:
            self._pending = False
            self.recompute()

    def _on_returned(self, result: Any) -> None:
        job = self._running
        if job is None or job["spines_layer"] not in self.viewer.layers:
            self.status_label.setText("The spine layer was removed: nothing to show.")
            return
        self.result = result
        self._analysed = job
        spines_layer = job["spines_layer"]
        spines_layer.features = spine_features(spines_layer, result.spines)
        fill_table(self.spine_table, result.spines)
        fill_table(self.branch_table, result.branches)
        show_skeleton(self.viewer, spines_layer, result.skeleton)
        numeric = [
            k for k, v in result.spines.items() if np.asarray(v).dtype.kind in "fiu" and k != "id"
        ]
        current = self.colour_combo.currentText()
        self.colour_combo.blockSignals(True)
        self.colour_combo.clear()
        self.colour_combo.addItems(["type", *numeric])
        self.colour_combo.setCurrentText(current if current in ("type", *numeric) else "type")
        self.colour_combo.blockSignals(False)
        self.colour_spines()
        n = len(result.spines["id"])
        self.status_label.setText(
            f"{n} spines on {result.skeleton.length_um:.1f} µm of dendrite "
            f"({result.density_per_um:.2f} per µm); types: {result.type_method}; "
            f"{result.seconds:.1f} s."
        )

    # --- display ---------------------------------------------------------------------------
    def colour_spines(self, *_: Any) -> None:
        """Colour the spine layer by type or by the chosen measurement (viridis)."""
        layer = self._analysed_layer()
        if self.result is None or layer is None:
            return
        what = self.colour_combo.currentText() or "type"
        self.legend.setVisible(what == "type")
        layer.colormap = spine_colormap(self.result.spines, what)

    def _on_spine_clicked(self, row: int, _col: int) -> None:
        header = [
            self.spine_table.horizontalHeaderItem(j).text()
            for j in range(self.spine_table.columnCount())
        ]
        if "id" not in header or self._analysed is None:
            return
        sid = int(float(self.spine_table.item(row, header.index("id")).text()))
        self.select_spine(sid)

    def select_spine(self, spine_id: int) -> None:
        """Select spine ``spine_id`` in its layer and centre the camera (and z) on it."""
        layer = self._analysed_layer()
        if self.result is None or layer is None:
            return
        layer.selected_label = int(spine_id)
        t = self.result.spines
        k = int(np.flatnonzero(np.asarray(t["id"]) == spine_id)[0])
        tip = np.array([t[f"tip_{a}_um"][k] for a in "zyx"])
        base = np.array([t[f"base_{a}_um"][k] for a in "zyx"])
        centre_um = 0.5 * (tip + base)
        voxel = np.asarray(voxel_size_from_scale(layer.scale))
        data_pt = centre_um / voxel  # (z, y, x) in data coordinates
        if layer.ndim == 2:
            data_pt = data_pt[1:]
        world = np.asarray(layer.data_to_world(data_pt))
        camera(self.viewer).center = tuple(world[-2:]) if layer.ndim == 2 else tuple(world)
        if layer.ndim == 3:
            self.viewer.dims.set_point(self.viewer.dims.ndim - 3, float(world[0]))

    def _analysed_layer(self) -> Any:
        """The spine layer of the shown analysis (also when renamed since); None once gone."""
        job = self._analysed
        if job is None or job["spines_layer"] not in self.viewer.layers:
            return None
        return job["spines_layer"]

    # --- export ----------------------------------------------------------------------------
    def export(self, folder: str | Path, stem: str) -> dict[str, Path]:
        """Write ``<stem>_spines.csv``, ``<stem>_dendrites.csv`` and ``<stem>_spines_roi.zip``
        from the last analysis (the spine labels it measured, not the layer's data since) into
        ``folder``; returns the paths."""
        from ..analysis import analysis_paths, write_roi_zip, write_tables

        if self.result is None or self._analysed is None:
            raise DendritePanopticError("Nothing to export: run the analysis first.")
        paths = analysis_paths(folder, stem)
        written = write_tables(paths, self.result)
        spines = self._analysed["spines"]
        types = {
            int(i): str(t)
            for i, t in zip(self.result.spines["id"], self.result.spines["type"], strict=True)
        }
        written["roi"] = write_roi_zip(paths["roi"], spines, types)
        return written

    def _export_dialog(self) -> None:
        if self.result is None:
            show_error("Nothing to export: run the analysis first.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder for the spine tables")
        if not folder:
            return
        stem = export_stem(self._analysed["names"][0])
        existing = [p for p in self._paths(folder, stem).values() if p.exists()]
        if existing:
            show_error(f"{existing[0]} exists already: choose another folder.")
            return
        try:
            written = self.export(folder, stem)
        except (OSError, DendritePanopticError) as exc:
            show_error(f"Export failed: {exc}")
            return
        show_info("Wrote " + ", ".join(p.name for p in written.values()))

    @staticmethod
    def _paths(folder: str, stem: str) -> dict[str, Path]:
        from ..analysis import analysis_paths

        return analysis_paths(folder, stem)


def _name(layer: Any) -> str:
    """A picked layer's name in lower case ("" for none)."""
    return "" if layer is None else layer.name.lower()
