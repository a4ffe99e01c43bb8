"""Dock widget: run panoptic inference on an image layer, results as two Labels layers.

The engine (:func:`napari_dendrite_panoptic.inference.iter_predict`) runs in a napari
``thread_worker``; its progress events drive the progress bar on the GUI thread. torch is
imported when the widget is built (model and device lists), never when the plugin is listed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
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
    add_or_update_labels,
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

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Failed:
    """The exception that stopped a job, wrapped: napari's worker drops a *returned* exception
    (a RuntimeError is taken for a deleted Qt object and no signal is sent at all)."""

    error: Exception


def _job(image: Any, voxel: Any, config: Any, should_stop: Callable[[], bool]) -> Iterator[Any]:
    """Worker body: yields the engine's progress events, returns its result or the exception
    that stopped it wrapped in :class:`_Failed` (so that the GUI shows one clean message
    instead of a traceback)."""
    from ..inference import PanopticResult, iter_predict

    try:
        for event in iter_predict(image, voxel, config, should_stop=should_stop):
            if isinstance(event, PanopticResult):
                return event
            yield event
    except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
        if not isinstance(exc, DendritePanopticError):
            logger.exception("inference failed")
        return _Failed(exc)
    return None


def _series_job(
    data: Any,
    indices: list[tuple[int, ...]],
    voxel: Any,
    config: Any,
    should_stop: Callable[[], bool],
) -> Iterator[Any]:
    """Worker body for every time point of a 4D+ layer: one run per index on the leading axes,
    in this one worker; the progress messages name the time point. Returns the list of results,
    or the exception that stopped a run wrapped in :class:`_Failed`
    (:class:`~napari_dendrite_panoptic.errors.Cancelled` when cancelled between runs)."""
    results = []
    for k, index in enumerate(indices):
        if should_stop():
            return _Failed(Cancelled("cancelled"))
        where = f"Time point {index[0]} ({k + 1} of {len(indices)})"
        runs = _job(data[index], voxel, config, should_stop)
        try:
            while True:
                event = next(runs)
                text = f"{where}: {event.message}" if event.message else where
                yield replace(event, message=text)
        except StopIteration as stop:
            outcome = stop.value
        if outcome is None or isinstance(outcome, _Failed):
            return outcome
        results.append(outcome)
        yield _TimePoint(where)
    return results


@dataclass(frozen=True)
class _TimePoint:
    """Yielded after each time point of an all-time-points run: the dock says where it is."""

    done: str


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
            body: Any = _series_job
            args: tuple = (job.pop("series_data"), job["indices"], job["voxel"], job["config"])
        else:
            body, args = _job, (image, job["voxel"], job["config"])
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
        if isinstance(event, _TimePoint):
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
        if isinstance(outcome, _Failed):
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
            self._show_series(outcome)
            self._finished_ok = True
        elif outcome is not None:
            self._show_result(outcome)
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

    @staticmethod
    def _run_record(result: Any, job: dict[str, Any]) -> dict[str, Any]:
        """The same run record the CLI writes to ``<stem>_run.json`` (see provenance.py)."""
        from ..inference import run_record
        from ..models import load_models

        models = load_models(job["config"].model, job["config"].device)  # cached: no reload
        voxel = job["voxel"]
        return run_record(
            result,
            models,
            input_path=job["input"]["path"],
            input_shape=job["input"]["shape"],
            input_dtype=job["input"]["dtype"],
            input_voxel_size_um=tuple(voxel) if voxel is not None else None,
            input_voxel_size_source="layer scale" if voxel is not None else "none (scale 1)",
            started=job["started"],
            duration_s=time.perf_counter() - job["t0"],
        )

    def _show_result(self, result: Any) -> None:
        import pandas as pd

        job = self._job
        dendrite, spines = result.dendrite, result.spines
        if job["ndim"] == 2:
            dendrite, spines = dendrite[0], spines[0]
        features = pd.DataFrame(result.table)
        features.insert(0, "index", features["id"].astype(int))
        info = {
            "source_layer": job["image_name"],
            "source_index": list(job["index"]),
            "model_name": result.model_name,
            "model_folder": job["config"].model,
            "pixel_size_source": result.pixel_size_source,
            "voxel_size_um": list(result.voxel_size_um),
            "parameters": dict(result.parameters),
            "run_record": self._run_record(result, job),
        }
        place = {"scale": job["scale"], "translate": job["translate"], "units": job["units"]}
        outputs = (
            ("dendrites", dendrite, {}),
            ("spines", spines.astype("uint32", copy=False), {"features": features}),
        )
        for role, data, extra in outputs:
            name = f"{job['image_name']} {role}"
            meta = {**info, "role": role}
            add_or_update_labels(self.viewer, name, data, metadata=meta, **place, **extra)
        stack = ""
        if job["ndim"] == 3 and dendrite.shape[0] > 1:  # which stack path ran, and why
            params = result.parameters
            stack = f" Stack mode {params['stack_mode_used']}: {params['stack_mode_reason']}."
        where = ""
        if job["index"]:
            where = f" at time point {job['index'][0]} (of {job['n_time']})"
        self.status_label.setText(
            f"Done{where}: {len(features)} spine(s), model '{result.model_name}', "
            f"pixel size {result.voxel_size_um[-1]:g} µm ({result.pixel_size_source}).{stack}"
        )

    def _show_series(self, results: list[Any]) -> None:
        """Every time point's result as 4D+ Labels layers (leading axes as the image's); spine
        ids are made unique across time points, and each spine's row names its time point."""
        import numpy as np
        import pandas as pd

        job = self._job
        dendrite = np.stack([r.dendrite for r in results])
        spines = np.zeros((len(results), *results[0].spines.shape), np.uint32)
        tables, offset = [], 0
        for t, result in enumerate(results):
            spines[t] = np.where(result.spines > 0, result.spines.astype(np.uint32) + offset, 0)
            table = pd.DataFrame(result.table)
            table["id"] = table["id"].astype(int) + offset
            table.insert(0, "time_point", job["indices"][t][0])
            tables.append(table)
            offset = max(offset, int(spines[t].max()))
        features = pd.concat(tables, ignore_index=True)
        features.insert(0, "index", features["id"].astype(int))
        # the time axis is the layer's first; other leading axes (a channel) stay as viewed
        layer = self.viewer.layers[job["image_name"]]
        units = layer_units(layer)
        place = {
            "scale": [float(layer.scale[0]), *job["scale"]],
            "translate": [float(layer.translate[0]), *job["translate"]],
            "units": None if job["units"] is None or units is None else [units[0], *job["units"]],
        }
        info = {
            "source_layer": job["image_name"],
            "source_index": [list(i) for i in job["indices"]],
            "model_name": results[0].model_name,
            "model_folder": job["config"].model,
            "pixel_size_source": results[0].pixel_size_source,
            "voxel_size_um": list(results[0].voxel_size_um),
            "parameters": dict(results[0].parameters),
            "run_records": [self._run_record(r, job) for r in results],
        }
        for role, data, extra in (
            ("dendrites", dendrite, {}),
            ("spines", spines, {"features": features}),
        ):
            name = f"{job['image_name']} {role}"
            meta = {**info, "role": role}
            add_or_update_labels(self.viewer, name, data, metadata=meta, **place, **extra)
        counts = features["time_point"].value_counts()
        per_t = ", ".join(str(int(counts.get(i[0], 0))) for i in job["indices"])
        self.status_label.setText(
            f"Done: all {len(results)} time points, {len(features)} spine(s) ({per_t} per time "
            f"point), model '{results[0].model_name}', pixel size "
            f"{results[0].voxel_size_um[-1]:g} µm ({results[0].pixel_size_source})."
        )
