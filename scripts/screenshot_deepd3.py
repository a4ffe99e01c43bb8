"""Screenshot of the real napari window: the DeepD3 stack opened with the plugin's reader, the
"Panoptic inference" dock run with the bundled model (default stack mode), both result layers
shown in napari's 3D view, where every spine is one object.

Run under a virtual display:  xvfb-run -a .venv/bin/python scripts/screenshot_deepd3.py OUT.png
The DeepD3 crop stores no voxel size; the benchmark's published voxel size (0.5 µm in z,
0.094 µm in y and x) is set as the layer's scale, as a user would.
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
    viewer.layers["dendrite"].scale = (0.5, 0.094, 0.094)
    widget.device_combo.setCurrentText("cpu")
    widget.run()
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    print(widget.status_label.text())
    import numpy as np

    viewer.dims.ndisplay = 3
    for layer in viewer.layers:
        if layer.name == "dendrite":  # the image: contrast from its percentiles, as a MIP
            layer.contrast_limits = [float(v) for v in np.percentile(layer.data, [1, 99.8])]
            layer.rendering = "mip"
            layer.opacity = 0.6
        if layer.name.endswith("dendrites"):
            layer.opacity = 0.25
        if layer.name.endswith("spines"):
            layer.opacity = 1.0
    viewer.reset_view()
    viewer.camera.angles = (0.0, -35.0, 80.0)
    viewer.camera.zoom *= 1.3
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.screenshot(out, canvas_only=False)
    print(out)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "images" / "deepd3_napari.png"))
