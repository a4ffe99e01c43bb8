"""Engine TIFF I/O: voxel sizes, axes, lazy reading, errors, labels and atomic writes (no napari)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic import io
from napari_dendrite_panoptic.errors import InputError, OutputExistsError, TiffReadError

RNG = np.random.default_rng(0)


def _zcyx(dtype=np.uint16) -> np.ndarray:
    return RNG.integers(0, 4000, size=(3, 2, 12, 10)).astype(dtype)


def test_imagej_3d_two_channels_round_trip(tmp_path: Path) -> None:
    data = _zcyx()
    path = tmp_path / "cell.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.25),
        metadata={"axes": "ZCYX", "spacing": 1.5, "unit": "micron", "Labels": ["GFP", "RFP"] * 3},
    )
    stack = io.read_tiff(path)
    assert stack.axes == "CZYX"
    assert stack.shape == (2, 3, 12, 10)
    assert stack.dtype == np.uint16
    np.testing.assert_array_equal(stack.data, data.transpose(1, 0, 2, 3))
    assert stack.voxel_size_um == pytest.approx((1.5, 0.25, 0.2))
    assert stack.voxel_size_source == "imagej"
    assert stack.channel_names == ("GFP", "RFP")
    assert not stack.lazy
    assert stack.path == path
    zyx = io.stack_zyx(stack, channel=1)
    np.testing.assert_array_equal(zyx, data[:, 1])


def test_imagej_2d_gets_z_of_one(tmp_path: Path) -> None:
    plane = RNG.random((16, 20), dtype=np.float32)
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, plane, imagej=True, resolution=(10.0, 10.0), metadata={"unit": "um"})
    stack = io.read_tiff(path)
    assert stack.axes == "YX"
    assert stack.channel_names == ()
    assert stack.voxel_size_um == pytest.approx((1.0, 0.1, 0.1))
    assert io.stack_zyx(stack).shape == (1, 16, 20)


def test_imagej_nanometre_unit_converted_to_um(tmp_path: Path) -> None:
    path = tmp_path / "nm.tif"
    tifffile.imwrite(
        path,
        _zcyx()[:, 0],
        imagej=True,
        resolution=(1 / 130.0, 1 / 130.0),
        metadata={"axes": "ZYX", "spacing": 500.0, "unit": "nm"},
    )
    stack = io.read_tiff(path)
    assert stack.voxel_size_um == pytest.approx((0.5, 0.13, 0.13))
    assert stack.voxel_size_source == "imagej"


def test_zero_spacing_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "zero.tif"
    tifffile.imwrite(
        path,
        _zcyx()[:, 0],
        imagej=True,
        resolution=(5.0, 5.0),
        metadata={"axes": "ZYX", "spacing": 0.0, "unit": "um"},
    )
    stack = io.read_tiff(path)
    assert stack.voxel_size_um == (1.0, 1.0, 1.0)
    assert stack.voxel_size_source == "none"


def test_ome_units_and_channel_names(tmp_path: Path) -> None:
    data = _zcyx().transpose(1, 0, 2, 3)  # C, Z, Y, X
    path = tmp_path / "cell.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 200.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 0.2,
            "PhysicalSizeZ": 0.8,
            "Channel": {"Name": ["dendrite", "spine"]},
        },
    )
    stack = io.read_tiff(path)
    assert stack.axes == "CZYX"
    np.testing.assert_array_equal(stack.data, data)
    assert stack.voxel_size_um == pytest.approx((0.8, 0.2, 0.2))
    assert stack.voxel_size_source == "ome"
    assert stack.channel_names == ("dendrite", "spine")


def test_resolution_tags_in_cm_and_no_calibration(tmp_path: Path) -> None:
    path = tmp_path / "res.tif"
    tifffile.imwrite(
        path, _zcyx()[0, 0], resolution=(25000.0, 25000.0), resolutionunit="CENTIMETER"
    )
    stack = io.read_tiff(path)
    assert stack.voxel_size_um == pytest.approx((1.0, 0.4, 0.4))
    assert stack.voxel_size_source == "resolution"
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, _zcyx()[:, 0], photometric="minisblack")
    stack = io.read_tiff(bare)
    assert (stack.voxel_size_um, stack.voxel_size_source) == ((1.0, 1.0, 1.0), "none")


def test_unknown_leading_axis_becomes_z(tmp_path: Path) -> None:
    data = _zcyx()[:, 0]
    path = tmp_path / "pages.tif"
    tifffile.imwrite(
        path, data, shaped=False, photometric="minisblack"
    )  # tifffile sees 3 generic pages ("IYX")
    stack = io.read_tiff(path)
    assert stack.axes == "ZYX"
    np.testing.assert_array_equal(stack.data, data)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_lazy_read_matches_eager(tmp_path: Path, compression: str | None) -> None:
    data = RNG.integers(0, 255, size=(2, 3, 2, 16, 16)).astype(np.uint8)  # T, Z, C, Y, X
    path = tmp_path / "lazy.tif"
    tifffile.imwrite(path, data, compression=compression, tile=(16, 16), metadata={"axes": "TZCYX"})
    expected = data.transpose(0, 2, 1, 3, 4)
    stack = io.read_tiff(path, lazy=True)
    assert stack.lazy
    assert stack.axes == "TCZYX"
    assert type(stack.data) is not np.ndarray
    assert stack.data.shape == expected.shape
    np.testing.assert_array_equal(np.asarray(stack.data), expected)
    np.testing.assert_array_equal(stack.data[1, :, 2, 3:9, -1], expected[1, :, 2, 3:9, -1])
    zyx = io.stack_zyx(stack, channel=1, time=1)
    assert type(zyx) is not np.ndarray
    np.testing.assert_array_equal(np.asarray(zyx), expected[1, 1])


def test_grey_rgb_is_one_channel_and_colour_rgb_is_refused(tmp_path: Path) -> None:
    grey = RNG.integers(0, 255, size=(8, 9, 1)).astype(np.uint8)
    path = tmp_path / "grey_rgb.tif"
    tifffile.imwrite(path, np.repeat(grey, 3, axis=2), photometric="rgb")
    stack = io.read_tiff(path)
    assert stack.axes == "YX"
    np.testing.assert_array_equal(stack.data, grey[..., 0])
    colour = tmp_path / "colour.tif"
    tifffile.imwrite(colour, RNG.integers(0, 255, (8, 9, 3)).astype(np.uint8), photometric="rgb")
    with pytest.raises(TiffReadError, match="colour RGB") as info:
        io.read_tiff(colour)
    assert str(colour) in str(info.value)


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize(("planes", "dtype"), [(3, np.uint16), (4, np.float32)])
def test_deep_planes_saved_without_axes_are_z_planes_not_colour(
    tmp_path: Path, lazy: bool, planes: int, dtype: type
) -> None:
    # tifffile marks a (3|4, Y, X) array saved without axes metadata as planar RGB(A)
    stack_zyx = (RNG.random((planes, 12, 10)) * 4000).astype(dtype)
    path = tmp_path / "numpy_stack.tif"
    tifffile.imwrite(path, stack_zyx)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "SYX" and int(tif.pages.first.photometric) == 2
    stack = io.read_tiff(path, lazy=lazy)
    assert (stack.axes, stack.lazy) == ("ZYX", lazy)
    np.testing.assert_array_equal(np.asarray(stack.data), stack_zyx)


def test_8bit_planes_marked_colour_are_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "planes8.tif"
    tifffile.imwrite(path, RNG.integers(0, 255, (3, 12, 10)).astype(np.uint8))
    with pytest.raises(TiffReadError, match="colour RGB") as info:
        io.read_tiff(path)
    assert "If its 3 planes are Z planes or channels, save it with axes metadata" in str(info.value)


def _make_bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.tif"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind in ("truncated", "cut_header"):
        whole = tmp_path / "whole.tif"
        tifffile.imwrite(whole, _zcyx(), imagej=True, metadata={"axes": "ZCYX"})
        content = whole.read_bytes()
        path.write_bytes(content[: 3 if kind == "cut_header" else len(content) // 2])
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    elif kind == "text":
        path.write_text("x,y\n1,2\n")
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("missing", "does not exist"),
        ("empty", "empty"),
        ("truncated", "incomplete or damaged"),
        ("cut_header", "incomplete"),
        ("png", "not a TIFF image (it looks like a PNG image)"),
        ("text", "not a TIFF image"),
    ],
)
def test_read_errors_name_the_file(tmp_path: Path, kind: str, words: str) -> None:
    path = _make_bad_file(tmp_path, kind)
    with pytest.raises(TiffReadError) as info:
        io.read_tiff(path)
    message = str(info.value)
    assert message.startswith(f"Cannot read '{path}': ")
    assert words in message


@pytest.mark.parametrize(
    ("max_label", "dtype"), [(255, np.uint8), (256, np.uint16), (70_000, np.uint32)]
)
def test_labels_writer_dtype_voxel_size_and_metadata(
    tmp_path: Path, max_label: int, dtype: type
) -> None:
    labels = np.zeros((3, 10, 12), dtype=np.int64)
    labels[1, 2:5, 3:7] = max_label
    labels[2, 6:9, 1:4] = 1
    record = {"model": "tiny", "version": 2, "classes": ["dendrite", "spine"], "tta": False}
    path = io.write_labels_tiff(tmp_path / "out" / "labels.tif", labels, (0.8, 0.13, 0.13), record)
    stack = io.read_tiff(path)
    assert stack.dtype == dtype
    assert stack.axes == "ZYX"
    np.testing.assert_array_equal(stack.data, labels)
    assert stack.voxel_size_um == pytest.approx((0.8, 0.13, 0.13))
    assert stack.voxel_size_source in ("imagej", "resolution")
    assert stack.metadata == record


def test_labels_writer_refuses_floats_and_negative_labels(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must be integers"):
        io.write_labels_tiff(tmp_path / "f.tif", np.zeros((4, 4), np.float32), (1, 1, 1))
    with pytest.raises(InputError, match="smallest is -3"):
        io.write_labels_tiff(tmp_path / "n.tif", np.full((4, 4), -3), (1, 1, 1))
    assert list(tmp_path.iterdir()) == []


def test_write_tiff_atomic_float_channels_and_no_temp_files(tmp_path: Path) -> None:
    data = RNG.random((2, 3, 8, 8), dtype=np.float32)  # C, Z, Y, X
    path = tmp_path / "sub" / "image.tif"
    io.write_tiff_atomic(path, data, (2.0, 0.5, 0.25), {"note": "µm ok"})
    io.write_tiff_atomic(path, data * 2, (2.0, 0.5, 0.25))  # overwrite in place
    assert [p.name for p in path.parent.iterdir()] == ["image.tif"]
    stack = io.read_tiff(path)
    assert stack.axes == "CZYX"
    np.testing.assert_array_equal(stack.data, data * 2)
    assert stack.voxel_size_um == pytest.approx((2.0, 0.5, 0.25))
    with pytest.raises(OutputExistsError):
        io.write_tiff_atomic(path, data, overwrite=False)
    with pytest.raises(InputError, match="JSON"):
        io.write_tiff_atomic(tmp_path / "bad.tif", data, metadata={"x": object()})
    with pytest.raises(InputError, match="Voxel size"):
        io.write_tiff_atomic(tmp_path / "bad.tif", data, (0.0, 1.0, 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_imagej_info_record_survives_json(tmp_path: Path) -> None:
    path = tmp_path / "info.tif"
    record = {"provenance": {"steps": [1, 2.5, None]}}
    tifffile.imwrite(path, _zcyx()[0, 0], imagej=True, metadata={"Info": json.dumps(record)})
    assert io.read_tiff(path).metadata == record


def test_engine_imports_neither_napari_nor_qt_nor_torch() -> None:
    code = (
        "import sys, napari_dendrite_panoptic.io; "
        "bad = [m for m in ('napari', 'qtpy', 'PyQt5', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_written_files_get_normal_permissions(tmp_path):
    import os

    from napari_dendrite_panoptic.io import write_labels_tiff

    path = write_labels_tiff(tmp_path / "l.tif", np.ones((4, 4), np.uint8), (1, 1, 1))
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_atomic_writes_never_touch_the_process_umask(monkeypatch, tmp_path):
    import os

    from napari_dendrite_panoptic.core import atomic

    calls = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real_umask(m))
    path = atomic.atomic_write_text(tmp_path / "a.txt", "x")
    assert calls == []  # another thread's file is never born while the mask is 0
    assert (path.stat().st_mode & 0o777) == (0o666 & ~atomic._UMASK)
    # without /proc the mask is read by setting a private one for a moment, never 0
    monkeypatch.setattr(atomic, "_STATUS", str(tmp_path / "no such file"))
    assert atomic._read_umask() == atomic._UMASK
    assert calls and 0 not in calls


def _folder(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def test_staged_outputs_appear_together_and_replace_the_old_set(monkeypatch, tmp_path):
    import os

    from napari_dendrite_panoptic.core import atomic, atomic_write_text, staged_outputs

    out = tmp_path / "out"
    final = {k: out / f"cell_{k}.txt" for k in ("labels", "table", "run", "overlay")}
    for k, path in final.items():
        atomic_write_text(path, f"old {k}")
    moves, real_replace = [], os.replace  # (final name, is an old run record there?)
    with staged_outputs(final, prefix=".cell.", suffix=".new", record="run") as stage:
        assert stage.parent == out and stage.name.startswith(".cell.")
        for k in ("labels", "table", "run"):  # this run writes no overlay
            atomic_write_text(stage / final[k].name, f"new {k}")
        assert final["labels"].read_text() == "old labels"  # nothing moves while writing
        monkeypatch.setattr(
            os,
            "replace",
            lambda a, b: moves.append((Path(b).name, final["run"].exists())) or real_replace(a, b),
        )
    # the new set, all together; the old overlay the new run did not write is gone; the old
    # run record went before anything moved and the new one moved last; no staging folder left
    assert _folder(out) == {f"cell_{k}.txt": f"new {k}" for k in ("labels", "run", "table")}
    assert moves == [("cell_labels.txt", False), ("cell_table.txt", False), ("cell_run.txt", False)]
    mode = final["labels"].stat().st_mode & 0o777
    assert mode == 0o666 & ~atomic._UMASK


def test_staged_outputs_that_fail_midway_leave_the_old_set(tmp_path):
    from napari_dendrite_panoptic.core import atomic_write_text, staged_outputs

    out = tmp_path / "out"
    final = {k: out / f"cell_{k}.txt" for k in ("labels", "table", "run")}
    for k, path in final.items():
        atomic_write_text(path, f"old {k}")
    before = _folder(out)
    failing = pytest.raises(OSError, match="No space left")
    with failing, staged_outputs(final, prefix=".cell.", suffix=".new", record="run") as stage:
        atomic_write_text(stage / final["labels"].name, "new labels")
        raise OSError(28, "No space left on device")  # the table's write fails
    assert _folder(out) == before  # old outputs unchanged, no hidden staging folder left
    # a first run that fails leaves an empty folder
    fresh = {k: tmp_path / "fresh" / p.name for k, p in final.items()}
    with pytest.raises(OSError), staged_outputs(fresh, prefix=".cell.") as stage:
        atomic_write_text(stage / "cell_labels.txt", "new labels")
        raise OSError("disk gone")
    assert list((tmp_path / "fresh").iterdir()) == []


def test_staged_outputs_without_their_run_record_move_nothing(tmp_path):
    from napari_dendrite_panoptic.core import atomic_write_text, staged_outputs

    out = tmp_path / "out"
    final = {k: out / f"cell_{k}.txt" for k in ("labels", "run")}
    for k, path in final.items():
        atomic_write_text(path, f"old {k}")
    before = _folder(out)
    refused = pytest.raises(RuntimeError, match="run record 'cell_run.txt' was not written")
    with refused, staged_outputs(final, prefix=".cell.", record="run") as stage:
        atomic_write_text(stage / final["labels"].name, "new labels")  # no record written
    assert _folder(out) == before  # the old set, old record included; no staging folder


def test_physical_memory_comes_from_psutil(monkeypatch):
    import psutil

    from napari_dendrite_panoptic.io import physical_memory

    class _Memory:
        total = 123 * 1024**3

    monkeypatch.setattr(psutil, "virtual_memory", lambda: _Memory())
    assert physical_memory() == 123 * 1024**3
