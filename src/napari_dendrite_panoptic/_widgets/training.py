"""Dock widget "Train on corrections": fine-tune the models on the user's corrected layers.

The user picks (image, dendrite Labels, spine Labels) triples in a table (:mod:`.training_rows`),
optionally one or more held out for validation (turned into training data by
:mod:`.training_inputs`). The engine (:mod:`napari_dendrite_panoptic.data.corrections` for the
data, :func:`napari_dendrite_panoptic.training.iter_fine_tune` for the run) works in a napari
worker thread: it first saves the corrections as TIFFs into the new model folder, then trains;
every step drives the progress bar, the loss curve (:mod:`.loss_plot`) and the status line
(its text from :mod:`napari_dendrite_panoptic.training.report`). Stop ends after the current
batch, keeps the last checkpoint and saves the weights reached so far as a model folder.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..errors import DendritePanopticError
from ._common import (
    ModelPicker,
    button_row,
    form,
    placement,
    refresh_model_pickers,
    scrolling_layout,
)
from .loss_plot import LossPlot
from .training_inputs import collect_training_data
from .training_rows import CorrectionRows

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

PLUGIN = "napari-dendrite-panoptic"
WHICH = {"Both models": "both", "Spines only": "spines", "Dendrites only": "dendrites"}
LAYERS = {
    "Whole networks": "all",
    "All but the stems (faster)": "upper",
    "Heads only (trunks kept, fastest)": "heads",
}


def _train_job(
    config: Any,
    volumes: list[Any],
    held_out: list[Any],
    raw: list[dict[str, Any]],
    should_stop: Callable[[], bool],
    recalibrate: bool = True,
) -> Iterator[Any]:
    """Worker body: save the corrections, then train (fine_tuning.py); yields training events
    and returns the last one, or the exception that ended the run (shown once, without a
    traceback)."""
    from ..training import iter_fine_tune

    try:
        return (yield from iter_fine_tune(config, volumes, held_out, raw, should_stop, recalibrate))
    except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
        if not isinstance(exc, DendritePanopticError):
            logger.exception("training failed")
        return exc


LOSS_PLOT_MIN_HEIGHT = 160
"""The loss plot's least height in px: it stays readable however small the dock (which scrolls)."""


