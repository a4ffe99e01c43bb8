import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_engine_imports_neither_napari_nor_qt():
    code = (
        "import sys\n"
        "import napari_dendrite_panoptic.inference, napari_dendrite_panoptic.training\n"
        "import napari_dendrite_panoptic.io, napari_dendrite_panoptic.synthetic\n"
        "import napari_dendrite_panoptic.models, napari_dendrite_panoptic.cli\n"
        "import napari_dendrite_panoptic.batch, napari_dendrite_panoptic.tiff_writing\n"
        "import napari_dendrite_panoptic.real_data, napari_dendrite_panoptic.findspines_split\n"
        "import napari_dendrite_panoptic.checkpoints, napari_dendrite_panoptic.training_batches\n"
        "import napari_dendrite_panoptic.memory_guard\n"
        "import napari_dendrite_panoptic.plane_reader, napari_dendrite_panoptic.tile_passes\n"
        "import napari_dendrite_panoptic.synthetic_geometry\n"
        "import napari_dendrite_panoptic.cli_segment, napari_dendrite_panoptic.cli_evaluate\n"
        "import napari_dendrite_panoptic.comparison_maps\n"
        "import napari_dendrite_panoptic.comparison_tables\n"
        "import napari_dendrite_panoptic.comparison_scopes, napari_dendrite_panoptic.fine_tuning\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'vispy')]\n"
        "print(','.join(sorted(bad)))"
    )
    assert _run(code) == ""


def test_importing_the_package_is_light():
    code = "import sys, napari_dendrite_panoptic\nprint('torch' in sys.modules)"
    assert _run(code) == "False"
