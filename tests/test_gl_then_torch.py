import os
import subprocess
import sys

import pytest

CODE = """
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
QApplication.processEvents()
import napari_dendrite_panoptic.inference  # torchvision ops after the OpenGL canvas exists
print("engine imported after OpenGL")
viewer.close()
"""


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb)")
def test_engine_imports_after_napari_opened_its_opengl_canvas():
    # Mesa's LLVM and triton's LLVM clash unless the package loads triton with RTLD_DEEPBIND
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "engine imported after OpenGL" in proc.stdout
