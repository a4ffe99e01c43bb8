"""Metrics dock, loaded through the manifest, on hand-made layers with known figures (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels, Points

from napari_dendrite_panoptic._widgets import metrics as widget_module
from napari_dendrite_panoptic._widgets._common import camera, offered
from napari_dendrite_panoptic.errors import OutputExistsError
from napari_dendrite_panoptic.evaluation.maps import STATUS_COLOURS

PLUGIN = "napari-dendrite-panoptic"
SCALE = (0.5, 0.1, 0.1)


def _squares(positions, shape=(40, 40), size=4):
    lab = np.zeros(shape, dtype=np.int32)
    for i, (y, x) in enumerate(positions, start=1):
        lab[y : y + size, x : x + size] = i
    return lab


TRUTH = _squares([(2, 2), (2, 20), (20, 2), (20, 20)])
PRED = _squares([(2, 2), (2, 20), (20, 2), (33, 33)])


@pytest.fixture
def dock(make_napari_viewer, monkeypatch):
    """A viewer with the Metrics dock; notifications are recorded in ``messages``."""
    messages: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    for kind in messages:
        monkeypatch.setattr(
            widget_module, f"show_{kind}", lambda m, *a, _k=kind, **k: messages[_k].append(str(m))
        )
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Metrics")
    return viewer, widget, messages


def _compute(qtbot, widget) -> bool:
    """Press Compute like a user and wait for the worker; False when the inputs were refused."""
    started = widget.compute()
    if started:
        assert not widget.compute_button.isEnabled()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
        assert widget.compute_button.isEnabled()
    return started


def _choose(widget, **names):
    for key, name in names.items():
        picker = getattr(widget, key)
        assert name in offered(picker), f"{name} not offered in {key}"
        picker.value = widget.viewer.layers[name]


def test_three_of_four_spines_and_a_false_positive_give_f1_075_with_colour_coded_layer(dock, qtbot):
    viewer, widget, messages = dock
    viewer.add_labels(PRED, name="pred", scale=SCALE[1:])
    viewer.add_labels(TRUTH, name="rater", scale=SCALE[1:])
    viewer.add_points(np.zeros((1, 2)), name="clicks")  # points are offered for ground truth only
    assert "clicks" not in offered(widget.pred_spines)
    assert "clicks" in offered(widget.truth_spines)
    _choose(widget, pred_spines="pred", truth_spines="rater")
    assert _compute(qtbot, widget)
    assert messages["error"] == []
    f = widget.figures
    assert f["spine_f1"][0] == pytest.approx(0.75) and f["spine_pq"][0] == pytest.approx(0.75)
    assert f["spine_pixel_iou"][0] == pytest.approx(48 / 80)
    assert "spine F1 0.75" in widget.status_label.text()
    # the figures table and the bar chart show the same numbers
    shown = {
        widget.figures_table.item(r, 0).text(): widget.figures_table.item(r, 1).text()
        for r in range(widget.figures_table.rowCount())
    }
    assert shown["spine_f1"] == "0.75" and shown["spine_fn"] == "1"
    headers = [widget.figures_table.horizontalHeaderItem(c).text() for c in range(2)]
    assert headers == ["figure", "value"]  # the scope is no column heading
    assert widget.plotted()["spine F1"] == pytest.approx(0.75)
    assert len(widget._axes.patches) == len(widget.plotted())
    # the per-object table and the colour-coded matches layer
    assert widget.objects_table.rowCount() == 5
    layer = viewer.layers["pred vs rater matches"]
    assert isinstance(layer, Labels) and tuple(layer.scale) == SCALE[1:]
    assert list(layer.features["status"]) == ["TP", "TP", "TP", "FP", "FN"]
    assert layer.data[34, 34] == 4 and layer.data[21, 21] == 5
    fp_colour = layer.colormap.map(np.array([4]))[0]
    expected = np.array([int(STATUS_COLOURS["FP"][i : i + 2], 16) / 255 for i in (1, 3, 5)])
    np.testing.assert_allclose(fp_colour[:3], expected, atol=1e-2)
    # our layers are not offered as inputs
    assert "pred vs rater matches" not in offered(widget.pred_spines)


def test_clicking_a_row_selects_the_spine_and_centres_the_camera_in_3d(dock, qtbot):
    viewer, widget, _ = dock
    truth = np.zeros((4, 40, 40), np.int32)
    pred = np.zeros((4, 40, 40), np.int32)
    truth[2, 20:24, 20:24] = 3  # missed
    truth[1, 2:6, 2:6] = 1
    pred[1, 2:6, 2:6] = 9  # found
    viewer.add_labels(pred, name="pred", scale=SCALE, translate=(0, 5, 0))
    viewer.add_labels(truth, name="truth", scale=SCALE, translate=(0, 5, 0))
    _choose(widget, pred_spines="pred", truth_spines="truth")
    assert _compute(qtbot, widget)
    status = list(widget.objects["status"])
    assert status == ["TP", "FN"]
    viewer.reset_view()
    whole = camera(viewer).zoom
    widget.objects_table.selectRow(1)  # the missed spine: centroid (2, 21.5, 21.5) px
    np.testing.assert_allclose(camera(viewer).center[-2:], (5 + 2.15, 2.15))
    # zoomed in on it: 4 px = 0.4 µm wide, shown in a 2 µm field of the 4 µm image
    assert camera(viewer).zoom > 1.5 * whole
    assert viewer.dims.point[0] == pytest.approx(1.0)  # plane 2 x 0.5 µm
    assert viewer.layers["pred vs truth matches"].selected_label == 2
    widget.objects_table.selectRow(0)
    assert viewer.layers["pred"].selected_label == 9
    assert viewer.dims.point[0] == pytest.approx(0.5)


def test_point_ground_truth_uses_the_layer_scale_in_um(dock, qtbot):
    viewer, widget, _ = dock
    pred = np.zeros((5, 40, 40), np.int32)
    pred[2, 10:13, 10:13] = 1  # centroid (2, 11, 11) px = (4.0, 1.1, 1.1) µm
    pred[2, 30:33, 30:33] = 2  # centroid (4.0, 3.1, 3.1) µm
    viewer.add_labels(pred, name="pred", scale=(2.0, 0.1, 0.1))
    # centres clicked in a Points layer on the same grid (data in px, same scale)
    clicks = np.array([[2, 11, 15], [2.5, 31, 31], [2, 2, 35]])  # 0.4 µm; 1 µm (z); far away
    viewer.add_points(clicks, name="clicks", scale=(2.0, 0.1, 0.1))
    _choose(widget, pred_spines="pred", truth_spines="clicks")
    widget.distance.setValue(0.5)
    assert _compute(qtbot, widget)
    f = widget.figures
    assert (f["point_tp"][0], f["point_fp"][0], f["point_fn"][0]) == (1, 1, 2)
    assert f["point_f1"][0] == pytest.approx(0.4)
    assert "spine_f1" not in f  # no instance figures without instance ground truth
    widget.distance.setValue(1.2)  # the z offset of 1 µm is within 1.2 µm
    assert _compute(qtbot, widget) and widget.figures["point_tp"][0] == 2
    layer = widget.match_layer
    assert isinstance(layer, Points) and len(layer.data) == 3  # 2 TP + 1 FN, no FP
    widget.select_object(2)
    assert layer.selected_data == {2}


def test_every_plane_and_current_plane(dock, qtbot):
    viewer, widget, _ = dock
    truth = np.stack([TRUTH, _squares([(2, 2), (2, 20)])])
    pred = np.stack([PRED, _squares([(2, 2), (2, 20)])])
    viewer.add_labels(pred, name="pred", scale=(0.5, 0.1, 0.1))
    viewer.add_labels(truth, name="truth", scale=(0.5, 0.1, 0.1))
    dend_t = np.zeros(truth.shape, np.uint8)
    dend_t[:, 10:14, :] = 1
    dend_p = np.zeros(truth.shape, np.uint8)
    dend_p[:, 12:16, :] = 1
    viewer.add_labels(dend_p, name="dp", scale=(0.5, 0.1, 0.1))
    viewer.add_labels(dend_t, name="dt", scale=(0.5, 0.1, 0.1))
    _choose(widget, pred_spines="pred", truth_spines="truth", pred_dendrite="dp")
    _choose(widget, truth_dendrite="dt")
    widget.scope.setCurrentText("Every plane")
    assert _compute(qtbot, widget)
    f = widget.figures
    assert list(f["plane"]) == ["0", "1", "all"]
    assert list(f["spine_f1"]) == pytest.approx([0.75, 1.0, 10 / 12])
    assert list(f["dendrite_iou"]) == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert widget.figures_table.rowCount() == 3
    diff = viewer.layers["dp vs dt differences"].data
    assert diff[1, 15, 0] == 1 and diff[1, 10, 0] == 2 and diff[1, 12, 0] == 0
    viewer.dims.set_point(0, 0.5)  # plane 1
    widget.scope.setCurrentText("Current plane")
    assert _compute(qtbot, widget)
    assert list(widget.figures["scope"]) == ["plane 1"]
    assert widget.figures["spine_f1"][0] == 1.0
    matches = viewer.layers["pred vs truth matches"].data
    assert matches[0].max() == 0 and matches[1].max() == 2  # only plane 1 drawn


def test_clear_messages_for_mismatched_shapes_scales_empty_and_semantic_layers(dock, qtbot):
    viewer, widget, messages = dock
    viewer.add_labels(PRED, name="pred", scale=(0.1, 0.1))
    viewer.add_labels(TRUTH[:30], name="cropped", scale=(0.1, 0.1))
    viewer.add_labels(TRUTH, name="coarse", scale=(0.2, 0.2))
    viewer.add_labels(np.zeros_like(TRUTH), name="blank", scale=(0.1, 0.1))
    viewer.add_labels((TRUTH > 0).astype(np.uint8), name="mask", scale=(0.1, 0.1))
    _choose(widget, pred_spines="pred", truth_spines="cropped")
    assert not _compute(qtbot, widget)
    assert "shape" in messages["error"][-1] and "shape" in widget.status_label.text()
    _choose(widget, truth_spines="coarse")
    assert not _compute(qtbot, widget) and "pixel size" in messages["error"][-1]
    _choose(widget, truth_spines="blank")
    assert _compute(qtbot, widget)
    assert any("'blank'" in m and "empty" in m for m in messages["warning"])
    assert widget.figures["spine_recall"][0] != widget.figures["spine_recall"][0]  # n/a
    _choose(widget, truth_spines="mask")
    assert _compute(qtbot, widget)
    assert widget.figures["spine_tp"][0] == 0  # the four squares count as one object
    assert any("'mask'" in m and "4 separate regions" in m for m in messages["warning"])
    assert not widget.split_button.isHidden()
    assert "Split 'mask'" in widget.split_button.text()
    widget.split_button.click()
    assert widget.split_button.isHidden()
    assert widget.truth_spines.value == viewer.layers["mask instances"]
    assert np.array_equal(viewer.layers["mask"].data, (TRUTH > 0))  # the user's layer is kept
    assert _compute(qtbot, widget) and widget.figures["spine_f1"][0] == pytest.approx(0.75)
    widget.pred_spines.value = None  # "(none)"
    assert not _compute(qtbot, widget) and "both" in messages["error"][-1]


def test_export_writes_figures_and_objects_csv_without_overwriting(dock, qtbot, tmp_path):
    import pandas as pd

    viewer, widget, _ = dock
    viewer.add_labels(PRED, name="pred")
    viewer.add_labels(TRUTH, name="truth")
    _choose(widget, pred_spines="pred", truth_spines="truth")
    assert _compute(qtbot, widget)
    figures, objects = widget.export_csv(tmp_path / "scores.csv")
    assert objects.name == "scores_objects.csv"
    assert pd.read_csv(figures)["spine_f1"][0] == pytest.approx(0.75)
    assert list(pd.read_csv(objects)["status"]) == ["TP", "TP", "TP", "FP", "FN"]
    with pytest.raises(OutputExistsError):
        widget.export_csv(tmp_path / "scores.csv")
    assert not list(tmp_path.glob(".*"))


def test_export_dialog_replaces_only_the_file_it_confirmed(dock, qtbot, tmp_path, monkeypatch):
    viewer, widget, messages = dock
    viewer.add_labels(PRED, name="pred")
    viewer.add_labels(TRUTH, name="truth")
    _choose(widget, pred_spines="pred", truth_spines="truth")
    assert _compute(qtbot, widget)
    chosen: list[str] = []
    monkeypatch.setattr(
        widget_module.QFileDialog, "getSaveFileName", lambda *a, **k: (chosen[-1], "")
    )
    (tmp_path / "cli_objects.csv").write_text("from the CLI\n")  # e.g. evaluate --csv
    (tmp_path / "typed.csv").write_text("mine\n")
    for name in ("cli.csv", "typed"):  # the objects file, and the ".csv" added after the dialog
        chosen.append(str(tmp_path / name))
        widget._export_dialog()
        assert "exists already" in messages["error"][-1]
    assert (tmp_path / "cli_objects.csv").read_text() == "from the CLI\n"
    assert (tmp_path / "typed.csv").read_text() == "mine\n"
    assert not (tmp_path / "cli.csv").exists() and not (tmp_path / "typed_objects.csv").exists()
    # the file the dialog asked about may be replaced
    (tmp_path / "ok.csv").write_text("old\n")
    chosen.append(str(tmp_path / "ok.csv"))
    widget._export_dialog()
    assert (tmp_path / "ok.csv").read_text() != "old\n" and (tmp_path / "ok_objects.csv").exists()
