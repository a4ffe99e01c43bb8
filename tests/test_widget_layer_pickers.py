"""Every dock's layer pickers follow the viewer's layer list: a layer added is offered, a layer
deleted is gone, a renamed layer keeps its place under its new name. Docks are opened through
the manifest, as the Plugins menu opens them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic._widgets._common import NONE, offered

PLUGIN = "napari-dendrite-panoptic"
IMAGE = np.zeros((16, 16), np.float32)
LABELS = np.zeros((16, 16), np.uint8)


def _open(make_napari_viewer, dock):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, dock)
    return viewer, widget


# (dock, the picker, the kind of layer it offers)
PICKERS = (
    ("Panoptic inference", lambda w: w.image_picker, "image"),
    ("Metrics", lambda w: w.pred_dendrite, "labels"),
    ("Metrics", lambda w: w.truth_spines, "points"),
    ("Spine analysis", lambda w: w.image_picker, "image"),
    ("Spine analysis", lambda w: w.spine_picker, "labels"),
    ("Train on corrections", lambda w: w.table.pickers[0][0], "image"),
    ("Train on corrections", lambda w: w.table.pickers[0][2], "labels"),
)


def _add(viewer, kind: str, name: str):
    if kind == "image":
        return viewer.add_image(IMAGE, name=name)
    if kind == "labels":
        return viewer.add_labels(LABELS, name=name)
    return viewer.add_points(np.zeros((1, 2)), name=name)


@pytest.mark.parametrize(("dock", "get", "kind"), PICKERS, ids=[f"{d}-{k}" for d, _, k in PICKERS])
def test_picker_offers_added_layers_drops_deleted_ones_and_follows_renames(
    make_napari_viewer, dock, get, kind
):
    viewer, widget = _open(make_napari_viewer, dock)
    picker = get(widget)
    assert offered(picker) == []
    first = _add(viewer, kind, "first")
    second = _add(viewer, kind, "second")
    viewer.add_shapes(name="not a candidate")  # a layer of another kind is never offered
    assert offered(picker) == ["first", "second"]
    picker.value = second
    first.name = "renamed"
    assert offered(picker) == ["renamed", "second"]
    assert picker.native.itemText(picker.native.findText("renamed")) == "renamed"
    assert picker.value == second  # the choice survives other layers' changes
    viewer.layers.remove(second)
    assert offered(picker) == ["renamed"]
    assert picker.value != second
    viewer.layers.remove(first)
    assert offered(picker) == []


def test_metrics_pickers_start_at_none_and_leave_out_the_docks_own_layers(make_napari_viewer):
    viewer, widget = _open(make_napari_viewer, "Metrics")
    viewer.add_labels(LABELS, name="pred")
    assert widget.pred_spines.value is None and widget.pred_spines.native.currentText() == NONE
    viewer.add_labels(LABELS, name="pred vs truth matches", metadata={"role": "matches"})
    ours = {"dendrite_panoptic": {"role": "matches"}}
    viewer.add_labels(LABELS, name="ours", metadata=ours)
    assert offered(widget.pred_spines) == ["pred", "pred vs truth matches"]


def test_spine_analysis_finds_the_spine_layer_added_after_the_dendrites(make_napari_viewer):
    viewer, widget = _open(make_napari_viewer, "Spine analysis")
    viewer.add_image(IMAGE, name="cell")
    # the order in which the inference dock adds its results
    dendrites = viewer.add_labels(LABELS, name="cell dendrites")
    spines = viewer.add_labels(LABELS, name="cell spines")
    assert widget.dendrite_picker.value == dendrites
    assert widget.spine_picker.value == spines


def test_tracking_list_keeps_the_users_order_and_choice_when_layers_change(make_napari_viewer):
    viewer, widget = _open(make_napari_viewer, "Spines over time")
    for day in (0, 1, 2):
        viewer.add_labels(LABELS, name=f"day{day} spines")
    viewer.add_labels(LABELS, name="day0 dendrites")  # not a spine layer: not listed
    widget.select(["day2 spines", "day0 spines"])
    viewer.add_labels(LABELS, name="day3 spines")
    viewer.layers["day2 spines"].name = "late spines"
    listed = [widget.session_list.item(i).text() for i in range(widget.session_list.count())]
    assert listed == ["late spines", "day0 spines", "day1 spines", "day3 spines"]
    assert widget.selected_names() == ["late spines", "day0 spines"]
    viewer.layers.remove("day0 spines")
    assert widget.selected_names() == ["late spines"]
    assert widget.session_list.count() == 3
