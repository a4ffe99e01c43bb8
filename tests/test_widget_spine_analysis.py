"""Spine analysis dock, loaded through the manifest, on a small synthetic plane and stack."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic._widgets._common import camera

PLUGIN = "napari-dendrite-panoptic"
WAIT_MS = 120_000


@pytest.fixture
def dock(make_napari_viewer):
    def _open(sample, ndim):
        viewer = make_napari_viewer()
        squeeze = 0 if ndim == 2 else slice(None)
        scale = sample.voxel_size_um[-ndim:]
        viewer.add_image(sample.image[squeeze], name="img", scale=scale)
        viewer.add_labels(sample.dendrite[squeeze], name="img dendrites", scale=scale)
        viewer.add_labels(sample.spines[squeeze], name="img spines", scale=scale)
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spine analysis")
        return viewer, widget

    return _open


def _recompute(qtbot, widget):
    widget.recompute_button.click()
    qtbot.waitUntil(lambda: widget.worker is None and widget.result is not None, timeout=WAIT_MS)


def test_table_fills_features_selects_and_recomputes_after_painting(dock, qtbot, small_plane):
    viewer, widget = dock(small_plane, 2)
    ids = np.unique(small_plane.spines)[1:]
    # the inference dock's table (score) stays in the features, joined by id
    viewer.layers["img spines"].features = {"index": ids, "id": ids, "score": ids / 100.0}
    assert widget.dendrite_picker.value == viewer.layers["img dendrites"]
    assert widget.spine_picker.value == viewer.layers["img spines"]
    _recompute(qtbot, widget)
    layer = viewer.layers["img spines"]
    assert list(layer.features["id"]) == list(ids)
    assert list(layer.features["index"]) == list(ids)
    assert np.allclose(layer.features["score"], ids / 100.0)
    assert {"type", "length_um", "head_diameter_um", "branch_id"} <= set(layer.features.columns)
    assert widget.spine_table.rowCount() == len(ids)
    assert widget.branch_table.rowCount() >= 1
    assert "img spines skeleton" in viewer.layers
    # coloured by type: a mushroom and a stubby spine get different colours
    assert len({str(layer.colormap.map(int(i))) for i in ids}) > 1

    # sorting by length puts the longest spine first; clicking its row selects and centres it
    header = [
        widget.spine_table.horizontalHeaderItem(j).text()
        for j in range(widget.spine_table.columnCount())
    ]
    widget.spine_table.sortItems(header.index("length_um"), order=1)  # descending
    row0_id = int(widget.spine_table.item(0, header.index("id")).text())
    longest = int(layer.features.sort_values("length_um").iloc[-1]["id"])
    assert row0_id == longest
    widget._on_spine_clicked(0, 0)
    assert layer.selected_label == longest
    feats = layer.features.set_index("id").loc[longest]
    centre = 0.5 * np.array([feats.base_y_um + feats.tip_y_um, feats.base_x_um + feats.tip_x_um])
    assert np.allclose(camera(viewer).center[-2:], centre, atol=0.05)

    # colour by a measurement
    widget.colour_combo.setCurrentText("length_um")
    shortest = int(layer.features.sort_values("length_um").iloc[0]["id"])
    assert not np.allclose(layer.colormap.map(longest), layer.colormap.map(shortest))

    # erase one spine by painting: the table follows (debounced) without pressing Recompute
    gone = int(ids[0])
    before = widget.result
    data = layer.data.copy()
    data[data == gone] = 0
    layer.data = data
    qtbot.waitUntil(lambda: widget.result is not before and widget.worker is None, timeout=WAIT_MS)
    assert gone not in set(layer.features["id"])
    assert widget.spine_table.rowCount() == len(ids) - 1

    # paint a new spine with the brush, touching the shaft: it appears in the table
    ys, xs = np.nonzero(small_plane.dendrite[0])
    new_id = int(ids.max()) + 1
    before = widget.result
    layer.brush_size = 5
    layer.paint((float(ys[0]), float(xs[0])), new_id, refresh=True)
    qtbot.waitUntil(lambda: widget.result is not before and widget.worker is None, timeout=WAIT_MS)
    assert new_id in set(layer.features["id"])


def test_stack_uses_the_layer_scale_and_exports(dock, qtbot, small_stack, tmp_path):
    viewer, widget = dock(small_stack, 3)
    _recompute(qtbot, widget)
    feats = viewer.layers["img spines"].features
    assert "volume_um3" in feats.columns
    n_vox = np.bincount(small_stack.spines.ravel())[feats["id"].to_numpy()]
    assert np.allclose(feats["volume_um3"], n_vox * np.prod(small_stack.voxel_size_um))
    written = widget.export(tmp_path, "stack")
    assert sorted(p.name for p in written.values()) == [
        "stack_dendrites.csv",
        "stack_spines.csv",
        "stack_spines_roi.zip",
    ]
    widget.select_spine(int(feats["id"].iloc[0]))
    z = feats["base_z_um"].iloc[0] * 0.5 + feats["tip_z_um"].iloc[0] * 0.5
    assert viewer.dims.point[0] == pytest.approx(z, abs=0.5)


def test_legend_export_names_and_tables_cleared_when_the_layer_is_deleted(
    dock, qtbot, small_plane, tmp_path
):
    from napari_dendrite_panoptic._widgets.spine_analysis import export_stem

    viewer, widget = dock(small_plane, 2)
    _recompute(qtbot, widget)
    # a legend names every type colour while spines are coloured by type
    assert not widget.legend.isHidden()
    for name in ("mushroom", "stubby", "branched", "thin", "filopodium"):
        assert name in widget.legend.text()
    widget.colour_combo.setCurrentText("length_um")
    assert widget.legend.isHidden()
    # exports of "img spines" are img_spines.csv, never img_spines_spines.csv
    assert export_stem("img spines") == "img" and export_stem("my cell") == "my_cell"
    written = widget.export(tmp_path, export_stem(widget._analysed["names"][0]))
    assert sorted(p.name for p in written.values()) == [
        "img_dendrites.csv",
        "img_spines.csv",
        "img_spines_roi.zip",
    ]
    # a branched spine has two tips at least
    types = viewer.layers["img spines"].features
    assert (types.loc[types["type"] == "branched", "tips"] >= 2).all()
    assert widget.spine_table.rowCount() > 0
    viewer.layers.remove("img spines")
    assert widget.spine_table.rowCount() == 0 and widget.branch_table.rowCount() == 0
    assert widget.result is None


def test_skeleton_never_replaces_the_users_shapes(dock, qtbot, small_plane):
    from napari_dendrite_panoptic._widgets._common import is_ours

    viewer, widget = dock(small_plane, 2)
    mine = np.array([[1.0, 1.0], [5.0, 5.0]])
    viewer.add_shapes([mine], shape_type="path", name="img spines skeleton")
    _recompute(qtbot, widget)
    user = viewer.layers["img spines skeleton"]
    assert len(user.data) == 1 and np.allclose(user.data[0], mine) and not is_ours(user)
    ours = viewer.layers["img spines skeleton [2]"]
    assert is_ours(ours) and len(ours.data) >= 1
    assert np.allclose(ours.scale, viewer.layers["img spines"].scale)
    # a recompute refills our unedited layer; once the user draws on it, it is kept too
    n = len(ours.data)
    _recompute(qtbot, widget)
    assert viewer.layers["img spines skeleton [2]"] is ours and len(ours.data) == n
    ours.add_paths([mine])
    _recompute(qtbot, widget)
    assert len(ours.data) == n + 1
    assert is_ours(viewer.layers["img spines skeleton [3]"])


def test_rename_keeps_row_clicks_and_export_of_the_analysed_labels(
    dock, qtbot, small_plane, tmp_path, monkeypatch
):
    import zipfile

    import pandas as pd

    from napari_dendrite_panoptic._widgets import spine_analysis as widget_module

    viewer, widget = dock(small_plane, 2)
    widget.auto_update.setChecked(False)
    _recompute(qtbot, widget)
    layer = viewer.layers["img spines"]
    n = widget.spine_table.rowCount()
    layer.name = "renamed"
    layer.data[layer.data == int(np.unique(layer.data)[1])] = 0  # painted, not re-analysed
    widget._on_spine_clicked(0, 0)
    assert layer.selected_label == int(widget.result.spines["id"][0])
    monkeypatch.setattr(
        widget_module.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path)
    )
    widget._export_dialog()  # named as at analysis time; every file from that analysis
    assert len(pd.read_csv(tmp_path / "img_spines.csv")) == n
    with zipfile.ZipFile(tmp_path / "img_spines_roi.zip") as zf:
        assert len(zf.namelist()) == n
    viewer.layers.remove(layer)
    assert widget.result is None and widget.spine_table.rowCount() == 0
