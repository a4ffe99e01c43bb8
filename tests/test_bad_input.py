"""The bad-input matrix: what a microscope (or a user) may hand the plugin, and what they see.

Each case goes the way the CLI and the reader go (``read_tiff`` ▸ ``stack_zyx`` ▸ ``predict`` with
the tiny model on the CPU) and checks the exact message or the behaviour. docs/reliability.md
lists every case with the test that covers it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic import io
from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.data import TrainingSample
from napari_dendrite_panoptic.errors import InputError, TiffReadError
from napari_dendrite_panoptic.evaluation import match_instances, pixel_scores
from napari_dendrite_panoptic.inference import InferenceConfig, PanopticResult, iter_predict
from napari_dendrite_panoptic.inference.config import ProgressEvent

RNG = np.random.default_rng(3)


def _cfg(model) -> InferenceConfig:
    return InferenceConfig(model=str(model), device="cpu", tile_size=64, tile_overlap=16)


def _segment(model, image, voxel=None) -> tuple[PanopticResult, list[str]]:
    """Run the engine; returns the result and the warnings it reported."""
    events = list(iter_predict(image, voxel, _cfg(model)))
    warnings = [e.warning for e in events if isinstance(e, ProgressEvent) and e.warning]
    assert isinstance(events[-1], PanopticResult)
    return events[-1], warnings


def _segment_file(model, path: Path, channel: int = 0, time: int = 0):
    stack = io.read_tiff(path)
    volume = io.stack_zyx(stack, channel=channel, time=time)
    voxel = stack.voxel_size_um if stack.voxel_size_source != "none" else None
    return stack, _segment(model, volume, voxel)[0]


def _plane(dtype=np.uint16, shape=(48, 48)) -> np.ndarray:
    return RNG.integers(0, 3000, size=shape).astype(dtype)


# --- files that cannot be read ------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    with pytest.raises(TiffReadError) as info:
        io.read_tiff(path)
    assert str(info.value) == f"Cannot read '{path}': the file is empty (0 bytes)."


def test_truncated_tiff_pixels_and_header(tmp_path):
    whole = tmp_path / "whole.tif"
    # one page of 4 samples: the pixels follow the header, so half the file keeps the header
    tifffile.imwrite(whole, _plane(shape=(4, 48, 48)), photometric="rgb", planarconfig="separate")
    content = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(content[: len(content) // 2])
    with pytest.raises(TiffReadError, match=r"the file is incomplete \(truncated\?\): its pixels"):
        io.read_tiff(cut)
    header = tmp_path / "header.tif"
    header.write_bytes(content[:100])
    with pytest.raises(TiffReadError, match="the file is incomplete or damaged"):
        io.read_tiff(header)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "(it looks like a PNG image)"),
        (b"\xff\xd8\xff\xe0" + bytes(40), "(it looks like a JPEG image)"),
        (b"<html>404 Not Found</html>", "(it starts with b'<htm')"),
    ],
)
def test_non_tiff_named_tif(tmp_path, content, words):
    path = tmp_path / "image.tif"
    path.write_bytes(content)
    with pytest.raises(TiffReadError) as info:
        io.read_tiff(path)
    assert str(info.value) == (
        f"Cannot read '{path}': the file is not a TIFF image {words}; "
        "convert it to TIFF, e.g. with Fiji."
    )


@pytest.mark.parametrize("samples", [3, 4])
def test_colour_rgb_and_rgba_are_refused_grey_ones_read_as_one_channel(
    tmp_path, tiny_model_dir, samples
):
    colour = tmp_path / "colour.tif"
    tifffile.imwrite(colour, RNG.integers(0, 255, (48, 48, samples), np.uint8), photometric="rgb")
    with pytest.raises(TiffReadError, match="it is a colour RGB image, which is not supported"):
        io.read_tiff(colour)
    grey = RNG.integers(0, 255, (48, 48, 1), np.uint8)
    channels = [grey] * 3 + ([np.full_like(grey, 255)] if samples == 4 else [])
    path = tmp_path / "grey.tif"
    tifffile.imwrite(path, np.concatenate(channels, axis=-1), photometric="rgb")
    stack, result = _segment_file(tiny_model_dir, path)
    assert stack.axes == "YX"
    np.testing.assert_array_equal(stack.data, grey[..., 0])
    assert result.spines.shape == (1, 48, 48)


def test_5d_tzcyx_picks_one_channel_and_time_point(tmp_path, tiny_model_dir):
    data = RNG.integers(0, 3000, (2, 3, 2, 48, 48)).astype(np.uint16)  # T Z C Y X
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    stack, result = _segment_file(tiny_model_dir, path, channel=1, time=1)
    assert stack.axes == "TCZYX" and stack.shape == (2, 2, 3, 48, 48)
    np.testing.assert_array_equal(io.stack_zyx(stack, channel=1, time=1), data[1, :, 1])
    assert result.dendrite.shape == (3, 48, 48)
    with pytest.raises(InputError) as info:
        io.stack_zyx(stack, channel=2)
    assert str(info.value) == (f"Channel 2 does not exist in '{path}': it has 2 channels (0 to 1).")
    one = tmp_path / "one.tif"
    tifffile.imwrite(one, data[0, :, 0], imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(InputError) as info:
        io.stack_zyx(io.read_tiff(one), channel=1)
    assert str(info.value) == f"Channel 1 does not exist in '{one}': it has one channel (0)."
    assert io.stack_zyx(io.read_tiff(one), channel=-1).shape == (3, 48, 48)


# --- pixel values ---------------------------------------------------------------------------


def test_float32_with_nan_and_inf_segments(tmp_path, tiny_model_dir):
    image = _plane(np.float32)
    image[5, 5], image[6, 6], image[7, 7] = np.nan, np.inf, -np.inf
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, image)
    _, result = _segment_file(tiny_model_dir, path)
    clean = image.copy()
    clean[~np.isfinite(clean)] = np.nanpercentile(image[np.isfinite(image)], 1.0)
    reference, _ = _segment(tiny_model_dir, clean)
    assert result.dendrite.shape == (1, 48, 48)
    # non-finite pixels are read as the low percentile: the same answer as a clean image
    np.testing.assert_array_equal(result.dendrite, reference.dendrite)


@pytest.mark.parametrize("value", [0, 7])
def test_uniform_image_gives_an_empty_result_and_says_why(tiny_model_dir, value):
    result, warnings = _segment(tiny_model_dir, np.full((3, 48, 48), value, np.uint16))
    assert warnings == [
        "no pixel size given and cannot estimate the pixel size: the image is uniform or not "
        "finite: assuming the model's 0.1 µm",
        f"The image holds no structure (every pixel is {value}): nothing to segment.",
    ]
    assert not result.dendrite.any() and not result.spines.any()
    assert len(result.table["id"]) == 0
    assert result.parameters["warnings"] == warnings


@pytest.mark.parametrize("shape", [(1, 1), (1, 64), (3, 64, 1), (0, 48, 48)])
def test_too_small_planes_are_refused(tmp_path, tiny_model_dir, shape):
    with pytest.raises(InputError, match="too small to segment|holds no plane"):
        _segment(tiny_model_dir, np.zeros(shape, np.uint16))
    path = tmp_path / "dot.tif"
    tifffile.imwrite(path, np.zeros((1, 1), np.uint16))
    with pytest.raises(InputError) as info:
        _segment_file(tiny_model_dir, path)
    assert str(info.value) == "image planes of 1x1 px are too small to segment"


def test_signed_int16_with_negatives_equals_the_shifted_image(tiny_model_dir):
    signed = RNG.integers(-2000, 2000, (48, 48)).astype(np.int16)
    shifted = (signed.astype(np.int32) + 32768).astype(np.uint16)
    a, _ = _segment(tiny_model_dir, signed)
    b, _ = _segment(tiny_model_dir, shifted)
    np.testing.assert_array_equal(a.dendrite, b.dendrite)
    np.testing.assert_array_equal(a.spines, b.spines)


def test_boolean_image_segments_like_0_1_bytes(tmp_path, tiny_model_dir):
    mask = RNG.random((48, 48)) > 0.7
    a, _ = _segment(tiny_model_dir, mask)
    b, _ = _segment(tiny_model_dir, mask.astype(np.uint8))
    np.testing.assert_array_equal(a.dendrite, b.dendrite)
    np.testing.assert_array_equal(a.spines, b.spines)
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, mask)
    stack, c = _segment_file(tiny_model_dir, path)
    assert stack.dtype == bool
    np.testing.assert_array_equal(c.spines, a.spines)


def test_stack_larger_than_memory_is_read_plane_by_plane(tmp_path, tiny_model_dir, monkeypatch):
    data = RNG.integers(0, 3000, (3, 48, 48)).astype(np.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, compression="zlib", imagej=True, metadata={"axes": "ZYX"})
    eager, eager_result = _segment_file(tiny_model_dir, path)
    # pretend the machine has less memory than 4x the stack: it is opened lazily
    monkeypatch.setattr(io.tiff_read, "physical_memory", lambda: data.nbytes * 4 - 1)
    reads: list[object] = []
    original = io.LazyArray.__getitem__

    def spy(self, key):
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(io.LazyArray, "__getitem__", spy)
    lazy, lazy_result = _segment_file(tiny_model_dir, path)
    assert not eager.lazy and lazy.lazy and isinstance(lazy.data, io.LazyArray)
    assert reads and all(isinstance(k, (int, np.integer)) for k in reads)  # one plane per read
    np.testing.assert_array_equal(lazy_result.dendrite, eager_result.dendrite)
    np.testing.assert_array_equal(lazy_result.spines, eager_result.spines)


# --- metadata ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "spacing", "log"),
    [
        ("furlong", 2.0, "ImageJ unit 'furlong' is not a length unit; its calibration is ignored"),
        ("um", 0.0, "is not usable; using 1 pixel"),
        ("um", -1.0, "is not usable; using 1 pixel"),
        ("um", "abc", "is not usable; using 1 pixel"),
    ],
)
def test_nonsense_imagej_calibration_is_ignored_and_logged(
    tmp_path, tiny_model_dir, caplog, unit, spacing, log
):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(
        path,
        _plane(shape=(2, 48, 48)),
        imagej=True,
        resolution=(10.0, 10.0),
        metadata={"axes": "ZYX", "spacing": spacing, "unit": unit},
    )
    with caplog.at_level(logging.WARNING):
        stack, result = _segment_file(tiny_model_dir, path)
    assert log in caplog.text
    assert stack.voxel_size_um == (1.0, 1.0, 1.0) and stack.voxel_size_source == "none"
    # no usable calibration: the pixel size is estimated from the image, and said so
    from napari_dendrite_panoptic.inference import ESTIMATED, estimate_pixel_size

    expected = estimate_pixel_size(tifffile.imread(path)).pixel_size_um
    assert result.pixel_size_source == ESTIMATED
    assert result.voxel_size_um[1:] == pytest.approx((expected, expected))


def test_pixel_size_far_off_the_model_is_refused(tiny_model_dir):
    with pytest.raises(InputError, match="times the model's 0.1 µm: each 48x48 px plane"):
        _segment(tiny_model_dir, _plane(), (1.0, 1000.0, 1000.0))


# --- shapes that do not fit together ----------------------------------------------------------


def test_mismatched_shapes_in_metrics_and_training():
    with pytest.raises(InputError) as info:
        pixel_scores(np.zeros((4, 4), np.uint8), np.zeros((5, 5), np.uint8))
    assert (
        str(info.value) == "pixel scores: prediction shape (4, 4) differs from ground truth (5, 5)"
    )
    with pytest.raises(InputError, match="instance matching: prediction shape"):
        match_instances(np.zeros((2, 4, 4), np.int32), np.zeros((4, 4), np.int32))
    with pytest.raises(InputError) as info:
        TrainingSample(
            np.zeros((64, 64), np.float32),
            np.zeros((64, 64), np.uint8),
            np.zeros((64, 60), np.int32),
            source="layers 'cell', 'cell dendrites', 'cell spines'",
        )
    assert str(info.value) == (
        "a training sample (layers 'cell', 'cell dendrites', 'cell spines') needs 2D image, "
        "dendrite and spine layers of one shape; got image (64, 64), dendrite (64, 64), "
        "spines (64, 60)"
    )


# --- model folders -----------------------------------------------------------------------------


def _broken_model(tiny_model_dir: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / f"model-{how}"
    shutil.copytree(tiny_model_dir, folder)
    if how == "missing":
        (folder / "spines.safetensors").unlink()
    elif how == "altered":
        data = bytearray((folder / "dendrites.safetensors").read_bytes())
        data[-10] ^= 0xFF
        (folder / "dendrites.safetensors").write_bytes(bytes(data))
    elif how == "architecture":
        card = json.loads((folder / "card.json").read_text())
        card["spines"]["architecture"] = "yolo_v99"
        (folder / "card.json").write_text(json.dumps(card))
    elif how == "card":
        (folder / "card.json").write_text("{ not json")
    return folder


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "is missing its weight file 'spines.safetensors'"),
        ("altered", "does not match the SHA-256 in its card: it was altered or is damaged"),
        ("architecture", "unknown architecture 'yolo_v99'; this version knows"),
        ("card", "cannot read model card"),
    ],
)
def test_broken_model_folder_stops_segment_with_one_line(
    tiny_model_dir, tmp_path, capsys, how, message
):
    folder = _broken_model(tiny_model_dir, tmp_path, how)
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, _plane())
    code = main(["segment", str(image), "--out", str(tmp_path / "o"), "--model", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("dendrite-panoptic: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing written, not even the output folder
