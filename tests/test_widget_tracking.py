"""The "Spines over time" dock, loaded through the manifest, on a tiny generated series."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.data.synthetic import SeriesConfig, generate_series
from napari_dendrite_panoptic.errors import OutputExistsError

PLUGIN = "napari-dendrite-panoptic"
WAIT_MS = 120_000


def _viewer_with(make_napari_viewer, series, images: bool):
    """A viewer with each session's layers as the inference dock names them: "day<k>"
    (with ``images``), "day<k> dendrites", "day<k> spines"."""
    viewer = make_napari_viewer()
    for k, s in enumerate(series.sessions):
        if images:
            viewer.add_image(s.image, name=f"day{k}", scale=s.voxel_size_um)
        viewer.add_labels(s.dendrite, name=f"day{k} dendrites", scale=s.voxel_size_um)
        viewer.add_labels(s.spines, name=f"day{k} spines", scale=s.voxel_size_um)
    return viewer


def test_dock_tracks_shows_layers_table_and_exports(make_napari_viewer, qtbot, tmp_path):
    series = generate_series(2, SeriesConfig(shape=(8, 160, 160), n_sessions=2))
    viewer = _viewer_with(make_napari_viewer, series, images=True)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spines over time")
    assert {"day0 spines", "day1 spines"} <= {
        widget.session_list.item(i).text() for i in range(widget.session_list.count())
    }
    widget.select(["day0 spines", "day1 spines"])
    widget.days_edit.setText("0,3")
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None and widget.result is not None, timeout=WAIT_MS)
    labels = viewer.layers["spines over time"]
    assert labels.data.shape == (2, *series.sessions[0].spines.shape)
    # a stable spine has the same id (so the same colour) in both sessions
    t = widget.result.spines
    stable = t["id"][(t["session"] == 2) & (t["call"] == "stable")]
    assert (
        len(stable)
        and np.isin(stable, labels.data[1]).all()
        and np.isin(stable, labels.data[0]).all()
    )
    assert "gained and lost" in viewer.layers
    assert widget.table.rowCount() == len(t["id"])
    # a row click goes to that spine's session
    row = int(np.flatnonzero(t["session"] == 2)[0])
    widget._on_row_clicked(row, 0)
    assert viewer.dims.current_step[0] == 1
    assert labels.selected_label == int(t["id"][row])
    written = widget.export_csv(tmp_path)
    assert [p.name for p in written] == ["spines_over_time.csv", "turnover.csv"]
    assert "fate" in written[0].read_text().splitlines()[0]

    # split: a stable spine's second session becomes a new spine (lost, then gained)
    sid = int(stable[0])
    new = widget.split(sid, [2])
    t = widget.result.spines
    in2 = t["session"] == 2
    assert t["call"][in2 & (t["id"] == new)].tolist() == ["gained"]
    assert t["call"][in2 & (t["id"] == sid)].tolist() == ["lost"]
    assert new in labels.data[1] and sid not in labels.data[1] and sid in labels.data[0]
    assert new in widget.result.labels[1] and sid not in widget.result.labels[1]
    assert widget.table.rowCount() == len(t["id"])
    points = viewer.layers["gained and lost"]
    assert {sid, new} <= set(points.features["id"].tolist())
    # merge: chosen in the table (one row of each id), back to one stable spine
    from qtpy.QtCore import QItemSelectionModel

    widget.table.clearSelection()
    pick = QItemSelectionModel.Select | QItemSelectionModel.Rows
    for r in range(widget.table.rowCount()):
        if int(widget.table.item(r, 0).text()) in (sid, new):
            widget.table.selectionModel().select(widget.table.model().index(r, 0), pick)
    widget.merge_button.click()
    t = widget.result.spines
    assert new not in t["id"] and new not in labels.data[1] and sid in labels.data[1]
    assert t["call"][(t["session"] == 2) & (t["id"] == sid)].tolist() == ["stable"]
    assert sid not in set(viewer.layers["gained and lost"].features["id"].tolist())
    whole = widget.result.turnover["branch_id"] == 0
    assert (
        widget.result.turnover["n_stable"][whole][0]
        == ((t["session"] == 2) & (t["call"] == "stable")).sum()
    )


def test_dock_refuses_one_session(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spines over time")
    widget.run()
    assert widget.worker is None and "two" in widget.status_label.text()


def test_dock_keeps_the_users_layers_and_tables(make_napari_viewer, qtbot, tmp_path):
    series = generate_series(3, SeriesConfig(shape=(8, 128, 128), n_sessions=2))
    viewer = _viewer_with(make_napari_viewer, series, images=False)
    mine = np.ones((4, 4), dtype=np.uint8)
    viewer.add_labels(mine, name="spines over time")
    viewer.add_image(mine.astype(float), name="sessions registered")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spines over time")
    widget.select(["day0 spines", "day1 spines"])
    widget.days_edit.setText("0,two")
    widget.run()
    assert widget.worker is None and "numbers separated by commas" in widget.status_label.text()
    widget.days_edit.setText("")

    def track():
        widget.result = None
        widget.run()
        qtbot.waitUntil(
            lambda: widget.worker is None and widget.result is not None, timeout=WAIT_MS
        )

    track()
    # the user's own layers of those names are kept as they were; the result goes beside them
    assert np.array_equal(viewer.layers["spines over time"].data, mine)
    assert np.array_equal(viewer.layers["sessions registered"].data, mine)
    result = viewer.layers["spines over time [2]"]
    assert widget.labels_layer.name == "spines over time [2]" and result.data.ndim == 4

    def split_one():
        t = widget.result.spines
        stable = t["id"][(t["session"] == 2) & (t["call"] == "stable")]
        return widget.split(int(stable[0]), [2])

    # a split is the dock's own change: tracking again updates the same layer
    new = split_one()
    assert new in result.data[1]
    track()
    assert "spines over time [3]" not in viewer.layers
    assert "sessions registered [3]" not in viewer.layers
    assert "gained and lost [2]" not in viewer.layers
    # painted on by the user, the result is kept and the next one goes beside it
    painted = result.data.copy()
    painted[0, 0, 0, 0] = 999
    result.data = painted
    track()
    assert viewer.layers["spines over time [2]"].data[0, 0, 0, 0] == 999
    assert widget.labels_layer.name == "spines over time [3]"
    # exported tables are never replaced
    first = widget.export_csv(tmp_path)
    before = [p.read_bytes() for p in first]
    split_one()
    with pytest.raises(OutputExistsError, match="spines_over_time.csv exists already"):
        widget.export_csv(tmp_path)
    assert [p.read_bytes() for p in first] == before
