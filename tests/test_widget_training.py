"""The "Train on corrections" dock, loaded through the manifest and driven like a user would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_dendrite_panoptic._widgets import _common
from napari_dendrite_panoptic._widgets import training as widget_module
from napari_dendrite_panoptic.models import ModelCard, load_models
from napari_dendrite_panoptic.models.store import MODELS_DIR_ENV
from napari_dendrite_panoptic.training import ENOUGH_PASSES, load_checkpoint
from napari_dendrite_panoptic.training.config import CHECKPOINT_FILE

PLUGIN = "napari-dendrite-panoptic"
WAIT_MS = 120_000


@pytest.fixture
def viewer_with_corrections(make_napari_viewer, small_plane, monkeypatch, tmp_path):
    """A viewer with a plane, its 'corrected' labels (the ground truth), a held-out copy, and
    the training dock set to the tiny model; user models go to a temporary folder."""
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "user-models"))

    def _open(tiny_model_dir: Path):
        viewer = make_napari_viewer()
        scale = (0.1, 0.1)
        for name in ("plane", "other"):
            viewer.add_image(small_plane.image[0], name=name, scale=scale)
            viewer.add_labels(small_plane.dendrite[0], name=f"{name} dendrites", scale=scale)
            viewer.add_labels(small_plane.spines[0], name=f"{name} spines", scale=scale)
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train on corrections")
        widget.model_combo.set_folder(tiny_model_dir)
        widget.set_row(0, "plane")
        widget.duration_unit.setCurrentText("epochs")
        widget.duration.setValue(1)
        return viewer, widget

    return _open


def _record(monkeypatch, name) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(widget_module, name, lambda m, *a, **k: messages.append(str(m)))
    return messages


def test_training_through_the_dock_saves_corrections_and_lists_the_new_model(
    viewer_with_corrections, tiny_model_dir, qtbot, monkeypatch, tmp_path
):
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    _, inference = viewer.window.add_plugin_dock_widget(PLUGIN, "Panoptic inference")
    row = widget.add_row("other")
    widget.table.cellWidget(row, 3).setChecked(True)  # held out for validation
    widget.name_edit.setText("my-finetune")
    errors = _record(monkeypatch, "show_error")
    layers_before = [layer.name for layer in viewer.layers]

    widget.start_button.click()
    assert widget.worker is not None and widget.stop_button.isEnabled()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)

    assert errors == []
    folder = tmp_path / "user-models" / "my-finetune"
    assert widget.last_model_folder == str(folder)
    card = ModelCard.load(folder)
    assert card.name == "my-finetune"
    assert card.provenance["base_model"] == str(tiny_model_dir)
    assert card.provenance["steps"] == 1
    # the dock's "Keep the model's normalisation" reached the run
    assert card.provenance["config"]["freeze_norm"] is widget.freeze_norm.isChecked()
    assert "'plane'" in card.provenance["data"] and "held out: 'other'" in card.provenance["data"]
    assert set(card.metrics["validation"]) >= {"spine_f1", "dendrite_iou"}
    load_models(folder, "cpu")  # a complete, loadable model folder
    # corrections were saved next to the model; the finished run's checkpoint is dropped
    assert (folder / "corrections" / "plane_spines.tif").is_file()
    assert not (folder / "training" / CHECKPOINT_FILE).exists()
    # the new model shows up at once in the inference dock's picker
    assert inference.model_combo.findData(str(folder)) >= 0
    assert widget.rerun_button.isEnabled()
    assert [layer.name for layer in viewer.layers] == layers_before
    assert widget.plot.steps == [1]
    # one epoch of one step: the dock says so and advises a longer run
    status = widget.status_label.text()
    assert "about 1 pass over the corrected planes" in status
    assert f"about {ENOUGH_PASSES} did better" in status and "more minutes" in status
    # the thresholds were chosen on the held-out row's corrected planes and the dock says so
    spine, dendrite = widget._calibration
    assert spine.describe() in widget.status_label.text()
    assert dendrite.describe() in widget.status_label.text()
    assert card.inference == ModelCard.load(folder).inference


def test_passes_text_advises_a_longer_run_only_below_enough_passes():
    from napari_dendrite_panoptic.training import passes_text

    # 256² crops in batches of 2: a 512² field is 2 steps an epoch
    short = passes_text(steps=357, steps_per_epoch=16)  # eight fields in 5 minutes
    assert short.startswith("That is about 22 passes") and "more minutes" in short
    enough = passes_text(steps=377, steps_per_epoch=8)  # four fields in 5 minutes
    assert enough == "That is about 47 passes over the corrected planes."


def test_rerun_segments_into_new_layers_and_keeps_the_corrections(
    viewer_with_corrections, tiny_model_dir, qtbot
):
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    corrected = viewer.layers["plane spines"].data.copy()
    widget.last_model_folder = str(tiny_model_dir)
    widget._job = {"images": ["plane"]}
    widget.rerun_button.setEnabled(True)
    widget.rerun_button.click()
    _, inference = viewer.window.add_plugin_dock_widget(PLUGIN, "Panoptic inference")
    assert inference.model_combo.folder() == str(tiny_model_dir)
    qtbot.waitUntil(lambda: inference.worker is None, timeout=WAIT_MS)
    np.testing.assert_array_equal(viewer.layers["plane spines"].data, corrected)
    assert "plane spines [2]" in viewer.layers  # the user's layer was not ours: never replaced


def test_stop_keeps_a_loadable_checkpoint_and_saves_the_model_so_far(
    viewer_with_corrections, tiny_model_dir, qtbot, tmp_path
):
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    widget.duration_unit.setCurrentText("minutes")
    widget.duration.setValue(5)
    widget.name_edit.setText("stopped-run")
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.last_event is not None, timeout=WAIT_MS)
    widget.stop_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    folder = tmp_path / "user-models" / "stopped-run"
    state = load_checkpoint(folder / "training" / CHECKPOINT_FILE)
    assert state["step"] >= 1
    assert ModelCard.load(folder).provenance["steps"] == state["step"]
    assert "stopped" in widget.status_label.text()
    assert widget.start_button.isEnabled()


def test_bad_inputs_give_clear_messages_and_start_nothing(
    viewer_with_corrections, tiny_model_dir, monkeypatch, small_plane
):
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    errors = _record(monkeypatch, "show_error")

    viewer.add_labels(np.zeros((64, 64), np.uint8), name="small", scale=(0.1, 0.1))
    widget.set_row(0, "plane", spines="small")
    widget.start()
    assert "spine layer is 64 × 64 but the image is 128 × 128" in errors[-1]

    viewer.add_labels(np.zeros((128, 128), np.uint8), name="blank", scale=(0.1, 0.1))
    widget.set_row(0, "plane", spines="blank")
    widget.start()
    assert "the spine layer is empty" in errors[-1]

    viewer.add_labels((small_plane.spines[0] > 0).astype(np.uint8), name="semantic")
    widget.set_row(0, "plane", spines="semantic")
    widget.start()
    assert "same id 1 (a semantic mask)" in errors[-1]
    assert widget.split_button.isVisibleTo(widget)
    widget.split_button.click()
    assert "semantic instances" in viewer.layers
    assert widget.row_names(0)[2] == "semantic instances"
    assert int(viewer.layers["semantic instances"].data.max()) > 1
    assert int(viewer.layers["semantic"].data.max()) == 1  # the user's layer is unchanged

    widget.set_row(0, "plane", spines="plane spines")
    widget.name_edit.setText("taken")
    monkeypatch.setattr(widget_module, "_train_job", None)  # nothing may start below
    from napari_dendrite_panoptic.models import user_models_dir

    (user_models_dir() / "taken").mkdir(parents=True)
    widget.start()
    assert "named 'taken' exists already" in errors[-1]
    assert widget.worker is None


def test_only_edited_planes_needs_an_edit(
    viewer_with_corrections, tiny_model_dir, monkeypatch, small_plane
):
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    errors = _record(monkeypatch, "show_error")
    meta = {"role": "spines"}
    for role, data in (("dendrites", small_plane.dendrite[0]), ("spines", small_plane.spines[0])):
        _common.add_or_update_labels(
            viewer, f"fresh {role}", data, scale=(0.1, 0.1), translate=(0, 0), metadata=meta
        )
    widget.set_row(0, "plane", "fresh dendrites", "fresh spines")
    widget.only_edited.setChecked(True)
    monkeypatch.setattr(widget_module, "_train_job", None)
    widget.start()
    assert "no plane was edited since the model segmented it" in errors[-1]
    assert _common.edited_planes_of(viewer.layers["fresh spines"]) == []
    viewer.layers["fresh spines"].data[5:9, 5:9] = 77
    assert _common.edited_planes_of(viewer.layers["fresh spines"]) == [0]
    # a new result never replaces a layer the user has painted on
    new = _common.add_or_update_labels(
        viewer,
        "fresh spines",
        small_plane.spines[0],
        scale=(0.1, 0.1),
        translate=(0, 0),
        metadata=meta,
    )
    assert new.name == "fresh spines [2]"
    assert int(viewer.layers["fresh spines"].data[6, 6]) == 77


def test_a_held_out_row_is_judged_only_on_the_labels_the_user_corrected(
    viewer_with_corrections, tiny_model_dir, monkeypatch, small_plane
):
    """Held-out labels left as the model drew them are the base model's own answer, which it
    matches perfectly: a held-out row with none corrected is refused, and one whose spines
    alone were corrected judges the spine network only."""
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    errors = _record(monkeypatch, "show_error")
    for role, data in (("dendrites", small_plane.dendrite[0]), ("spines", small_plane.spines[0])):
        _common.add_or_update_labels(
            viewer,
            f"model {role}",
            data.copy(),
            scale=(0.1, 0.1),
            translate=(0, 0),
            metadata={"role": role},
        )
    widget.set_row(widget.add_row(), "other", "model dendrites", "model spines", True)
    monkeypatch.setattr(widget_module, "_train_job", None)
    widget.start()
    assert "'other' is held out, but its spine labels and dendrite labels are as" in errors[-1]
    spines = viewer.layers["model spines"].data
    spines[5:9, 5:9] = spines.max() + 1  # the user paints a spine
    train, held, _, notes = widget._collect()
    assert [v.unedited for v in train] == [()] and held[0].unedited == ("dendrites",)
    assert "'other': its dendrite labels are as the model drew them" in " ".join(notes)


def test_a_last_step_kept_for_few_held_out_spines_is_not_called_worse():
    """Below HELD_OUT_MIN_SPINES held-out spines a lower score than the base model's is no
    evidence: no warning, only the advice to compare on another image."""
    from types import SimpleNamespace

    from napari_dendrite_panoptic.training import held_out_verdict

    def outcome(kept_last):
        return SimpleNamespace(
            best_step=300,
            kept_last=kept_last,
            metrics={"spine_f1": 0.5, "spine_f1_best": 0.62},
            base_metrics={"spine_f1": 0.7, "spine_f1_best": 0.66},
        )

    kept, worse = held_out_verdict(outcome(True), "both")
    assert worse == "" and "It holds the last weights (step 300)" in kept
    assert "spine F1 at each model's best threshold 0.620; base model 0.660" in kept
    assert "cannot tell the two models apart" in kept
    kept, worse = held_out_verdict(outcome(False), "both")
    assert "scores below its base model" in worse and "step 300, the best" in kept


@pytest.mark.parametrize("keep", [True, False])
def test_keep_normalisation_box_sets_the_runs_freeze_norm(
    viewer_with_corrections, tiny_model_dir, keep
):
    """The dock starts with the engine's default ticked and passes the box's state to the run."""
    from napari_dendrite_panoptic.training import FINE_TUNE_FREEZE_NORM

    _, widget = viewer_with_corrections(tiny_model_dir)
    assert widget.freeze_norm.isChecked() is FINE_TUNE_FREEZE_NORM
    widget.freeze_norm.setChecked(keep)
    config = widget._prepare()[0]
    assert config.freeze_norm is keep


def test_layers_choice_reaches_the_run(viewer_with_corrections, tiny_model_dir):
    _, widget = viewer_with_corrections(tiny_model_dir)
    assert widget._prepare()[0].layers == "all"
    widget.layers_combo.setCurrentIndex(1)
    assert widget._prepare()[0].layers == "upper"
    widget.layers_combo.setCurrentIndex(2)
    assert widget._prepare()[0].layers == "heads"


def test_held_out_rows_score_the_base_and_a_worse_model_is_said_plainly(
    viewer_with_corrections, tiny_model_dir, qtbot, monkeypatch, tmp_path
):
    """The base model is scored on the held-out row before training; when every trained step
    scores below it, the dock's status and a warning say so, and name the step kept."""
    from napari_dendrite_panoptic.training import fine_tuning

    calls: list[int] = []

    def falling_scorer(volume, iou_threshold=0.5):
        def score(models):
            calls.append(1)
            return {"spine_f1": 1.0 - 0.1 * len(calls), "spine_pq": 0.5, "dendrite_iou": 0.5}

        return score

    monkeypatch.setattr(fine_tuning, "volume_scorer", falling_scorer)
    monkeypatch.setattr(fine_tuning, "HELD_OUT_MIN_SPINES", 5)  # the row's 11 choose a step
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    row = widget.add_row("other")
    widget.table.cellWidget(row, 3).setChecked(True)
    widget.name_edit.setText("worse-run")
    warnings = _record(monkeypatch, "show_warning")
    statuses: list[str] = []
    widget.status_label.setText = lambda text, _s=widget.status_label.setText: (
        statuses.append(text),
        _s(text),
    )[1]

    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)

    assert any(s.startswith("Base model on the held-out images: spine F1 0.900") for s in statuses)
    status = widget.status_label.text()
    assert "scores below its base model on the held-out images" in status
    assert f"weights of step {widget.last_kept_step}" in status
    assert widget.last_kept_step == 1  # the first trained step scored best
    assert len(warnings) == 1 and "below its base model" in warnings[0]
    card = ModelCard.load(tmp_path / "user-models" / "worse-run")
    assert card.metrics["validation"]["step"] == 1
    assert card.metrics["validation_base"]["spine_f1"] == pytest.approx(0.9)


