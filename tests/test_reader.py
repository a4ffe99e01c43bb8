"""napari reader and writer: layer names, scale, notifications, and round trips via the viewer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic import _reader, _writer, io
from napari_dendrite_panoptic.errors import TiffReadError

PLUGIN = "napari-dendrite-panoptic"


def _two_channel_file(path: Path) -> np.ndarray:
    data = np.random.default_rng(1).integers(0, 4000, size=(3, 2, 12, 10)).astype(np.uint16)
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.25),
        metadata={"axes": "ZCYX", "spacing": 1.5, "unit": "um", "Labels": ["GFP", "RFP"] * 3},
    )
    return data


@pytest.mark.parametrize("name", ["image.png", "notes.txt", "stack.tif.zip"])
def test_get_reader_declines_other_files(tmp_path: Path, name: str) -> None:
    assert _reader.napari_get_reader(str(tmp_path / name)) is None
    assert _reader.napari_get_reader([str(tmp_path / "a.tif"), str(tmp_path / name)]) is None


def test_get_reader_accepts_tiff_names(tmp_path: Path) -> None:
    for name in ("a.tif", "b.TIFF", "c.ome.tif"):
        assert callable(_reader.napari_get_reader(str(tmp_path / name)))
    assert callable(_reader.napari_get_reader([str(tmp_path / "a.tif"), tmp_path / "b.tiff"]))


def test_two_channel_stack_gives_one_layer_per_channel(tmp_path: Path) -> None:
    path = tmp_path / "cell.tif"
    data = _two_channel_file(path)
    layers = _reader.napari_get_reader(str(path))(str(path))
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["cell GFP", "cell RFP"]
    for channel, (layer_data, kwargs, layer_type) in enumerate(layers):
        assert layer_type == "image"
        assert layer_data.shape == (3, 12, 10)
        np.testing.assert_array_equal(layer_data, data[:, channel])
        assert kwargs["scale"] == pytest.approx([1.5, 0.25, 0.2])
        assert kwargs["metadata"]["voxel_size_um"] == pytest.approx([1.5, 0.25, 0.2])
        assert kwargs["metadata"]["voxel_size_source"] == "imagej"
        assert kwargs["metadata"]["path"] == str(path)
        assert kwargs.get("units", ["µm"] * 3) == ["µm"] * 3


def test_time_series_scale_has_leading_one(tmp_path: Path) -> None:
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 3, 8, 8), np.uint8),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"axes": "TZYX", "spacing": 2.0, "unit": "um"},
    )
    [(layer_data, kwargs, _)] = _reader.read_tiff_layers(path)
    assert kwargs["name"] == "movie"
    assert layer_data.shape == (2, 3, 8, 8)
    assert kwargs["scale"] == pytest.approx([1.0, 2.0, 0.5, 0.5])


def test_missing_voxel_size_gives_scale_one_and_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(_reader, "_show_warning", shown.append)
    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, np.zeros((8, 9), np.uint16))
    [(_, kwargs, _)] = _reader.read_tiff_layers(str(path))
    assert kwargs["scale"] == [1.0, 1.0]
    assert "units" not in kwargs
    assert len(shown) == 1
    assert "No voxel size was stored in 'bare.tif'" in shown[0]


def test_what_the_reader_chose_is_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(_reader, "_show_warning", shown.append)
    planes = tmp_path / "planes.tif"  # tifffile marks a (3, Y, X) uint16 array planar RGB
    tifffile.imwrite(planes, np.arange(3 * 8 * 9, dtype=np.uint16).reshape(3, 8, 9))
    [(data, kwargs, _)] = _reader.read_tiff_layers(str(planes))
    assert data.shape == (3, 8, 9) and len(kwargs["scale"]) == 3
    assert "'planes.tif' is marked RGB, but its 3 uint16 samples" in shown[0]
    assert "reading them as Z planes" in shown[0]
    series = tmp_path / "series.tif"
    with tifffile.TiffWriter(series) as tif:
        tif.write(np.zeros((8, 9), np.uint16), photometric="minisblack")
        tif.write(np.ones((4, 16, 18), np.uint16), photometric="minisblack")
    shown.clear()
    [(data, _, _)] = _reader.read_tiff_layers(str(series))
    assert data.shape == (8, 9)
    assert "'series.tif' holds 2 image series; reading the first" in shown[0]
    assert "series 2 is larger" in shown[0]


def test_reader_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.tif"
    path.write_bytes(b"not a tiff at all")
    with pytest.raises(TiffReadError, match=r"Cannot read '.*broken\.tif': the file is not"):
        _reader.read_tiff_layers(str(path))


def test_writer_round_trip_keeps_scale_and_metadata(tmp_path: Path) -> None:
    labels = np.zeros((3, 10, 12), dtype=np.int32)
    labels[1, 2:6, 3:8] = 7
    meta = {
        "scale": (0.8, 0.13, 0.13),
        "metadata": {"model": "tiny", "counts": np.array([1, 2]), "widget": object()},
    }
    written = _writer.write_labels(str(tmp_path / "labels"), labels, meta)
    assert written == [str(tmp_path / "labels.tif")]
    stack = io.read_tiff(written[0])
    np.testing.assert_array_equal(stack.data, labels)
    assert stack.dtype == np.uint8
    assert stack.voxel_size_um == pytest.approx((0.8, 0.13, 0.13))
    assert stack.metadata == {"model": "tiny", "counts": [1, 2]}
    [plane_path] = _writer.write_labels(str(tmp_path / "plane.TIFF"), labels[1], {"scale": [2, 2]})
    plane = io.read_tiff(plane_path)
    assert plane.axes == "YX"
    assert plane.voxel_size_um == pytest.approx((1.0, 2.0, 2.0))


def test_viewer_opens_and_saves_through_the_manifest(make_napari_viewer, tmp_path: Path) -> None:
    path = tmp_path / "cell.tif"
    _two_channel_file(path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["cell GFP", "cell RFP"]
    for layer in layers:
        np.testing.assert_allclose(layer.scale, [1.5, 0.25, 0.2])
        assert layer.data.shape == (3, 12, 10)
    labels = viewer.add_labels(
        np.arange(3 * 12 * 10, dtype=np.uint16).reshape(3, 12, 10) % 300,
        scale=layers[0].scale,
        metadata={"source": "test"},
    )
    out = tmp_path / "saved.tif"
    viewer.layers.selection = {labels}
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    stack = io.read_tiff(out)
    np.testing.assert_array_equal(stack.data, labels.data)
    assert stack.dtype == np.uint16
    assert stack.voxel_size_um == pytest.approx((1.5, 0.25, 0.2))
    assert stack.metadata == {"source": "test"}


def test_labels_segment_wrote_open_as_labels_that_know_their_edited_planes(
    make_napari_viewer, tiny_model_dir, tmp_path: Path
) -> None:
    """``segment``'s label TIFFs open as Labels layers carrying the record of what the model
    wrote, so the training dock's "Only planes I edited" works on them; a plane painted on is
    the one it finds; other TIFFs still open as images."""
    from napari_dendrite_panoptic._widgets._common import edited_planes_of
    from napari_dendrite_panoptic.cli import main

    image = tmp_path / "s.tif"
    stack = np.random.default_rng(2).integers(0, 3000, size=(3, 64, 64)).astype(np.uint16)
    io.write_tiff_atomic(image, stack, (0.5, 0.1, 0.1))
    out = tmp_path / "out"
    assert main(["segment", str(image), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    viewer = make_napari_viewer()
    [spines] = viewer.open(str(out / "s_spines.tif"), plugin=PLUGIN)
    [raw] = viewer.open(str(image), plugin=PLUGIN)
    assert type(spines).__name__ == "Labels" and type(raw).__name__ == "Image"
    np.testing.assert_allclose(spines.scale, [0.5, 0.1, 0.1])
    assert edited_planes_of(spines) == []  # as the model wrote it
    spines.data[1, 10:14, 10:14] = 99  # a spine painted on plane 1
    assert edited_planes_of(spines) == [1]
    # saved with napari and opened again, it still knows what the model wrote
    viewer.layers.selection = {spines}
    viewer.layers.save(str(tmp_path / "corrected.tif"), selected=True, plugin=PLUGIN)
    [again] = viewer.open(str(tmp_path / "corrected.tif"), plugin=PLUGIN)
    assert type(again).__name__ == "Labels" and edited_planes_of(again) == [1]
    # the training dock takes the files' layers for the image's row and trains on plane 1 only
    viewer.open(str(out / "s_dendrite.tif"), plugin=PLUGIN)
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Train on corrections")
    dock.set_row(0, "s")
    assert dock.table.row_names(0) == ("s", "s_dendrite", "s_spines", False)
    from napari_dendrite_panoptic._widgets.training_inputs import collect_training_data

    rows = dock.table.all_names()
    train, *_ = collect_training_data(viewer, rows, "spines", True, lambda row: None)
    assert train[0].planes == (1,)
