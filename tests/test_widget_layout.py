"""The docks fit a 1400 x 900 screen: each scrolls its content, so all of them open at once need
little room, and the training dock's loss plot stays readable."""

import pytest
from qtpy.QtWidgets import QApplication, QScrollArea

DOCKS = (
    "Panoptic inference",
    "Train on corrections",
    "Metrics",
    "Spine analysis",
    "Spines over time",
)


@pytest.fixture
def docks(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    opened = {}
    for name in DOCKS:  # through the manifest, as the Plugins menu opens them
        dock, widget = viewer.window.add_plugin_dock_widget("napari-dendrite-panoptic", name)
        opened[name] = (dock, widget)
    for _ in range(5):
        QApplication.processEvents()
    return viewer, opened


def test_all_docks_fit_a_1400_by_900_window(docks):
    viewer, opened = docks
    heights = []
    for name, (dock, widget) in opened.items():
        assert isinstance(widget.scroll_area, QScrollArea), name
        hint = dock.minimumSizeHint()
        assert hint.width() <= 560, f"{name} needs {hint.width()} px of width"
        assert hint.height() <= 160, f"{name} needs {hint.height()} px of height"
        heights.append(hint.height())
        # content taller than the dock scrolls instead of being squeezed
        content = widget.scroll_area.widget()
        assert content.height() >= content.minimumSizeHint().height()
    assert sum(heights) <= 900 - 150  # all five docks, under the menu bar and status bar
    assert sum(sorted(heights)[-2:]) <= 400  # any two of them with room to spare
    assert viewer.window._qt_window.height() <= 900


def test_the_loss_plot_stays_readable_with_every_dock_open(docks):
    _, opened = docks
    training = opened["Train on corrections"][1]
    assert training.plot.minimumHeight() >= 150
    assert training.plot.height() >= 150
