"""Screenshot of every dock of the plugin open at once in a 1400 x 900 napari window, with the
bundled synthetic sample stack: each dock scrolls its own content, so all of them fit.

Run under a virtual display:  xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python \
    scripts/screenshot_docks.py [OUT.png]       (default: docs/images/docks_1400x900.png)
"""

import sys
import time
import warnings
from pathlib import Path

import napari
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

warnings.filterwarnings("ignore", message="napari support for the PyQt5")  # no toast over it

ROOT = Path(__file__).resolve().parents[1]
DOCKS = (
    "Panoptic inference",
    "Train on corrections",
    "Metrics",
    "Spine analysis",
    "Spines over time",
)


def _settle(seconds: float = 1.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.05)


def main(out: str) -> None:
    viewer = napari.Viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1400, 900)
    viewer.open_sample("napari-dendrite-panoptic", "synthetic_stack")
    docks = [viewer.window.add_plugin_dock_widget("napari-dendrite-panoptic", n)[0] for n in DOCKS]
    _settle()
    window.resize(1400, 900)
    window.resizeDocks(docks, [170] * len(docks), Qt.Vertical)  # a share each, as a user would
    viewer.reset_view()
    _settle()
    size = window.size()
    print(f"window {size.width()} x {size.height()}")
    viewer.screenshot(out, canvas_only=False)
    print(out)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "images" / "docks_1400x900.png"))
