"""Screenshot of the real napari window with the "Spines over time" dock run on a generated
series (three imaging sessions of the same dendrite: drift, rotation, swelling, spines born and
lost): the sessions registered to the first, the spines with one colour per id, the gained (green),
lost (red) and missed (orange) points, and the table of fates, on the second session.

Run under a virtual display:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshot_tracking.py \\
        [docs/images/tracking_dock.png]
"""

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_dendrite_panoptic.data.synthetic import SeriesConfig, generate_series

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "tracking_dock.png"


def _wait(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.05)


def main(out: str) -> None:
    series = generate_series(9001, SeriesConfig(shape=(12, 256, 256), n_sessions=3))
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    names = []
    for k, s in enumerate(series.sessions):
        day = f"day{[0, 2, 7][k]}"
        viewer.add_image(s.image, name=day, scale=s.voxel_size_um, visible=False)
        viewer.add_labels(s.dendrite, name=f"{day} dendrites", scale=s.voxel_size_um, visible=False)
        viewer.add_labels(s.spines, name=f"{day} spines", scale=s.voxel_size_um, visible=False)
        names.append(f"{day} spines")
    _, widget = viewer.window.add_plugin_dock_widget("napari-dendrite-panoptic", "Spines over time")
    widget.select(names)
    widget.days_edit.setText("0,2,7")
    widget.run()
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    print(widget.status_label.text())
    image = viewer.layers["sessions registered"]
    mip = image.data.max(axis=1, keepdims=True)  # a maximum projection per session, for the view
    image.data = np.repeat(mip, image.data.shape[1], axis=1)
    image.contrast_limits = [float(v) for v in np.percentile(mip, [1, 99.8])]
    image.colormap = "gray"
    labels = viewer.layers["spines over time"]
    labels.data = np.repeat(labels.data.max(axis=1, keepdims=True), labels.data.shape[1], axis=1)
    labels.opacity = 0.6
    viewer.layers["gained and lost"].size = 1.2
    viewer.layers["gained and lost"].out_of_slice_display = True
    t = widget.result.spines
    rows = np.flatnonzero((t["session"] == 2) & (t["call"] != "stable"))
    row = int(rows[0]) if len(rows) else 0
    widget.table.selectRow(row)
    widget.table.scrollToItem(widget.table.item(row, 0))
    viewer.reset_view()
    viewer.camera.zoom *= 1.5
    widget._on_row_clicked(row, 0)
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    step = list(viewer.dims.current_step)
    step[0] = 1
    viewer.dims.current_step = tuple(step)
    _wait(1.0)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(out, canvas_only=False)
    print(out)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(OUT))