def test_a_better_model_with_few_held_out_spines_keeps_the_last_step_without_a_warning(
    viewer_with_corrections, tiny_model_dir, qtbot, monkeypatch
):
    from napari_dendrite_panoptic.training import fine_tuning

    calls: list[int] = []

    def rising_scorer(volume, iou_threshold=0.5):
        def score(models):
            calls.append(1)
            return {"spine_f1": 0.1 * len(calls), "spine_pq": 0.5, "dendrite_iou": 0.5}

        return score

    monkeypatch.setattr(fine_tuning, "volume_scorer", rising_scorer)
    viewer, widget = viewer_with_corrections(tiny_model_dir)
    row = widget.add_row("other")
    widget.table.cellWidget(row, 3).setChecked(True)
    widget.name_edit.setText("better-run")
    warnings = _record(monkeypatch, "show_warning")
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    status = widget.status_label.text()
    assert warnings == []
    assert "below" not in status
    # 11 held-out spines are too few to choose a step: the last weights are kept
    assert f"It holds the last weights (step {widget.last_kept_step})" in status
    assert "too few to choose a step" in status and "base model 0.300" in status


def test_unticking_the_threshold_box_keeps_the_base_models_threshold(
    viewer_with_corrections, tiny_model_dir, qtbot, tmp_path
):
    _, widget = viewer_with_corrections(tiny_model_dir)
    widget.name_edit.setText("no-recalibration")
    widget.recalibrate.setChecked(False)
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    card = ModelCard.load(tmp_path / "user-models" / "no-recalibration")
    assert card.inference == ModelCard.load(tiny_model_dir).inference
    assert "spine_threshold_calibration" not in card.metrics
    assert "dendrite_threshold_calibration" not in card.metrics
    assert widget._calibration is None and "threshold " not in widget.status_label.text()