class TrainOnCorrectionsWidget(QWidget):
    """Fine-tune the spine and/or dendrite model on corrected Labels layers.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose Image and Labels layers are offered as training triples.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        # the engine's defaults, not with napari
        from ..training import FINE_TUNE_FREEZE_NORM, HELD_OUT_MIN_SPINES

        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self._stop = threading.Event()
        self._job: dict[str, Any] = {}
        self._napari_progress: Any = None
        self.last_model_folder: str | None = None
        self.last_event: Any = None
        self.last_kept_step: int | None = None

        self.table = CorrectionRows(napari_viewer)
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
        self._calibration: Any = None  # the last run's (spine, dendrite) ThresholdChoice

        self.which_combo = QComboBox()
        self.which_combo.addItems(list(WHICH))
        self.layers_combo = QComboBox()
        self.layers_combo.addItems(list(LAYERS))
        self.layers_combo.setToolTip(
            "All but the stems keeps each network's stem and first ResNet stage as the base "
            "model has them (a little faster); heads only keeps the whole ResNet trunk: about a "
            "third more steps per minute, and fewer weights for a few images to move"
        )
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
        self.freeze_norm = QCheckBox("Keep the model's normalisation")
        self.freeze_norm.setChecked(FINE_TUNE_FREEZE_NORM)
        self.freeze_norm.setToolTip(
            "Normalise with the statistics the model learned on its training data instead of "
            "re-estimating them from the small fine-tuning batches (docs/fine_tuning.md)"
        )
        self.recalibrate = QCheckBox("Choose the thresholds on my corrections")
        self.recalibrate.setChecked(True)
        self.recalibrate.setToolTip(
            "After training, try spine score thresholds 0.30-0.95 and dendrite probability "
            "thresholds 0.20-0.80 on the held-out rows and keep those with the best spine F1 "
            "and dendrite IoU there in the new model's card (without held-out rows, or with "
            f"fewer than {HELD_OUT_MIN_SPINES} held-out spines, the spine threshold is the one "
            "at which the new model keeps about as many spines on the corrected rows as you "
            "corrected there)"
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
        self.plot.setMinimumHeight(LOSS_PLOT_MIN_HEIGHT)  # readable; the dock scrolls instead

        layout = scrolling_layout(self)
        layout.addWidget(QLabel("Corrected images (image, dendrite labels, spine labels):"))
        layout.addWidget(self.table)
        layout.addLayout(button_row(self.add_row_button, self.remove_row_button))
        layout.addWidget(self.split_button)
        layout.addLayout(
            form(
                [
                    ("Train", self.which_combo),
                    ("Layers", self.layers_combo),
                    ("Start from", self.model_combo),
                    ("Duration", button_row(self.duration, self.duration_unit)),
                    ("Learning rate", self.lr),
                    ("", self.only_edited),
                    ("", self.freeze_norm),
                    ("", self.recalibrate),
                    ("New model name", self.name_edit),
                ]
            )
        )
        layout.addLayout(button_row(self.start_button, self.stop_button))
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.plot)
        layout.addWidget(self.rerun_button)

        self.add_row()

    # --- the table of triples ----------------------------------------------------------------
    def add_row(self, image: str | None = None) -> int:
        """Add a triple; its labels default to ``<image> dendrites`` / ``<image> spines``."""
        return self.table.add_row(image)

    def remove_row(self) -> None:
        """Remove the selected triple (the last one when none is selected)."""
        self.table.remove_row()

    def set_row(
        self,
        row: int,
        image: str,
        dendrite: str | None = None,
        spines: str | None = None,
        held_out: bool = False,
    ) -> None:
        """Choose the layers of one triple (labels default to the inference dock's names, else
        to those of ``segment``'s files)."""
        self.table.set_row(row, image, dendrite, spines, held_out)

    def row_names(self, row: int) -> tuple[str, str, str, bool]:
        """(image, dendrite, spine layer names, held out) of a row; "" for none."""
        return self.table.row_names(row)

    def reset_choices(self, *_: Any) -> None:
        """Re-read the layers into every row's pickers (napari calls this on every change of
        the layer list), keeping the choices whose layers still exist."""
        self.table.reset_choices()

    # --- inputs --------------------------------------------------------------------------------
    def _collect(self) -> tuple[list[Any], list[Any], list[dict[str, Any]], list[str]]:
        """Validate the rows; returns (train volumes, held-out volumes, raw arrays, notes)."""
        return collect_training_data(
            self.viewer,
            self.table.all_names(),
            WHICH[self.which_combo.currentText()],
            self.only_edited.isChecked(),
            self._offer_split,
        )

    def _offer_split(self, row: int) -> None:
        """Row ``row``'s spine layer is a semantic mask: show the button that splits it."""
        self._semantic_row = row
        self.split_button.setVisible(True)

    def split_semantic_spines(self) -> None:
        """Add ``<spines> instances`` (one id per connected object) and use it in the row."""
        from ..core import mask_to_instances

        row = self._semantic_row
        if row is None or row >= self.table.rowCount():
            return
        _, _, spi_name, _ = self.row_names(row)
        layer = self.viewer.layers[spi_name]
        split = mask_to_instances(layer.data)
        name = f"{spi_name} instances"
        new = self.viewer.add_labels(split, name=name, **placement(layer))
        self.table.pickers[row][2].value = new
        self.split_button.setVisible(False)
        self._semantic_row = None
        show_info(f"Added '{new.name}' with {int(split.max())} spines; '{spi_name}' is unchanged.")

    # --- running -------------------------------------------------------------------------------
    def start(self) -> None:
        """Validate the inputs and start fine-tuning in a worker thread."""
        if self.worker is not None:
            return
        from ..data import steps_per_epoch
        from ..errors import InputError

        try:
            config, train, held, raw, notes = self._prepare()
        except (InputError, DendritePanopticError, ValueError, KeyError) as exc:
            show_error(str(exc))
            self.status_label.setText(f"Not started: {exc}")
            return
        for note in notes:
            show_info(note)
        per_epoch = steps_per_epoch(
            train, config.crop_size, config.pixel_size_um, config.batch_size
        )
        self._job = {
            "config": config,
            "images": [r["name"] for r in raw],
            "steps_per_epoch": per_epoch,
        }
        self._stop = threading.Event()
        self.plot.clear()
        self.rerun_button.setEnabled(False)
        self._start_worker(config, train, held, raw)

    def _prepare(self) -> tuple[Any, list[Any], list[Any], list[dict[str, Any]], list[str]]:
        from ..data import pixel_size_notes
        from ..errors import InputError
        from ..models import ModelCard, user_model_folder
        from ..training import fine_tune_config

        base = self.model_combo.folder()
        if base is None:
            raise InputError("Choose the model to start from.")
        name = self.name_edit.text().strip()
        folder = user_model_folder(name)
        if folder.exists():
            raise InputError(
                f"A model folder named '{name}' exists already in {folder.parent}; "
                "choose another name (nothing is ever overwritten)."
            )
        train, held, raw, notes = self._collect()
        native = ModelCard.load(Path(base)).pixel_size_um
        notes += pixel_size_notes(train, held, native)
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
            freeze_norm=self.freeze_norm.isChecked(),
            layers=LAYERS[self.layers_combo.currentText()],
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
        self._calibration = None
        args = (config, train, held, raw, self._stop.is_set, self.recalibrate.isChecked())
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
        from ..training import calibration_text, progress_text

        config = self._job["config"]
        if isinstance(event, tuple) and event[0] == "saved":
            folder = Path(config.output_model) / "corrections"
            self.status_label.setText(f"Corrections saved in {folder}; training…")
            return
        if isinstance(event, tuple) and event[0] == "calibrated":
            self._calibration = event[1]
            self.status_label.setText(calibration_text(self._calibration))
            return
        self.last_event = event
        if event.kind == "step":
            self.plot.add_losses(event.step, event.losses)
            if config.max_seconds:
                self._set_progress(min(1000, int(1000 * event.elapsed_s / config.max_seconds)))
            else:
                self._set_progress(event.step)
            self.status_label.setText(progress_text(event))
        elif event.kind == "validation":
            self.plot.add_validation(event.step, event.metrics)
            self.status_label.setText(progress_text(event))

    def _on_returned(self, outcome: Any) -> None:
        from ..training import calibration_text, held_out_verdict, passes_text, saved_text

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
        if outcome.kind == "done":
            from ..training import drop_checkpoint

            drop_checkpoint(Path(self._job["config"].work_dir))
        kept, worse = held_out_verdict(outcome, self._job["config"].which)
        if kept:
            self.last_kept_step = outcome.best_step
        passes = passes_text(outcome.step, self._job["steps_per_epoch"])
        parts = (saved_text(outcome), passes, calibration_text(self._calibration), kept, worse)
        message = " ".join(m for m in parts if m)
        if worse:
            show_warning(f"{worse} {kept}")
        else:
            show_info(message)
        self.status_label.setText(message)

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
            widget.image_picker.value = self.viewer.layers[images[0]]
            widget.run()
