"""Screenshot of the real napari window: the DeepD3 crop opened with the plugin's reader, the
"Panoptic inference" dock run with the bundled model, both result layers shown.

Run under a virtual display:  xvfb-run -a .venv/bin/python scripts/screenshot_deepd3.py OUT.png
The DeepD3 crop stores no voxel size; the benchmark's published 0.094 µm/px is typed into the
dock's pixel-size field, as a user would.
"""

import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT.parent / "shared" / "data" / "deepd3-benchmark-crop" / "dendrite.tif"


def main(out: str) -> None:
    if not CROP.is_file():
        raise SystemExit(f"{CROP} is absent: this script needs ../shared/data")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open(str(CROP), plugin="napari-dendrite-panoptic")
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-dendrite-panoptic", "Panoptic inference"
    )
    widget.pixel_size.setValue(0.094)
    widget.device_combo.setCurrentText("cpu")
    widget.run()
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    print(widget.status_label.text())
    import numpy as np

    viewer.dims.ndisplay = 2
    spines = next(la for la in viewer.layers if la.name.endswith("spines")).data
    # each spine keeps only its in-focus planes: show the plane where most spines are
    per_plane = [len(np.unique(plane[plane > 0])) for plane in spines]
    viewer.dims.set_current_step(0, int(np.argmax(per_plane)))
    for layer in viewer.layers:
        if layer.name == "dendrite":  # the image: contrast from its percentiles
            layer.contrast_limits = [float(v) for v in np.percentile(layer.data, [1, 99.8])]
        if layer.name.endswith("dendrites"):
            layer.opacity = 0.35
        if layer.name.endswith("spines"):
            layer.contour = 1
            layer.opacity = 0.9
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.screenshot(out, canvas_only=False)
    print(out)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "images" / "deepd3_napari.png"))
