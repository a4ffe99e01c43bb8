import json

import numpy as np
import pytest

from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.io import read_tiff


@pytest.fixture
def first_run(tiny_model_dir, tmp_path):
    img = tmp_path / "plane.tif"
    assert main(["sample", str(img), "--plane"]) == 0
    out = tmp_path / "run1"
    args = ["segment", str(img), "--out", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu", "--score-threshold", "0.1", "--tile-size", "256"]) == 0
    return img, out


def test_run_record_is_written_beside_the_outputs_and_into_the_tiffs(first_run, tiny_model_dir):
    img, out = first_run
    record = json.loads((out / "plane_run.json").read_text())
    assert record["plugin"] == "napari-dendrite-panoptic"
    assert record["model"]["folder"] == str(tiny_model_dir.resolve())
    assert len(record["model"]["weights_sha256"]["spines"]) == 64
    params = record["parameters"]
    assert params["spine_score_threshold"] == 0.1 and params["tile_size"] == 256
    assert params["device_used"] == "cpu"
    assert record["pixel_size"] == {"used_um": [1.0, 0.1, 0.1], "source": "image metadata"}
    assert record["input"]["shape"] == [384, 384] and record["input"]["dtype"] == "uint16"
    assert record["input"]["voxel_size_source"] == "imagej"
    assert {"python", "torch", "torchvision"} <= set(record["software"])
    assert record["duration_s"] > 0
    stored = read_tiff(out / "plane_spines.tif").metadata
    assert stored["model"]["weights_sha256"] == record["model"]["weights_sha256"]
    assert stored["parameters"]["spine_score_threshold"] == 0.1


def test_from_run_reproduces_the_outputs_bit_for_bit(first_run, tmp_path):
    img, out = first_run
    args = ["segment", str(img), "--out", str(tmp_path / "run2"), "--from-run"]
    assert main([*args, str(out / "plane_run.json")]) == 0
    for name in ("plane_dendrite.tif", "plane_spines.tif"):
        a = np.asarray(read_tiff(out / name).data)
        b = np.asarray(read_tiff(tmp_path / "run2" / name).data)
        np.testing.assert_array_equal(a, b)
    assert (out / "plane_spines.csv").read_text() == (
        tmp_path / "run2" / "plane_spines.csv"
    ).read_text()


def test_from_run_refuses_another_model(first_run, tmp_path, capsys):
    img, out = first_run
    record = json.loads((out / "plane_run.json").read_text())
    record["model"]["weights_sha256"]["spines"] = "0" * 64
    bad = tmp_path / "bad_run.json"
    bad.write_text(json.dumps(record))
    assert main(["segment", str(img), "--out", str(tmp_path / "r3"), "--from-run", str(bad)]) == 2
    assert "is not the one this run used" in capsys.readouterr().err


def test_a_record_from_before_a_step_existed_reruns_without_it(first_run):
    from napari_dendrite_panoptic.inference import config_from_record

    _, out = first_run
    record = json.loads((out / "plane_run.json").read_text())
    assert record["parameters"]["dendrite_depth_tolerance"] == 0.5  # recorded now
    old = json.loads(json.dumps(record))
    for later in ("dendrite_depth_tolerance", "spine_focus_fraction", "test_time_flips"):
        del old["parameters"][later]
    config = config_from_record(old)
    assert config.dendrite_depth_tolerance is None and config.spine_focus_fraction == 0.0
    assert config.test_time_flips is False
    assert config_from_record(record).dendrite_depth_tolerance == 0.5
