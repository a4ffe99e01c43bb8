"""Inference dock widget, loaded through the manifest, driven like a user would (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels

from napari_dendrite_panoptic._widgets import _common
from napari_dendrite_panoptic._widgets import inference as widget_module
from napari_dendrite_panoptic.errors import ModelError
from napari_dendrite_panoptic.models.store import MODELS_DIR_ENV

PLUGIN = "napari-dendrite-panoptic"
WAIT_MS = 120_000


@pytest.fixture
def open_widget(make_napari_viewer, tiny_model_dir, monkeypatch, tmp_path):
    """A viewer and the inference widget, set to the tiny model on the CPU, keeping all spines."""
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "no-user-models"))

    def _open():
        viewer = make_napari_viewer()
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Panoptic inference")
        widget.set_model_folder(tiny_model_dir)
        widget.device_combo.setCurrentText("cpu")
        widget.score_threshold.setValue(0.0)
        return viewer, widget

    return _open


def _run(qtbot, widget) -> None:
    widget.run_button.click()
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def _record(monkeypatch, module, name) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(module, name, lambda message, *a, **k: messages.append(str(message)))
    return messages


def _check_spine_features(layer: Labels) -> None:
    ids = set(np.unique(layer.data).tolist()) - {0}
    features = layer.features
    assert len(features) == len(ids) > 0
    assert set(features["index"].tolist()) == ids
    assert (features["index"] == features["id"]).all()
    assert "score" in features.columns


def test_run_on_stack_adds_two_labels_layers_on_the_image_grid(
    open_widget, qtbot, small_stack, monkeypatch, tmp_path
):
    viewer, widget = open_widget()
    errors = _record(monkeypatch, widget_module, "show_error")
    bars, napari_progress = [], widget_module.progress

    def recorded_progress(*args, **kwargs):
        bars.append(napari_progress(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(widget_module, "progress", recorded_progress)
    viewer.add_image(small_stack.image, name="cell", scale=(0.5, 0.1, 0.1), translate=(1, 2, 3))
    assert widget.image_picker.value == viewer.layers["cell"]

    _run(qtbot, widget)
    # napari's own progress bar ran to the end and was closed
    (bar,) = bars
    assert bar.total > 0 and bar.n == bar.total and bar.disable  # tqdm disables a closed bar

    assert errors == []
    assert [layer.name for layer in viewer.layers] == ["cell", "cell dendrites", "cell spines"]
    dendrites, spines = viewer.layers["cell dendrites"], viewer.layers["cell spines"]
    for layer in (dendrites, spines):
        assert isinstance(layer, Labels)
        assert layer.data.shape == small_stack.image.shape
        np.testing.assert_allclose(layer.scale, (0.5, 0.1, 0.1))
        np.testing.assert_allclose(layer.translate, (1, 2, 3))
        info = layer.metadata["dendrite_panoptic"]
        assert info["model_name"] == "tiny-test-model"
        assert info["pixel_size_source"] == "image metadata"
        assert info["parameters"]["spine_score_threshold"] == 0.0
        assert info["parameters"]["test_time_flips"] is False  # the default: one view
        record = info["run_record"]
        assert record["model"]["name"] == "tiny-test-model"
        assert len(record["model"]["weights_sha256"]["dendrites"]) == 64
        assert record["input"]["shape"] == list(small_stack.image.shape)
        assert record["input"]["voxel_size_um"] == [0.5, 0.1, 0.1]
    assert dendrites.data.dtype == np.uint8 and spines.data.dtype == np.uint32
    _check_spine_features(spines)
    # saved through the plugin's writer and read back, the labels keep scale and record
    from napari_dendrite_panoptic._writer import write_labels
    from napari_dendrite_panoptic.io import read_tiff

    (saved,) = write_labels(
        str(tmp_path / "cell_spines.tif"),
        spines.data,
        {"scale": list(spines.scale), "metadata": spines.metadata},
    )
    reopened = read_tiff(saved)
    assert reopened.voxel_size_um == pytest.approx((0.5, 0.1, 0.1))
    assert (
        reopened.metadata["dendrite_panoptic"]["run_record"]["model"]["name"] == "tiny-test-model"
    )
    assert "Done" in widget.status_label.text()

    # a second run updates the same two layers
    widget.dendrite_threshold.setValue(0.9)
    widget.flips.setChecked(True)  # four mirror views vote
    _run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["cell", "cell dendrites", "cell spines"]
    assert viewer.layers["cell spines"] is spines
    params = spines.metadata["dendrite_panoptic"]["parameters"]
    assert params["dendrite_threshold"] == 0.9 and params["test_time_flips"] is True
    _check_spine_features(spines)
    assert params["stack_mode_used"] == "projection"  # auto: 2 µm deep, within one slab
    assert "Stack mode projection" in widget.status_label.text()

    # the dock's stack mode reaches the run, and the status line says which ran
    widget.flips.setChecked(False)
    widget.stack_mode.setCurrentIndex(widget.stack_mode.findData("planes"))
    _run(qtbot, widget)
    params = spines.metadata["dendrite_panoptic"]["parameters"]
    assert params["stack_mode"] == "planes" and params["stack_mode_used"] == "planes"
    assert "Stack mode planes" in widget.status_label.text()


def test_uncalibrated_plane_shows_the_estimated_pixel_size_and_asks_to_confirm_it(
    open_widget, qtbot, small_plane, monkeypatch
):
    from napari_dendrite_panoptic.inference import ESTIMATED, estimate_pixel_size

    viewer, widget = open_widget()
    warnings = _record(monkeypatch, widget_module, "show_warning")
    viewer.add_image(small_plane.image[0], name="plane")  # no scale: uncalibrated
    estimate = estimate_pixel_size(small_plane.image[0]).pixel_size_um
    # the field holds the estimate, highlighted, with a note and a Confirm button
    assert widget.pixel_size.value() == pytest.approx(estimate, abs=1e-4)
    assert not widget.pixel_note.isHidden() and not widget.confirm_button.isHidden()
    assert "please confirm" in widget.pixel_note.text().lower()
    assert "'plane' has no pixel size" in widget.pixel_note.text()

    _run(qtbot, widget)  # not confirmed: runs, and the notification says it used an estimate

    assert any("estimated from the dendrite width" in m for m in warnings)
    spines = viewer.layers["plane spines"]
    assert spines.data.shape == viewer.layers["plane dendrites"].data.shape == (128, 128)
    np.testing.assert_allclose(spines.scale, (1, 1))
    meta = spines.metadata["dendrite_panoptic"]
    assert meta["pixel_size_source"] == ESTIMATED
    assert meta["voxel_size_um"][-1] == pytest.approx(estimate)
    assert meta["run_record"]["pixel_size"]["source"] == ESTIMATED
    assert "estimated from dendrite width" in widget.status_label.text()
    _check_spine_features(spines)

    widget.confirm_button.click()  # confirmed: the user's pixel size, no more warning
    assert widget.pixel_note.isHidden() and widget.confirm_button.isHidden()
    warnings.clear()
    _run(qtbot, widget)
    meta = viewer.layers["plane spines"].metadata["dendrite_panoptic"]
    assert meta["pixel_size_source"] == "pixel_size_um parameter"
    assert not any("estimated" in m for m in warnings)

    # a calibrated image clears the estimate
    viewer.add_image(small_plane.image[0], name="calibrated", scale=(0.1, 0.1))
    widget.image_picker.value = viewer.layers["calibrated"]
    assert widget.estimate is None and widget.pixel_note.isHidden()
    assert widget.pixel_size.value() == 0  # "from layer scale": the estimate was not its own


def test_cancel_leaves_the_layer_list_as_it_was(open_widget, qtbot, small_stack):
    viewer, widget = open_widget()
    viewer.add_image(small_stack.image, name="cell", scale=(0.5, 0.1, 0.1))
    before = [(layer.name, id(layer)) for layer in viewer.layers]

    widget.run_button.click()
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)

    assert [(layer.name, id(layer)) for layer in viewer.layers] == before
    assert "Cancelled" in widget.status_label.text()
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_run_without_image_shows_an_error(open_widget, monkeypatch):
    viewer, widget = open_widget()
    errors = _record(monkeypatch, widget_module, "show_error")

    widget.run_button.click()

    assert len(errors) == 1 and "image" in errors[0]
    assert widget.worker is None and len(viewer.layers) == 0
    assert widget.run_button.isEnabled()


def test_users_own_layer_with_the_result_name_is_kept(open_widget, qtbot, small_plane, monkeypatch):
    viewer, widget = open_widget()
    warnings = _record(monkeypatch, _common, "show_warning")
    viewer.add_image(small_plane.image[0], name="plane", scale=(0.1, 0.1))
    mine = viewer.add_labels(np.full((128, 128), 7, dtype=np.uint8), name="plane spines")
    widget.image_picker.value = viewer.layers["plane"]

    _run(qtbot, widget)
    _run(qtbot, widget)

    assert [layer.name for layer in viewer.layers] == [
        "plane",
        "plane spines",
        "plane dendrites",
        "plane spines [2]",
    ]
    assert viewer.layers["plane spines"] is mine and (mine.data == 7).all()
    assert "dendrite_panoptic" not in mine.metadata
    assert "dendrite_panoptic" in viewer.layers["plane spines [2]"].metadata
    assert len(warnings) == 1 and "plane spines [2]" in warnings[0]


def test_model_picker_offers_browse_and_rejects_a_folder_without_card(
    open_widget, tiny_model_dir, tmp_path
):
    _, widget = open_widget()
    items = [widget.model_combo.itemText(i) for i in range(widget.model_combo.count())]
    assert items[-1] == "Browse…"
    assert any("tiny-test-model" in text for text in items)
    assert widget.model_combo.folder() == str(tiny_model_dir)
    with pytest.raises(ModelError):
        widget.set_model_folder(tmp_path)
    assert widget.model_combo.folder() == str(tiny_model_dir)
    widget.refresh_models()
    assert widget.model_combo.folder() == str(tiny_model_dir)


def test_time_series_segments_the_current_time_point(open_widget, qtbot, small_stack):
    viewer, widget = open_widget()
    volume = small_stack.image[:2, :64, :64]
    movie = np.stack([np.zeros_like(volume), volume])  # (T, Z, Y, X): only t = 1 has signal
    viewer.add_image(movie, name="movie", scale=(1, 0.5, 0.1, 0.1))
    viewer.dims.set_current_step(0, 1)

    _run(qtbot, widget)

    spines = viewer.layers["movie spines"]
    assert spines.data.shape == (2, 64, 64)
    np.testing.assert_allclose(spines.scale, (0.5, 0.1, 0.1))
    assert spines.metadata["dendrite_panoptic"]["source_index"] == [1]
    _check_spine_features(spines)
    assert "Done at time point 1 (of 2)" in widget.status_label.text()


def _movie(small_stack):
    volume = small_stack.image[:2, :64, :64]
    return np.stack([volume, np.zeros_like(volume), volume])  # (T, Z, Y, X); t = 1 is blank


def test_all_time_points_segments_every_time_point_into_4d_layers(open_widget, qtbot, small_stack):
    viewer, widget = open_widget()
    viewer.add_image(_movie(small_stack), name="movie", scale=(2, 0.5, 0.1, 0.1), units="µm")
    widget.all_time_points.setChecked(True)
    messages: list[str] = []
    widget.status_label.setText = lambda text, _s=widget.status_label.setText: (
        messages.append(text),
        _s(text),
    )[1]

    _run(qtbot, widget)

    spines, dendrites = viewer.layers["movie spines"], viewer.layers["movie dendrites"]
    assert spines.data.shape == dendrites.data.shape == (3, 2, 64, 64)
    np.testing.assert_allclose(spines.scale, (2, 0.5, 0.1, 0.1))
    assert viewer.layers.extent.units is not None  # the image's units: no napari warning
    meta = spines.metadata["dendrite_panoptic"]
    assert meta["source_index"] == [[0], [1], [2]] and len(meta["run_records"]) == 3
    _check_spine_features(spines)  # ids unique across time points
    features = spines.features
    assert set(features["time_point"]) <= {0, 1, 2} and 0 in set(features["time_point"])
    for t in range(3):
        ids = set(np.unique(spines.data[t]).tolist()) - {0}
        assert ids == set(features.loc[features["time_point"] == t, "index"])
    # the same volume at t = 0 and t = 2 gives the same segmentation (ids shifted)
    np.testing.assert_array_equal(spines.data[0] > 0, spines.data[2] > 0)
    np.testing.assert_array_equal(dendrites.data[0], dendrites.data[2])
    assert any(m.startswith("Time point 1 (2 of 3)") for m in messages)
    assert widget.status_label.text().startswith("Done: all 3 time points")


def test_all_time_points_result_survives_renaming_the_image(open_widget, qtbot, small_stack):
    viewer, widget = open_widget()
    movie = _movie(small_stack)[:2, :1, :32, :32]
    viewer.add_image(movie, name="movie", scale=(2, 0.5, 0.1, 0.1), translate=(3, 0, 0, 0))
    widget.all_time_points.setChecked(True)
    widget.run_button.click()
    viewer.layers["movie"].name = "renamed"  # before the run returns
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    spines = viewer.layers["movie spines"]
    assert spines.data.shape == viewer.layers["movie dendrites"].data.shape == (2, 1, 32, 32)
    np.testing.assert_allclose(spines.scale, (2, 0.5, 0.1, 0.1))
    assert spines.translate[0] == 3
    assert widget.status_label.text().startswith("Done: all 2 time points")


def test_all_time_points_can_be_cancelled(open_widget, qtbot, small_stack):
    viewer, widget = open_widget()
    viewer.add_image(_movie(small_stack), name="movie", scale=(2, 0.5, 0.1, 0.1))
    widget.all_time_points.setChecked(True)
    before = [layer.name for layer in viewer.layers]
    widget.run_button.click()
    qtbot.waitUntil(lambda: "Time point 0" in widget.status_label.text(), timeout=WAIT_MS)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert [layer.name for layer in viewer.layers] == before
    assert "Cancelled" in widget.status_label.text()


def test_scale_helpers():
    assert _common.voxel_size_from_scale((0.2, 0.1)) == (1.0, 0.2, 0.1)
    assert _common.voxel_size_from_scale((1, 0.5, 0.1, 0.1)) == (0.5, 0.1, 0.1)
    assert not _common.scale_is_calibrated((1.0, 1.0, 1.0))
    assert _common.scale_is_calibrated((1.0, 0.1, 0.1))


def test_result_layers_carry_the_image_units(open_widget, qtbot, small_plane):
    viewer, widget = open_widget()
    image = viewer.add_image(small_plane.image, name="cell", scale=(0.1, 0.1), units="µm")
    _run(qtbot, widget)
    for name in ("cell dendrites", "cell spines"):
        assert viewer.layers[name].units == image.units
    # napari warns "Inconsistent units across layers" exactly when this is None
    assert viewer.layers.extent.units is not None


def test_an_implausible_estimate_is_not_filled_in(open_widget, tiny_model_dir):
    from napari_dendrite_panoptic.data.synthetic import SyntheticConfig, generate

    viewer, widget = open_widget()
    widget.set_model_folder(tiny_model_dir)  # pixel size 0.1 µm
    cfg = SyntheticConfig(shape=(1, 600, 600), pixel_size_um=0.04, dendrite_radius_um=(0.3, 0.35))
    viewer.add_image(generate(1, cfg).image[0], name="fine")  # no scale: uncalibrated
    assert widget.pixel_size.value() == 0.0  # nothing filled in: the model's size is used
    assert "more than 2x from the model's 0.1 µm" in widget.pixel_note.text()
    assert widget.confirm_button.isHidden()
