"""Dock widget: run panoptic inference on an image layer, results as two Labels layers.

The engine (:func:`napari_dendrite_panoptic.inference.iter_predict`) runs in a napari
``thread_worker`` (the worker bodies are in :mod:`.inference_jobs`); its progress events drive the
progress bar on the GUI thread, and the result becomes layers through :mod:`.inference_results`.
torch is imported when the widget is built (model and device lists), never when the plugin is
listed.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils import progress
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from ..errors import Cancelled, DendritePanopticError
from ._common import (
    ModelPicker,
    button_row,
    form,
    layer_picker,
    layer_units,
    reset_picker,
    scale_is_calibrated,
    scrolling_layout,
    spatial_data,
    spin_box,
    voxel_size_from_scale,
)
from .inference_jobs import Failed, TimePoint, segment_job, series_job
from .inference_results import show_result, show_series

if TYPE_CHECKING:
    import napari


STACK_MODE_CHOICES = (
    ("auto", "auto (from depth)"),
    ("slabs", "slab projections"),
    ("projection", "one projection"),
    ("planes", "every plane, linked"),
)
"""The dock's stack modes (``InferenceConfig.stack_mode``) and their words; the first is the
default."""


class PanopticInferenceWidget(QWidget):
    """Segment dendrites and spines of an Image layer with a model folder.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose Image layers are offered and which receives ``<image> dendrites``
        (uint8) and ``<image> spines`` (uint32, one ``features`` row per spine) Labels layers.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None  # the running GeneratorWorker, None when idle
        self._stop = threading.Event()
        self._job: dict[str, Any] = {}
        self._finished_ok = False
        self._napari_progress: Any = None

        from napari.layers import Image

        self.image_picker = layer_picker(napari_viewer, Image)
        self.model_combo = ModelPicker()
        self.device_combo = QComboBox()
        # the lowest value (-0.05) stands for "the threshold recommended by the model's card"
        # (the spine score's and the dendrite probability's)
        self.score_threshold = spin_box(-0.05, 1.0, -0.05, 0.05, 2)
        self.score_threshold.setSpecialValueText("model default")
        self.dendrite_threshold = spin_box(-0.05, 1.0, -0.05, 0.05, 2)
        self.dendrite_threshold.setSpecialValueText("model default")
        self.pixel_size = spin_box(0.0, 100.0, 0.0, 0.01, 4)
        self.pixel_size.setSpecialValueText("from layer scale")
        self.pixel_size.setSuffix(" µm")
        self.pixel_size.valueChanged.connect(self._on_pixel_size_edited)
        # an uncalibrated image: the field holds the pixel size estimated from the dendrite
        # width until the user confirms or corrects it
        self.pixel_note = QLabel("")
        self.pixel_note.setWordWrap(True)
        self.pixel_note.setVisible(False)
        self.confirm_button = QPushButton("Confirm")
        self.confirm_button.setToolTip("Use this pixel size for the image")
        self.confirm_button.clicked.connect(self.confirm_pixel_size)
        self.confirm_button.setVisible(False)
        self.estimate: float | None = None
        """The pixel size (µm) estimated for the chosen uncalibrated image, None otherwise."""
        self.pixel_size_confirmed = False
        self._filled = False  # the field holds the estimate (confirmed or not)
        self.flips = QCheckBox("4 mirror views vote")
        self.flips.setToolTip(
            "Segment each plane as seen in four mirror views and keep the spines most views "
            "find: slightly fewer false spines, four times the time."
        )
        self.stack_mode = QComboBox()
        for mode, text in STACK_MODE_CHOICES:
            self.stack_mode.addItem(text, mode)
        self.stack_mode.setToolTip(
            "How a z-stack is segmented. Slabs: projections of overlapping 3 µm slabs, each "
            "spine lifted to the planes where it is (one object per spine). Projection: the "
            "whole stack at once. Planes: every plane on its own, linked across planes. Auto: "
            "a projection for a stack no deeper than one slab, else slabs."
        )
        self.all_time_points = QCheckBox("All time points")
        self.all_time_points.setToolTip(
            "For a time series (T, Z, Y, X): segment every time point, one after the other, "
            "into 4D result layers. Unticked: only the time point shown in the viewer."
        )
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.status_label = QLabel("Ready.")
        self.status_label.setWordWrap(True)

        layout = scrolling_layout(self)
        layout.addLayout(
            form(
                [
                    ("Image", self.image_picker.native),
                    ("Model", self.model_combo),
                    ("Device", self.device_combo),
                    ("Spine score ≥", self.score_threshold),
                    ("Dendrite prob. ≥", self.dendrite_threshold),
                    ("Pixel size", button_row(self.pixel_size, self.confirm_button)),
                    ("", self.pixel_note),
                    ("Stacks", self.stack_mode),
                    ("Quality", self.flips),
                    ("Time series", self.all_time_points),
                ]
            )
        )
        layout.addLayout(button_row(self.run_button, self.cancel_button))
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        from ..models import available_devices

        self.device_combo.addItems(available_devices())
        self.image_picker.changed.connect(self._on_image_chosen)
        self._on_image_chosen()

    # --- pickers ---------------------------------------------------------------------------
    def reset_choices(self, *_: Any) -> None:
        """Re-read the viewer's Image layers into the image picker (napari calls this on every
        change of the layer list), keeping the choice while its layer exists."""
        reset_picker(self.image_picker)

    def _on_image_chosen(self, *_: Any) -> None:
        """An uncalibrated image (scale 1) gets its pixel size estimated from the dendrite
        width, shown highlighted in the field until confirmed; a calibrated one clears it."""
        from ..errors import InputError
        from ..inference import PLAUSIBLE_FACTOR, estimate_pixel_size, plausible

        layer = self.image_picker.value
        if self._filled:  # the previous image's estimate, confirmed or not, is not this one's
            self._set_pixel_size(0.0)
        self.estimate, self.pixel_size_confirmed, self._filled = None, False, False
        if layer is None or getattr(layer, "rgb", False) or scale_is_calibrated(layer.scale):
            self._show_pixel_note("")
            return
        try:
            data, _ = spatial_data(layer, self.viewer)
            estimate = estimate_pixel_size(data)
        except (InputError, ValueError) as exc:
            self._show_pixel_note(
                f"'{layer.name}' has no pixel size and {exc}: set it here, or the model's is used."
            )
            return
        native = self._model_pixel_size()
        if native is not None and not plausible(estimate, native):
            self._show_pixel_note(
                f"'{layer.name}' has no pixel size; its dendrite width suggests "
                f"{estimate.unclamped_um:.3g} µm, more than {PLAUSIBLE_FACTOR:g}x from the "
                f"model's {native:g} µm (hazy or unusually thick dendrites do that): set it "
                f"here, or the model's {native:g} µm is used."
            )
            return
        self.estimate = round(estimate.pixel_size_um, 4)
        self._set_pixel_size(self.estimate)
        self._filled = True
        self._show_pixel_note(
            f"'{layer.name}' has no pixel size: estimated from the dendrite width (shafts "
            f"{estimate.shaft_width_px:.0f} px wide). Please confirm or correct it."
        )

    def _model_pixel_size(self) -> float | None:
        """The chosen model's pixel size (µm), None when its card cannot be read."""
        from ..errors import ModelError
        from ..models import ModelCard, bundled_model_dir

        try:
            return ModelCard.load(
                Path(self.model_combo.folder() or bundled_model_dir())
            ).pixel_size_um
        except ModelError:
            return None

    def _set_pixel_size(self, value: float) -> None:
        self.pixel_size.blockSignals(True)
        self.pixel_size.setValue(value)
        self.pixel_size.blockSignals(False)

    def _show_pixel_note(self, text: str) -> None:
        """Show ``text`` under the pixel size, highlighted ("" hides it and the highlight)."""
        waiting = bool(text) and self.estimate is not None and not self.pixel_size_confirmed
        self.pixel_note.setText(text)
        self.pixel_note.setVisible(bool(text))
        self.pixel_note.setStyleSheet("color: #ffa500; font-weight: bold;" if text else "")
        self.pixel_size.setStyleSheet("background-color: #7a5200;" if waiting else "")
        self.confirm_button.setVisible(waiting)

    def confirm_pixel_size(self) -> None:
        """Accept the pixel size in the field for the chosen image."""
        if self.estimate is None:
            return
        self.pixel_size_confirmed = True
        self._show_pixel_note("")

    def _on_pixel_size_edited(self, _value: float) -> None:
        self._filled = False  # the user's own value: kept for the next image too
        if self.estimate is not None and not self.pixel_size_confirmed:
            self.confirm_pixel_size()  # a value the user typed is a confirmed one

    def refresh_models(self) -> None:
        """Re-list the bundled and user model folders (keeps the selection when it still exists)."""
        self.model_combo.refresh()

    def set_model_folder(self, path: str | Path) -> None:
        """Add a model folder to the picker (if new) and select it.

        Raises
        ------
        ModelError
            When ``path`` holds no valid ``card.json``.
        """
        self.model_combo.set_folder(path)

    # --- running ---------------------------------------------------------------------------
    def run(self) -> None:
        """Validate the inputs and start inference in a worker thread."""
        if self.worker is not None:
            return
        layer = self.image_picker.value
        if layer is None or layer not in self.viewer.layers:
            show_error("Choose an image layer to segment first.")
            return
        name = layer.name
        folder = self.model_combo.folder()
        if folder is None:
            show_error("No model selected: choose a model folder with 'Browse…'.")
            return
        if getattr(layer, "rgb", False):
            show_error(f"'{name}' is an RGB image: split the channels and pick one.")
            return
        try:
            image, index = spatial_data(layer, self.viewer)
            job = self._job_settings(layer, folder, len(image.shape))
        except (DendritePanopticError, ValueError) as exc:
            show_error(str(exc))
            return
        job["image_name"], job["index"] = name, index
        job["n_time"] = 0
        if index:  # a time series: the time point(s), and their count, for the status
            data = layer.data[0] if layer.multiscale else layer.data
            job["n_time"] = int(data.shape[0])
            if self.all_time_points.isChecked():
                job["indices"] = [(t, *index[1:]) for t in range(job["n_time"])]
                job["series_data"] = data
                # the time axis's placement, kept: the layer may be renamed or removed by then
                units = layer_units(layer)
                job["lead"] = {
                    "scale": float(layer.scale[0]),
                    "translate": float(layer.translate[0]),
                    "unit": None if units is None else units[0],
                }
        job["started"], job["t0"] = datetime.now(timezone.utc), time.perf_counter()
        job["input"] = {
            "path": str(layer.source.path) if getattr(layer.source, "path", None) else None,
            "shape": tuple(int(s) for s in image.shape),
            "dtype": str(image.dtype),
        }
        self._job = job
        self._stop = threading.Event()
        self._start_worker(image, job)

    def _job_settings(self, layer: Any, folder: str, ndim: int) -> dict[str, Any]:
        from ..inference import InferenceConfig

        scale = [float(s) for s in layer.scale[-ndim:]]
        override = self.pixel_size.value()
        voxel = voxel_size_from_scale(scale) if scale_is_calibrated(scale) else None
        if voxel is None and self.estimate is not None and not self.pixel_size_confirmed:
            override = 0.0  # not confirmed: the engine estimates it and says so
        config = InferenceConfig(
            model=folder,
            device=self.device_combo.currentText() or "auto",
            spine_score_threshold=(
                self.score_threshold.value() if self.score_threshold.value() >= 0 else None
            ),
            dendrite_threshold=(
                self.dendrite_threshold.value() if self.dendrite_threshold.value() >= 0 else None
            ),
            pixel_size_um=override if override > 0 else None,
            test_time_flips=self.flips.isChecked(),
            stack_mode=self.stack_mode.currentData(),
        )
        return {
            "config": config,
            "voxel": voxel,
            "scale": scale,
            "translate": [float(t) for t in layer.translate[-ndim:]],
            "units": layer_units(layer, ndim),
            "ndim": ndim,
        }

    def _start_worker(self, image: Any, job: dict[str, Any]) -> None:
        from napari.qt.threading import create_worker

        handlers = {
            "yielded": self._on_progress,
            "returned": self._on_returned,
            "errored": self._on_errored,
            "finished": self._on_finished,
        }
        if "indices" in job:
            body: Any = series_job
            args: tuple = (job.pop("series_data"), job["indices"], job["voxel"], job["config"])
        else:
            body, args = segment_job, (image, job["voxel"], job["config"])
        args = (*args, self._stop.is_set)
        self.worker = worker = create_worker(body, *args, _connect=handlers, _start_thread=False)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        # napari's own progress bar (activity dock / status bar) mirrors the dock's bar
        self._napari_progress = progress(total=0, desc=f"Segmenting '{job['image_name']}'")
        self.status_label.setText(f"Loading the model for '{job['image_name']}'…")
        worker.start()

    def cancel(self) -> None:
        """Ask the running job to stop; the viewer's layers stay as they are."""
        if self.worker is None:
            return
        self._stop.set()
        self.worker.quit()
        self.status_label.setText("Cancelling…")

    def _on_progress(self, event: Any) -> None:
        if self._stop.is_set():
            return
        if isinstance(event, TimePoint):
            self.status_label.setText(f"{event.done}: done.")
            return
        if getattr(event, "warning", ""):
            show_warning(f"'{self._job.get('image_name', '')}': {event.warning}")
        self.progress_bar.setRange(0, max(int(event.total), 1))
        self.progress_bar.setValue(int(event.done))
        if event.message:
            self.status_label.setText(event.message)
        # last: updating napari's progress can process queued events, among them the job's
        # result, whose "Done" message must not be overwritten by this older one
        if self._napari_progress is not None:
            self._napari_progress.total = int(event.total)
            self._napari_progress.update(int(event.done) - self._napari_progress.n)

    def _on_returned(self, outcome: Any) -> None:
        if isinstance(outcome, Failed):
            outcome = outcome.error
        if isinstance(outcome, Cancelled) or self._stop.is_set():
            self.status_label.setText("Cancelled: no layer was changed.")
        elif isinstance(outcome, Exception):
            if isinstance(outcome, DendritePanopticError):
                message = str(outcome)
            else:  # a bug or a library failure: say what, the traceback is in the log
                message = (
                    f"Inference failed unexpectedly ({type(outcome).__name__}: {outcome}); "
                    "the details are in the log. No layer was changed."
                )
            show_error(message)
            self.status_label.setText(f"Failed: {message}")
        elif isinstance(outcome, list):
            self.status_label.setText(show_series(self.viewer, outcome, self._job))
            self._finished_ok = True
        elif outcome is not None:
            self.status_label.setText(show_result(self.viewer, outcome, self._job))
            self._finished_ok = True

    def _on_errored(self, exc: Exception) -> None:
        show_error(f"Inference failed: {exc}")
        self.status_label.setText(f"Failed: {exc}")

    def _on_finished(self) -> None:
        if self._stop.is_set():
            self.status_label.setText("Cancelled: no layer was changed.")
        self.worker = None
        if self._napari_progress is not None:
            self._napari_progress.close()
            self._napari_progress = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_bar.setRange(0, 1)
        # a finished run shows a full bar; a cancelled or failed one an empty bar
        self.progress_bar.setValue(1 if self._finished_ok else 0)
        self._finished_ok = False
