"""Out of memory during inference: smaller tiles, then the CPU, reported to the user.

Simulated on the CPU: the network call is replaced by a cheap stand-in (dendrite probability =
the normalised tile, no spines) that raises PyTorch's out-of-memory error for large tiles or on a
pretend GPU device. Stitching, retries and the fallback are the real code.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_dendrite_panoptic import inference
from napari_dendrite_panoptic.inference import (
    InferenceConfig,
    PanopticResult,
    iter_predict,
    tile_passes,
)
from napari_dendrite_panoptic.inference.config import ProgressEvent
from napari_dendrite_panoptic.inference.memory import OutOfMemory
from napari_dendrite_panoptic.models import LoadedModels, load_models


def _image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 1000, size=(2, 200, 200)).astype(np.uint16)


def _stand_in(models, tiles):
    """Dendrite probability = the tile itself (so stitching shows), no spine detections."""
    prob = tiles[:, 0].clamp(0, 1)
    empty = {
        "boxes": torch.zeros((0, 4)),
        "scores": torch.zeros(0),
        "masks": torch.zeros((0, 1, 28, 28)),
    }
    return prob, [empty for _ in range(len(tiles))]


def _run(image, cfg, models=None):
    events = list(iter_predict(image, (0.5, 0.1, 0.1), cfg, models=models))
    assert isinstance(events[-1], PanopticResult)
    return events[:-1], events[-1]


def _fail_when(monkeypatch, condition, error=torch.OutOfMemoryError):
    calls: list[tuple[str, int]] = []

    def fake(models, tiles):
        calls.append((tiles.device.type, int(tiles.shape[-1])))
        if condition(tiles):
            raise error("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return _stand_in(models, tiles)

    monkeypatch.setattr(tile_passes, "run_networks", fake)
    return calls


def test_large_tiles_out_of_memory_retries_with_smaller_tiles(tiny_model_dir, monkeypatch):
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", tile_size=256, tile_overlap=16)
    calls = _fail_when(monkeypatch, lambda tiles: tiles.shape[-1] > 64)
    reference = _run(_image(), InferenceConfig(**{**cfg.__dict__, "tile_size": 64}))[1]
    calls.clear()
    events, result = _run(_image(), cfg)
    warnings = [e.warning for e in events if isinstance(e, ProgressEvent) and e.warning]
    assert warnings == [
        "Out of memory on cpu with 224 px tiles: retrying with 128 px tiles.",
        "Out of memory on cpu with 128 px tiles: retrying with 64 px tiles.",
    ]
    assert result.parameters["tile_size_used"] == 64
    assert result.parameters["warnings"] == warnings
    # (200 px planes use 224 px tiles at most); the second plane starts at the size that worked
    assert [size for _, size in calls].count(224) == 1
    # same result as a run asked for with 64 px tiles from the start, and not empty
    np.testing.assert_array_equal(result.dendrite, reference.dendrite)
    assert 0.2 < result.dendrite.mean() < 0.8
    # the progress bar ends full
    assert events[-1].done == events[-1].total


def test_runtime_error_saying_out_of_memory_is_also_handled(tiny_model_dir, monkeypatch):
    _fail_when(monkeypatch, lambda tiles: tiles.shape[-1] > 64, error=RuntimeError)
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", tile_size=128, tile_overlap=16)
    _, result = _run(_image(), cfg)
    assert result.parameters["tile_size_used"] == 64


def test_gpu_out_of_memory_falls_back_to_the_cpu(tiny_model_dir, monkeypatch):
    # a pretend accelerator: "meta" tensors carry shapes only; every network call on it fails
    cpu = load_models(tiny_model_dir, "cpu")
    gpu = LoadedModels(cpu.card, cpu.folder, cpu.spines, cpu.dendrites, torch.device("meta"))
    calls = _fail_when(monkeypatch, lambda tiles: tiles.device.type == "meta")
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", tile_size=128, tile_overlap=16)
    events, result = _run(_image(), cfg, models=gpu)
    warnings = [e.warning for e in events if e.warning]
    assert warnings[-1] == (
        "Out of memory on meta even with 64 px tiles: continuing on the CPU (slower)."
    )
    assert result.parameters["device_used"] == "cpu"
    assert result.parameters["tile_size_used"] == 128  # the CPU starts again at the asked size
    assert {d for d, _ in calls} == {"meta", "cpu"}
    assert result.dendrite.shape == (2, 200, 200)
    assert result.parameters["warnings"][0].startswith("Out of memory on meta with 128")
    _, reference = _run(_image(), cfg)
    np.testing.assert_array_equal(result.dendrite, reference.dendrite)


def test_out_of_memory_with_the_smallest_tiles_on_the_cpu_is_a_clear_error(
    tiny_model_dir, monkeypatch
):
    _fail_when(monkeypatch, lambda tiles: True)
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", tile_size=128)
    with pytest.raises(OutOfMemory, match="Not enough memory to segment 200x200 px planes"):
        _run(_image(), cfg)


def test_other_errors_are_not_mistaken_for_out_of_memory(tiny_model_dir, monkeypatch):
    _fail_when(monkeypatch, lambda tiles: True, error=ValueError)
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", tile_size=128)
    with pytest.raises(ValueError, match="simulated"):
        _run(_image(), cfg)


def test_job_larger_than_the_machine_is_refused_before_it_starts(tiny_model_dir, monkeypatch):
    from napari_dendrite_panoptic import io

    image = _image()  # 2 x 200 x 200 px at the model's pixel size
    need = inference.memory_needed(2, 200, 200, 200, 200)
    assert need == 2 * 200 * 200 * 5 + 200 * 200 * 24 + 200 * 200 * 20
    monkeypatch.setattr(io, "physical_memory", lambda: need - 1)
    called = _fail_when(monkeypatch, lambda tiles: False)
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu")
    with pytest.raises(OutOfMemory, match=r"segmenting 2 plane\(s\) of 200x200 px needs about"):
        _run(image, cfg)
    assert called == []  # refused before any network call
    monkeypatch.setattr(io, "physical_memory", lambda: need)
    _run(image, cfg)


def test_a_plane_that_cannot_be_read_into_memory_is_a_clear_error(tiny_model_dir):
    class Huge:
        """A lazy stack whose planes are too big to read (numpy would raise MemoryError)."""

        shape, dtype, ndim = (2, 200, 200), np.dtype(np.uint16), 3

        def __init__(self, fail_at_read: int) -> None:
            self.reads, self.fail_at_read = 0, fail_at_read

        def __getitem__(self, key):
            self.reads += 1
            if self.reads == self.fail_at_read:
                raise MemoryError("Unable to allocate 80.0 GiB for an array")
            return np.zeros((200, 200), np.uint16)  # uniform: no network call needed

    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu", stack_mode="planes")
    # reads 1-2: the percentiles over the stack; 3-4: the planes, one by one
    with pytest.raises(OutOfMemory, match="not enough memory to read the image's 200x200 px"):
        _run(Huge(2), cfg)
    with pytest.raises(OutOfMemory, match="not enough memory to read plane 2 of 200x200 px"):
        _run(Huge(4), cfg)


_PLANES_OF_WORK = """
import numpy as np
from napari_dendrite_panoptic.inference.memory import keep_large_blocks_off_the_heap