def test_without_held_out_rows_the_spine_threshold_is_chosen_by_count_and_the_dock_says_so(
    viewer_with_corrections, tiny_model_dir, qtbot, tmp_path
):
    """The new model scores the planes it trained on too well to choose thresholds there by
    F1; it takes the spine threshold at which it keeps about as many spines there as were
    corrected."""
    from napari_dendrite_panoptic.training import CHOSEN_BY_COUNT

    _, widget = viewer_with_corrections(tiny_model_dir)
    widget.name_edit.setText("no-held-out")
    assert widget.recalibrate.isChecked()
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    status = widget.status_label.text()
    assert CHOSEN_BY_COUNT in status
    card = ModelCard.load(tmp_path / "user-models" / "no-held-out")
    base = ModelCard.load(tiny_model_dir)
    (spine,) = widget._calibration  # the spine threshold only: the dendrite one stays
    assert spine.kind == "spine" and (spine.counted or not spine.enough)
    assert card.inference.get("dendrite_threshold") == base.inference.get("dendrite_threshold")
    chosen = card.threshold("spine_score_threshold")
    assert chosen == spine.threshold  # written where it changed, else the base model's
    assert spine.changed or chosen == base.threshold("spine_score_threshold")
    if spine.changed:
        record = card.metrics["spine_threshold_calibration"]
        assert "chosen by count" in record["on"] and "as many as they hold corrected" in status


