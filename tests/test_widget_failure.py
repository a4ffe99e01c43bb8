"""A failing inference run in napari: a notification, and the viewer, its layers and the dock stay
usable (dock opened through the manifest; failures forced with a corrupt model folder, a
monkeypatched engine, and a simulated out-of-memory error)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from napari_dendrite_panoptic._widgets import inference as widget_module
from napari_dendrite_panoptic.inference import tile_passes
from napari_dendrite_panoptic.models.store import MODELS_DIR_ENV

PLUGIN = "napari-dendrite-panoptic"
WAIT_MS = 120_000


@pytest.fixture
def dock(make_napari_viewer, tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "no-user-models"))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Panoptic inference")
    widget.set_model_folder(tiny_model_dir)
    widget.device_combo.setCurrentText("cpu")
    widget.score_threshold.setValue(0.0)
    image = np.random.default_rng(0).integers(0, 2000, (96, 96)).astype(np.uint16)
    viewer.add_image(image, name="cell", scale=(0.1, 0.1))
    notes: dict[str, list[str]] = {"error": [], "warning": []}
    for kind in notes:
        monkeypatch.setattr(
            widget_module, f"show_{kind}", lambda m, *a, _k=kind, **k: notes[_k].append(str(m))
        )
    return viewer, widget, notes


def _run(qtbot, widget) -> None:
    widget.run_button.click()
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def _usable(viewer, widget, names) -> None:
    assert [layer.name for layer in viewer.layers] == names
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert widget.progress_bar.value() == 0
    viewer.layers["cell"].contrast_limits = (0, 1000)  # the viewer still responds
    viewer.dims.set_point(0, 10.0)


def test_corrupt_model_folder_notifies_and_the_next_run_works(
    dock, qtbot, tiny_model_dir, tmp_path
):
    viewer, widget, notes = dock
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    data = bytearray((broken / "spines.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (broken / "spines.safetensors").write_bytes(bytes(data))
    widget.set_model_folder(broken)

    _run(qtbot, widget)

    assert len(notes["error"]) == 1
    assert "does not match the SHA-256 in its card" in notes["error"][0]
    assert "Failed" in widget.status_label.text()
    _usable(viewer, widget, ["cell"])
    # pick the good model again: the same dock segments
    widget.set_model_folder(tiny_model_dir)
    _run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["cell", "cell dendrites", "cell spines"]
    assert len(notes["error"]) == 1


def test_unexpected_engine_error_is_one_notification_not_a_crash(dock, qtbot, monkeypatch):
    viewer, widget, notes = dock
    viewer.add_labels(np.zeros((96, 96), np.uint8), name="cell spines")  # the user's own layer

    def broken(models, tiles):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR (simulated)")

    monkeypatch.setattr(tile_passes, "run_networks", broken)
    _run(qtbot, widget)

    assert notes["error"] == [
        "Inference failed unexpectedly (RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR "
        "(simulated)); the details are in the log. No layer was changed."
    ]
    _usable(viewer, widget, ["cell", "cell spines"])
    assert not viewer.layers["cell spines"].data.any()


def test_out_of_memory_fallback_is_a_warning_and_the_result_arrives(dock, qtbot, monkeypatch):
    viewer, widget, notes = dock

    def small_tiles_only(models, tiles):
        if tiles.shape[-1] > 64:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        prob = tiles[:, 0].clamp(0, 1)
        empty = {
            "boxes": torch.zeros((0, 4)),
            "scores": torch.zeros(0),
            "masks": torch.zeros((0, 1, 28, 28)),
        }
        return prob, [empty] * len(tiles)

    monkeypatch.setattr(tile_passes, "run_networks", small_tiles_only)
    _run(qtbot, widget)

    assert notes["error"] == []
    assert notes["warning"] == [
        "'cell': Out of memory on cpu with 96 px tiles: retrying with 64 px tiles."
    ]
    assert [layer.name for layer in viewer.layers] == ["cell", "cell dendrites", "cell spines"]
    info = viewer.layers["cell dendrites"].metadata["dendrite_panoptic"]
    assert info["parameters"]["tile_size_used"] == 64
    assert info["parameters"]["warnings"] == [notes["warning"][0].split(": ", 1)[1]]
