"""Dock widget "Train on corrections": fine-tune the models on the user's corrected layers.

The user picks (image, dendrite Labels, spine Labels) triples, optionally one or more held out
for validation. The engine (:mod:`napari_dendrite_panoptic.corrections` for the data,
:func:`napari_dendrite_panoptic.training.iter_fit` for the loop) runs in a napari worker thread:
it first saves the corrections as TIFFs into the new model folder, then trains; every step
drives the progress bar and the loss curve. Stop ends after the current batch, keeps the last
checkpoint and saves the weights reached so far as a model folder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ..errors import DendritePanopticError
from ._common import (
    ModelPicker,
    button_row,
    edited_planes_of,
    form,
    refresh_model_pickers,
    scale_is_calibrated,
    spatial_data,
    voxel_size_from_scale,
)

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

PLUGIN = "napari-dendrite-panoptic"
COLUMNS = ("Image", "Dendrite labels", "Spine labels", "Held out")
WHICH = {"Both models": "both", "Spines only": "spines", "Dendrites only": "dendrites"}
NONE = "(none)"


def _train_job(
    config: Any,
    volumes: list[Any],
    held_out: list[Any],
    raw: list[dict[str, Any]],
    should_stop: Callable[[], bool],
) -> Iterator[Any]:
    """Worker body: save the corrections, then train; yields training events and returns the
    last one, or the exception that ended the run (shown once, without a traceback)."""
    from ..corrections import correction_source, save_corrections, volume_scorer
    from ..training import iter_fit, run_input_planes

    try:
        folder = Path(config.output_model)
        saved = save_corrections(folder / "corrections", raw)
        yield ("saved", [str(p) for p in saved])
        planes = run_input_planes(config.input_planes, config.base_model)
        source = correction_source(
            volumes, config.crop_size, config.pixel_size_um, neighbours=planes > 1
        )
        scorers = [volume_scorer(v) for v in held_out]

        def validator(models: Any) -> dict[str, float]:
            scores = [s(models) for s in scorers]
            return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}

        last = None
        every = max(10, config.steps // 5) if config.max_seconds is None else 25
        for event in iter_fit(
            config,
            source=source,
            should_stop=should_stop,
            resume=False,
            validator=validator if scorers else None,
            validate_every=every,
        ):
            last = event
            yield event
        return last
    except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
        if not isinstance(exc, DendritePanopticError):
            logger.exception("training failed")
        return exc


class LossPlot(QWidget):
    """A small matplotlib plot of the training losses (and validation scores) per step."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot(111)
        self.val_axes = self.axes.twinx()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.clear()

    def clear(self) -> None:
        """Forget the curves of a previous run."""
        self.steps: list[int] = []
        self.losses: dict[str, list[float]] = {}
        self.validation: dict[str, list[tuple[int, float]]] = {}
        self._drawn_at = 0.0
        self.redraw()

    def add_losses(self, step: int, losses: dict[str, float]) -> None:
        self.steps.append(step)
        for key in ("spines", "dendrites"):
            if key in losses:
                self.losses.setdefault(key, []).append(losses[key])
        if time.monotonic() - self._drawn_at > 1.0:  # at most one redraw per second
            self.redraw()

    def add_validation(self, step: int, metrics: dict[str, float]) -> None:
        for key in ("spine_f1", "dendrite_iou"):
            if key in metrics:
                self.validation.setdefault(key, []).append((step, metrics[key]))
        self.redraw()

    def redraw(self) -> None:
        self._drawn_at = time.monotonic()
        ax, vax = self.axes, self.val_axes
        ax.clear()
        vax.clear()
        for key, values in self.losses.items():
            ax.plot(self.steps[-len(values) :], values, lw=1, label=f"{key} loss")
        for key, points in self.validation.items():
            xs, ys = zip(*points, strict=True)
            vax.plot(xs, ys, "o--", ms=3, label=f"held-out {key}")
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("loss", fontsize=7)
        vax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
        vax.tick_params(labelsize=6)
        handles = ax.get_legend_handles_labels()
        vhandles = vax.get_legend_handles_labels()
        if handles[0] or vhandles[0]:
            ax.legend(handles[0] + vhandles[0], handles[1] + vhandles[1], fontsize=6, loc="best")
        self.canvas.draw_idle()


