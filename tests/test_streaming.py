"""Stacks larger than memory: planes go to disk as they finish, outputs are written plane by plane,
and the result is the same as an in-memory run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.inference import DiskPlaneSink, InferenceConfig, iter_predict, predict
from napari_dendrite_panoptic.io import PlaneStream, read_tiff, write_labels_tiff


def _cfg(model, **kw) -> InferenceConfig:
    return InferenceConfig(model=str(model), device="cpu", spine_score_threshold=0.0, **kw)


@pytest.mark.parametrize("mode", ["planes", "slabs"])
def test_plane_sink_gets_the_same_planes_and_table_as_an_in_memory_run(
    tiny_model_dir, small_stack, mode
):
    voxel = small_stack.voxel_size_um
    # the random-weight model's dendrite probability is ~0.4 here: this threshold gives a
    # dendrite in some planes, so the depth trim has something to do
    whole = predict(
        small_stack.image, voxel, _cfg(tiny_model_dir, dendrite_threshold=0.4, stack_mode=mode)
    )
    untrimmed = predict(
        small_stack.image,
        voxel,
        _cfg(
            tiny_model_dir,
            dendrite_threshold=0.4,
            spine_focus_fraction=0,
            dendrite_depth_tolerance=None,
            stack_mode=mode,
        ),
    )
    shape = small_stack.image.shape
    received: list[int] = []

    class Sink:  # keeps its planes, so the engine can trim them to their in-focus planes
        dendrite = np.zeros(shape, np.uint8)
        spines = np.zeros(shape, np.uint32)

        def __call__(self, z, dendrite, spines):
            received.append(z)
            self.dendrite[z], self.spines[z] = dendrite, spines

        def written(self, which):
            return getattr(self, which)

    sink = Sink()
    cfg = _cfg(tiny_model_dir, dendrite_threshold=0.4, stack_mode=mode)
    events = list(iter_predict(small_stack.image, voxel, cfg, plane_sink=sink))
    streamed = events[-1]
    assert streamed.dendrite is None and streamed.spines is None
    assert received == list(range(shape[0]))
    np.testing.assert_array_equal(sink.dendrite, whole.dendrite)
    np.testing.assert_array_equal(sink.spines, whole.spines)
    assert whole.spines.max() > 0  # the comparison covers spines, not only empty planes
    # the trims changed something here, so the comparison covers them too (slabs lift each
    # spine to its planes: only the planes path has a spine focus trim)
    if mode == "planes":
        assert np.count_nonzero(untrimmed.spines) > np.count_nonzero(whole.spines)
    assert np.count_nonzero(untrimmed.dendrite) > np.count_nonzero(whole.dendrite)
    for key, column in whole.table.items():
        np.testing.assert_allclose(streamed.table[key], column, rtol=1e-9)


def test_plane_streams_are_written_with_the_smallest_label_dtype(tmp_path):
    labels = np.zeros((3, 8, 9), np.uint32)
    labels[1, 2:4, 2:4] = 300

    def planes():
        yield from labels

    path = write_labels_tiff(
        tmp_path / "s.tif", PlaneStream(labels.shape, labels.dtype, planes, 300), (0.5, 0.1, 0.1)
    )
    back = read_tiff(path)
    assert back.dtype == np.uint16 and back.voxel_size_um == pytest.approx((0.5, 0.1, 0.1))
    np.testing.assert_array_equal(np.asarray(back.data), labels)


def test_planes_on_disk_are_read_and_written_back_one_at_a_time(tmp_path):
    stack = np.arange(3 * 4 * 5, dtype=np.uint32).reshape(3, 4, 5)
    with DiskPlaneSink(tmp_path, "x", stack.shape) as sink:
        for z, plane in enumerate(stack):
            sink(z, (plane % 2).astype(np.uint8), plane)
        with sink.written("spines") as planes:
            assert planes.shape == stack.shape and planes.dtype == np.uint32
            np.testing.assert_array_equal(planes[1], stack[1])
            changed = planes[2]
            changed[0] = 0
            planes[2] = changed
            with pytest.raises(IndexError, match="plane 3 of a stack of 3"):
                planes[3]
        expected = stack.copy()
        expected[2, 0] = 0
        np.testing.assert_array_equal(np.stack(list(sink.stream("spines").planes())), expected)


def test_sink_refuses_planes_out_of_order_and_cleans_up(tmp_path):
    with DiskPlaneSink(tmp_path, "x", (2, 4, 4)) as sink:
        sink(0, np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint32))
        with pytest.raises(ValueError, match="plane 0 was expected|plane 1 was expected"):
            sink(0, np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint32))
        with pytest.raises(ValueError, match="1 of 2 planes"):
            sink.stream("spines")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["auto", "planes"])
def test_low_memory_segment_writes_the_same_labels(tiny_model_dir, tmp_path, mode):
    stack = tmp_path / "in" / "stack.tif"
    assert main(["sample", str(stack)]) == 0
    common = ["--model", str(tiny_model_dir), "--device", "cpu", "--score-threshold", "0"]
    common += ["--stack-mode", mode]  # planes: both depth trims run on the files on disk
    common += ["--dendrite-threshold", "0.4"]  # some dendrite from the random-weight model
    assert main(["segment", str(stack), "--out", str(tmp_path / "mem"), *common]) == 0
    low = tmp_path / "low"
    assert main(["segment", str(stack), "--out", str(low), *common, "--low-memory"]) == 0
    for role in ("dendrite", "spines"):
        a = np.asarray(read_tiff(tmp_path / "mem" / f"stack_{role}.tif").data)
        assert a.any()  # the comparison covers this role's trim, not only empty planes
        b = read_tiff(low / f"stack_{role}.tif")
        np.testing.assert_array_equal(np.asarray(b.data), a)
        assert b.voxel_size_um[0] == pytest.approx(0.5)
    with open(low / "stack_spines.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(np.unique(a)) - 1
    record = json.loads((low / "stack_run.json").read_text())
    assert record["low_memory"] is True
    # both runs record the same hash of each plane written (fine-tune --only-edited reads them)
    same = json.loads((tmp_path / "mem" / "stack_run.json").read_text())["label_plane_hashes"]
    assert record["label_plane_hashes"] == same
    from napari_dendrite_panoptic.data import plane_hashes

    assert same["spines"] == plane_hashes(np.asarray(read_tiff(low / "stack_spines.tif").data))
    names = sorted(p.name for p in low.iterdir() if p.name != ".stack.lock")
    assert names == ["stack_dendrite.tif", "stack_run.json", "stack_spines.csv", "stack_spines.tif"]


def test_releasing_planes_reads_the_same_planes_from_a_lazy_file(tmp_path, small_stack):
    from napari_dendrite_panoptic.inference import ReleasingPlanes
    from napari_dendrite_panoptic.io import stack_zyx, write_tiff_atomic

    path = write_tiff_atomic(tmp_path / "s.tif", small_stack.image, small_stack.voxel_size_um)
    volume = stack_zyx(read_tiff(path, lazy=True))
    planes = ReleasingPlanes(volume)
    assert planes._map is None  # read plane by plane, not memory-mapped (no bus error)
    assert planes.shape == small_stack.image.shape and planes.ndim == 3
    for z in range(planes.shape[0]):
        np.testing.assert_array_equal(planes[z], small_stack.image[z])


def test_a_sink_that_cannot_give_its_planes_back_is_reported_only_when_a_trim_was_asked(
    tiny_model_dir, small_stack
):
    voxel = small_stack.voxel_size_um

    def sink(z, dendrite, spines):  # keeps nothing: the stack trims cannot run
        return None

    def notices(**kw):
        events = list(
            iter_predict(small_stack.image, voxel, _cfg(tiny_model_dir, **kw), plane_sink=sink)
        )
        return events[-1].parameters["warnings"]

    assert any("not trimmed" in w for w in notices())
    assert not notices(spine_focus_fraction=0, dendrite_depth_tolerance=None)