def rss_anon_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) // 1024

keep_large_blocks_off_the_heap()
np.ones(24 * 2**18, np.float32)  # one large block freed (glibc would raise its threshold)
before = rss_anon_mib()
kept = []
for plane in range(32):  # each plane: four 17-23 MiB arrays, a 512 KiB result kept after each
    work = []
    for k in range(4):
        work.append(np.ones((17 + (plane * 3 + k) % 7) * 2**18, np.float32))
        kept.append(np.ones(2**16))
    del work
print(rss_anon_mib() - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's heap only (macOS, Windows and musl manage theirs otherwise)",
)
def test_planes_of_large_arrays_do_not_leave_the_process_growing():
    # without keep_large_blocks_off_the_heap glibc keeps the freed arrays in its heap between
    # the kept results, and the process grew by 140 MiB here instead of the 64 MiB kept
    done = subprocess.run(
        [sys.executable, "-c", _PLANES_OF_WORK], capture_output=True, text=True, check=True
    )
    assert int(done.stdout.strip()) <= 64 + 16  # what was kept, and little more


def test_only_runs_whose_planes_go_to_disk_change_the_heap(tiny_model_dir, monkeypatch):
    # mapping each large block afresh costs time: in-memory runs keep glibc's default
    from napari_dendrite_panoptic.inference import pipeline

    calls: list[int] = []
    monkeypatch.setattr(pipeline, "keep_large_blocks_off_the_heap", lambda: calls.append(1))
    monkeypatch.setattr(tile_passes, "run_networks", _stand_in)
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu")
    _run(_image(), cfg)
    assert calls == []
    sink_planes: list[int] = []
    list(
        iter_predict(
            _image(), (0.5, 0.1, 0.1), cfg, plane_sink=lambda z, d, s: sink_planes.append(z)
        )
    )
    assert calls == [1] and sink_planes == [0, 1]