class TrainOnCorrectionsWidget(QWidget):
    """Fine-tune the spine and/or dendrite model on corrected Labels layers.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose Image and Labels layers are offered as training triples.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self._stop = threading.Event()
        self._job: dict[str, Any] = {}
        self._napari_progress: Any = None
        self.last_model_folder: str | None = None
        self.last_event: Any = None

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.add_row_button = QPushButton("Add image")
        self.add_row_button.clicked.connect(lambda: self.add_row())
        self.remove_row_button = QPushButton("Remove image")
        self.remove_row_button.clicked.connect(self.remove_row)
        self.split_button = QPushButton("Split spines into instances")
        self.split_button.setToolTip(
            "Adds a copy of the spine layer with one id per connected object and uses it"
        )
        self.split_button.clicked.connect(self.split_semantic_spines)
        self.split_button.setVisible(False)
        self._semantic_row: int | None = None

        self.which_combo = QComboBox()
        self.which_combo.addItems(list(WHICH))
        self.model_combo = ModelPicker()
        self.duration = QSpinBox()
        self.duration.setRange(1, 10_000)
        self.duration.setValue(5)
        self.duration_unit = QComboBox()
        self.duration_unit.addItems(["minutes", "epochs"])
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1e-2)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(3e-4)
        self.only_edited = QCheckBox("Only planes I edited")
        self.only_edited.setToolTip(
            "Train on the planes whose labels differ from what the model wrote, so untouched "
            "planes of a stack don't teach the model its own mistakes"
        )
        self.name_edit = QLineEdit(datetime.now().strftime("finetune-%Y%m%d-%H%M"))
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.rerun_button = QPushButton("Segment again with the new model")
        self.rerun_button.clicked.connect(self.rerun_inference)
        self.rerun_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.status_label = QLabel("Ready.")
        self.status_label.setWordWrap(True)
        self.plot = LossPlot()

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Corrected images (image, dendrite labels, spine labels):"))
        layout.addWidget(self.table)
        layout.addLayout(button_row(self.add_row_button, self.remove_row_button))
        layout.addWidget(self.split_button)
        layout.addLayout(
            form(
                [
                    ("Train", self.which_combo),
                    ("Start from", self.model_combo),
                    ("Duration", button_row(self.duration, self.duration_unit)),
                    ("Learning rate", self.lr),
                    ("", self.only_edited),
                    ("New model name", self.name_edit),
                ]
            )
        )
        layout.addLayout(button_row(self.start_button, self.stop_button))
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.plot)
        layout.addWidget(self.rerun_button)

        events = self.viewer.layers.events
        for name in ("inserted", "removed", "renamed"):
            if hasattr(events, name):
                getattr(events, name).connect(self.refresh_layers)
        self.add_row()

    # --- the table of triples ----------------------------------------------------------------
    def _names(self, kind: str) -> list[str]:
        from napari.layers import Image, Labels

        cls = Image if kind == "image" else Labels
        return [layer.name for layer in self.viewer.layers if isinstance(layer, cls)]

    def add_row(self, image: str | None = None) -> int:
        """Add a triple; its labels default to ``<image> dendrites`` / ``<image> spines``."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col in range(3):
            self.table.setCellWidget(row, col, QComboBox())
        self.table.setCellWidget(row, 3, QCheckBox())
        self._fill_row(row)
        images = self._names("image")
        taken = {self.row_names(r)[0] for r in range(row)}
        choice = image or next((n for n in images if n not in taken), None)
        if choice:
            self.set_row(row, choice)
        return row

    def remove_row(self) -> None:
        """Remove the selected triple (the last one when none is selected)."""
        row = self.table.currentRow()
        if self.table.rowCount():
            self.table.removeRow(row if row >= 0 else self.table.rowCount() - 1)

    def _fill_row(self, row: int) -> None:
        image_names, label_names = self._names("image"), self._names("labels")
        for col, names in ((0, image_names), (1, label_names), (2, label_names)):
            combo = self.table.cellWidget(row, col)
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([NONE, *names])
            combo.setCurrentText(current if current in names else NONE)
            combo.blockSignals(False)

    def set_row(
        self,
        row: int,
        image: str,
        dendrite: str | None = None,
        spines: str | None = None,
        held_out: bool = False,
    ) -> None:
        """Choose the layers of one triple (labels default to the inference dock's names)."""
        combos = [self.table.cellWidget(row, c) for c in range(3)]
        combos[0].setCurrentText(image)
        labels = self._names("labels")
        for combo, name in ((combos[1], dendrite), (combos[2], spines)):
            default = f"{image} {'dendrites' if combo is combos[1] else 'spines'}"
            name = name or (default if default in labels else None)
            if name:
                combo.setCurrentText(name)
        self.table.cellWidget(row, 3).setChecked(held_out)

    def row_names(self, row: int) -> tuple[str, str, str, bool]:
        """(image, dendrite, spine layer names, held out) of a row; "" for none."""
        names = [self.table.cellWidget(row, c).currentText() for c in range(3)]
        names = ["" if n == NONE else n for n in names]
        return names[0], names[1], names[2], self.table.cellWidget(row, 3).isChecked()

    def refresh_layers(self, *_: Any) -> None:
        """Re-list the layers in every row, keeping the choices that still exist."""
        for row in range(self.table.rowCount()):
            self._fill_row(row)

    # --- inputs --------------------------------------------------------------------------------
    def _collect(self) -> tuple[list[Any], list[Any], list[dict[str, Any]], list[str]]:
        """Validate the rows; returns (train volumes, held-out volumes, raw arrays, notes)."""
        from ..corrections import SemanticSpinesError, prepare_volume
        from ..errors import InputError

        which = WHICH[self.which_combo.currentText()]
        train, held, raw, notes = [], [], [], []
        rows = [self.row_names(r) for r in range(self.table.rowCount())]
        if not any(r[0] for r in rows):
            raise InputError("Add at least one corrected image (image, dendrite and spine labels).")
        for row, (image_name, den_name, spi_name, held_out) in enumerate(rows):
            if not image_name:
                continue
            if not den_name or not spi_name:
                raise InputError(
                    f"'{image_name}': choose its dendrite and its spine Labels layer "
                    "(the same layer cannot be both)."
                )
            if den_name == spi_name:
                raise InputError(
                    f"'{image_name}': the dendrite and spine layers are the same layer"
                )
            image_layer = self.viewer.layers[image_name]
            if getattr(image_layer, "rgb", False):
                raise InputError(f"'{image_name}' is an RGB image: split the channels first.")
            image, _ = spatial_data(image_layer, self.viewer)
            den_layer, spi_layer = self.viewer.layers[den_name], self.viewer.layers[spi_name]
            dendrite = np.asarray(spatial_data(den_layer, self.viewer)[0])
            spines = np.asarray(spatial_data(spi_layer, self.viewer)[0])
            scale = [float(s) for s in image_layer.scale[-image.ndim :]]
            voxel = voxel_size_from_scale(scale) if scale_is_calibrated(scale) else None
            planes = None
            if self.only_edited.isChecked() and not held_out:
                planes, note = self._edited(image_name, den_layer, spi_layer, which)
                if note:
                    notes.append(note)
            try:
                volume, more = prepare_volume(
                    image_name, image, dendrite, spines, voxel[1] if voxel else None, which, planes
                )
            except SemanticSpinesError:
                self._semantic_row = row
                self.split_button.setVisible(True)
                raise
            notes += more
            (held if held_out else train).append(volume)
            if not held_out:
                raw.append(
                    {
                        "name": image_name,
                        "image": np.array(image),
                        "dendrite": dendrite.copy(),
                        "spines": spines.copy(),
                        "voxel_size_um": voxel,
                    }
                )
        if not train:
            raise InputError("Every chosen image is held out: leave at least one to train on.")
        return train, held, raw, notes

    @staticmethod
    def _edited(name: str, den_layer: Any, spi_layer: Any, which: str) -> tuple[Any, str | None]:
        from ..errors import InputError

        layers = {"both": (den_layer, spi_layer), "spines": (spi_layer,)}.get(which, (den_layer,))
        found = [edited_planes_of(layer) for layer in layers]
        if any(f is None for f in found):
            return None, (
                f"'{name}': a chosen labels layer was not written by the inference dock, so "
                "every plane is used."
            )
        planes = sorted(set().union(*found))
        if not planes:
            raise InputError(
                f"'{name}': no plane was edited since the model segmented it. Correct some "
                "planes first, or untick 'Only planes I edited'."
            )
        return planes, None

    def split_semantic_spines(self) -> None:
        """Add ``<spines> instances`` (one id per connected object) and use it in the row."""
        from ..corrections import split_into_instances

        row = self._semantic_row
        if row is None or row >= self.table.rowCount():
            return
        _, _, spi_name, _ = self.row_names(row)
        layer = self.viewer.layers[spi_name]
        split = split_into_instances(layer.data)
        name = f"{spi_name} instances"
        new = self.viewer.add_labels(split, name=name, scale=layer.scale, translate=layer.translate)
        self.table.cellWidget(row, 2).setCurrentText(new.name)
        self.split_button.setVisible(False)
        self._semantic_row = None
        show_info(f"Added '{new.name}' with {int(split.max())} spines; '{spi_name}' is unchanged.")

    # --- running -------------------------------------------------------------------------------
    def start(self) -> None:
        """Validate the inputs and start fine-tuning in a worker thread."""
        if self.worker is not None:
            return
        from ..errors import InputError

        try:
            config, train, held, raw, notes = self._prepare()
        except (InputError, DendritePanopticError, ValueError, KeyError) as exc:
            show_error(str(exc))
            self.status_label.setText(f"Not started: {exc}")
            return
        for note in notes:
            show_info(note)
        self._job = {"config": config, "images": [r["name"] for r in raw]}
        self._stop = threading.Event()
        self.plot.clear()
        self.rerun_button.setEnabled(False)
        self._start_worker(config, train, held, raw)

    def _prepare(self) -> tuple[Any, list[Any], list[Any], list[dict[str, Any]], list[str]]:
        from ..corrections import fine_tune_config, resample_note
        from ..errors import InputError
        from ..models.card import ModelCard
        from ..models.store import user_models_dir

        base = self.model_combo.folder()
        if base is None:
            raise InputError("Choose the model to start from.")
        name = self.name_edit.text().strip()
        if not name or any(c in name for c in '/\\:*?"<>|') or name.startswith("."):
            raise InputError(f"'{name}' cannot be a folder name: use letters, digits, - and _.")
        folder = user_models_dir() / name
        if folder.exists():
            raise InputError(
                f"A model folder named '{name}' exists already in {folder.parent}; "
                "choose another name (nothing is ever overwritten)."
            )
        train, held, raw, notes = self._collect()
        native = ModelCard.load(Path(base)).pixel_size_um
        note = resample_note([*train, *held], native)
        if note:
            notes.append(note)
        if any(v.pixel_size_um is None for v in train):
            notes.append(
                f"Images without a pixel size (scale 1) are taken at the model's {native:g} µm."
            )
        minutes = self.duration_unit.currentText() == "minutes"
        config = fine_tune_config(
            base,
            folder,
            train,
            native,
            which=WHICH[self.which_combo.currentText()],
            lr=self.lr.value(),
            minutes=float(self.duration.value()) if minutes else None,
            epochs=None if minutes else self.duration.value(),
            name=name,
            held_out=[v.name for v in held],
        )
        return config, train, held, raw, notes

    def _start_worker(self, config: Any, train: Any, held: Any, raw: Any) -> None:
        from napari.qt.threading import create_worker

        handlers = {
            "yielded": self._on_event,
            "returned": self._on_returned,
            "errored": self._on_errored,
            "finished": self._on_finished,
        }
        args = (config, train, held, raw, self._stop.is_set)
        self.worker = create_worker(_train_job, *args, _connect=handlers, _start_thread=False)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        total = 1000 if config.max_seconds else config.steps
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(0)
        self._napari_progress = progress(total=total, desc=f"Training '{config.model_name}'")
        self.status_label.setText("Saving the corrections…")
        self.worker.start()

    def stop(self) -> None:
        """Finish the current batch, keep the checkpoint and save the model reached so far."""
        if self.worker is None:
            return
        self._stop.set()
        self.stop_button.setEnabled(False)
        self.status_label.setText("Stopping after this batch…")

    def _set_progress(self, value: int) -> None:
        self.progress_bar.setValue(value)
        if self._napari_progress is not None:
            self._napari_progress.update(value - self._napari_progress.n)

    def _on_event(self, event: Any) -> None:
        config = self._job["config"]
        if isinstance(event, tuple) and event[0] == "saved":
            folder = Path(config.output_model) / "corrections"
            self.status_label.setText(f"Corrections saved in {folder}; training…")
            return
        self.last_event = event
        if event.kind == "step":
            self.plot.add_losses(event.step, event.losses)
            if config.max_seconds:
                self._set_progress(min(1000, int(1000 * event.elapsed_s / config.max_seconds)))
            else:
                self._set_progress(event.step)
            loss = ", ".join(
                f"{k} {event.losses[k]:.3f}" for k in ("spines", "dendrites") if k in event.losses
            )
            self.status_label.setText(f"Step {event.step}: loss {loss}")
        elif event.kind == "validation":
            self.plot.add_validation(event.step, event.metrics)
            scores = ", ".join(f"{k} {v:.3f}" for k, v in event.metrics.items())
            self.status_label.setText(f"Held-out scores at step {event.step}: {scores}")

    def _on_returned(self, outcome: Any) -> None:
        if isinstance(outcome, Exception):
            show_error(
                f"Training failed: {outcome}"
                if isinstance(outcome, DendritePanopticError)
                else f"Training failed: {outcome!r}"
            )
            self.status_label.setText(f"Failed: {outcome}. The corrections saved before stay.")
            return
        if outcome is None or outcome.model_folder is None:
            return
        self.last_model_folder = outcome.model_folder
        refresh_model_pickers()
        self.rerun_button.setEnabled(True)
        how = "stopped" if outcome.kind == "stopped" else "finished"
        if outcome.kind == "done":
            self._drop_checkpoint(Path(self._job["config"].work_dir))
        message = (
            f"Training {how} after {outcome.step} steps ({outcome.elapsed_s / 60:.1f} min): "
            f"model '{Path(outcome.model_folder).name}' saved in {outcome.model_folder}."
        )
        show_info(message)
        self.status_label.setText(message)

    @staticmethod
    def _drop_checkpoint(work: Path) -> None:
        """A finished run's model folder holds the final weights: its resumable checkpoint
        (optimiser state, ~100 MB) is no longer needed. A stopped run keeps it."""
        from ..training import CHECKPOINT_FILE

        try:
            (work / CHECKPOINT_FILE).unlink(missing_ok=True)
            work.rmdir()
        except OSError as exc:
            logger.debug("kept %s: %s", work, exc)

    def _on_errored(self, exc: Exception) -> None:
        show_error(f"Training failed: {exc}")
        self.status_label.setText(f"Failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        if self._napari_progress is not None:
            self._napari_progress.close()
            self._napari_progress = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.plot.redraw()

    def rerun_inference(self) -> None:
        """Open the inference dock with the new model selected and segment the first trained
        image again (the corrected layers are kept: new results go into new layers)."""
        if self.last_model_folder is None:
            return
        try:
            _, widget = self.viewer.window.add_plugin_dock_widget(PLUGIN, "Panoptic inference")
        except (KeyError, RuntimeError, ValueError) as exc:
            show_warning(f"Could not open the inference dock: {exc}")
            return
        widget.refresh_models()
        widget.set_model_folder(self.last_model_folder)
        images = self._job.get("images", [])
        if images and images[0] in self.viewer.layers:
            widget.image_combo.setCurrentText(images[0])
            widget.run()