def test_a_stack_layer_trains_with_the_z_step_of_its_scale(make_napari_viewer, small_stack):
    # the dock reads the z-step from the layer's scale: the corrected stack's slabs are then
    # cut as the stack path cuts them (0.5 µm steps: 3 µm slabs hold all 4 planes)
    from napari_dendrite_panoptic._widgets.training_inputs import collect_training_data
    from napari_dendrite_panoptic.data import stack_projections

    viewer = make_napari_viewer()
    for name, scale in (("calibrated", (0.5, 0.1, 0.1)), ("bare", (1.0, 1.0, 1.0))):
        viewer.add_image(small_stack.image, name=name, scale=scale)
        viewer.add_labels(small_stack.dendrite, name=f"{name} dendrites", scale=scale)
        viewer.add_labels(small_stack.spines, name=f"{name} spines", scale=scale)
    rows = [(n, f"{n} dendrites", f"{n} spines", False) for n in ("calibrated", "bare")]
    train, _, raw, notes = collect_training_data(viewer, rows, "both", False, lambda _: None)
    calibrated, bare = train
    assert calibrated.z_step_um == 0.5 and calibrated.pixel_size_um == 0.1
    assert stack_projections(calibrated) == ([], [(0, 4)])
    assert bare.z_step_um is None and stack_projections(bare)[1] == [(0, 4)]
    assert any("'bare': the stack has no z-step" in n for n in notes)
    assert raw[0]["voxel_size_um"] == (0.5, 0.1, 0.1)
