import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.io import read_tiff


def test_sample_then_segment_writes_three_files_per_input(tiny_model_dir, tmp_path, capsys):
    stack = tmp_path / "in" / "stack.tif"
    plane = tmp_path / "in" / "plane.tif"
    assert main(["sample", str(stack)]) == 0
    assert main(["sample", str(plane), "--plane"]) == 0
    out = tmp_path / "out"
    args = ["segment", str(stack), str(plane), "--out", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu", "--score-threshold", "0", "--overlay"]) == 0
    for stem, shape in (("stack", (12, 256, 256)), ("plane", (384, 384))):
        dend = read_tiff(out / f"{stem}_dendrite.tif")
        spines = read_tiff(out / f"{stem}_spines.tif")
        assert dend.data.shape == spines.data.shape == shape
        assert dend.dtype == np.uint8 and spines.dtype in (np.uint8, np.uint16, np.uint32)
        assert dend.voxel_size_um[1:] == pytest.approx((0.1, 0.1))
        with open(out / f"{stem}_spines.csv") as fh:
            rows = list(csv.DictReader(fh))
        size_col = "volume_um3" if len(shape) == 3 else "area_um2"
        expected = {"id", "centroid_y_px", "centroid_x_um", "size_px", size_col, "score"}
        assert rows == [] or expected <= set(rows[0])
        assert len(rows) == len(np.unique(np.asarray(spines.data))) - 1
        assert (out / f"{stem}_overlay.png").stat().st_size > 1000


def test_existing_outputs_are_kept_without_overwrite(tiny_model_dir, tmp_path, capsys):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, np.zeros((64, 64), np.uint16))
    (tmp_path / "out").mkdir()
    kept = tmp_path / "out" / "a_spines.csv"
    kept.write_text("precious")
    args = ["segment", str(img), "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir)]
    assert main(args) == 1
    assert "exists already; pass --overwrite" in capsys.readouterr().err
    assert kept.read_text() == "precious"
    assert main([*args, "--overwrite"]) == 0
    assert kept.read_text().startswith("id,")


def test_bad_input_gives_one_line_reason_and_nonzero_exit(tiny_model_dir, tmp_path):
    fake = tmp_path / "notes.tif"
    fake.write_text("this is not an image")
    cmd = [sys.executable, "-m", "napari_dendrite_panoptic.cli", "segment", str(fake)]
    cmd += ["--out", str(tmp_path / "o"), "--model", str(tiny_model_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "notes.tif" in lines[0] and "Traceback" not in proc.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_dendrite_panoptic.cli",
            "segment",
            str(fake),
            "--out",
            "o",
            "--model",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "is not a model folder" in missing.stderr


def test_stack_trims_can_be_switched_off_and_bad_values_are_refused(
    tiny_model_dir, tmp_path, capsys
):
    import json

    stack = tmp_path / "in" / "stack.tif"
    assert main(["sample", str(stack)]) == 0
    args = ["segment", str(stack), "--model", str(tiny_model_dir), "--device", "cpu"]
    args += ["--score-threshold", "0", "--dendrite-threshold", "0.4", "--stack-mode", "planes"]
    out = {k: tmp_path / k for k in ("on", "off")}
    assert main([*args, "--out", str(out["on"])]) == 0
    off = ["--dendrite-depth-tolerance", "off", "--spine-focus-fraction", "0"]
    assert main([*args, "--out", str(out["off"]), *off]) == 0
    params = json.loads((out["off"] / "stack_run.json").read_text())["parameters"]
    assert params["dendrite_depth_tolerance"] is None and params["spine_focus_fraction"] == 0
    assert params["test_time_flips"] is False  # the default
    kept = {k: np.count_nonzero(read_tiff(v / "stack_spines.tif").data) for k, v in out.items()}
    assert kept["off"] > kept["on"]  # without the focus trim spines keep their blurred planes
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "bad"), "--dendrite-depth-tolerance", "lots"])
    assert "expected a number of planes or 'off'" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "bad"), "--spine-focus-fraction", "2"]) == 2
    assert "spine_focus_fraction must be between 0 and 1" in capsys.readouterr().err


def test_evaluate_files_prints_known_scores(tmp_path, capsys):
    import json

    from napari_dendrite_panoptic.io import write_labels_tiff

    truth = np.zeros((40, 40), np.uint16)
    pred = np.zeros((40, 40), np.uint16)
    for i, (y, x) in enumerate([(2, 2), (2, 20), (20, 2), (20, 20)], start=1):
        truth[y : y + 4, x : x + 4] = i
    for i, (y, x) in enumerate([(2, 2), (2, 20), (20, 2), (33, 33)], start=1):
        pred[y : y + 4, x : x + 4] = i
    write_labels_tiff(tmp_path / "p.tif", pred, (1, 0.1, 0.1))
    write_labels_tiff(tmp_path / "t.tif", truth, (1, 0.1, 0.1))
    args = ["evaluate", "--pred-spines", str(tmp_path / "p.tif"), "--truth-spines"]
    assert main([*args, str(tmp_path / "t.tif"), "--json", str(tmp_path / "s.json")]) == 0
    assert "instance_f1              0.7500" in capsys.readouterr().out
    scores = json.loads((tmp_path / "s.json").read_text())
    (only,) = scores.values()
    assert only["instance_tp"] == 3 and only["pixel_iou"] == pytest.approx(48 / 80)


def test_evaluate_keeps_an_existing_json_without_overwrite(tmp_path, capsys):
    from napari_dendrite_panoptic.io import write_labels_tiff

    labels = np.zeros((40, 40), np.uint16)
    labels[2:6, 2:6] = 1
    write_labels_tiff(tmp_path / "p.tif", labels, (1, 0.1, 0.1))
    kept = tmp_path / "s.json"
    kept.write_text("precious")
    args = ["evaluate", "--pred-spines", str(tmp_path / "p.tif")]
    args += ["--truth-spines", str(tmp_path / "p.tif"), "--json", str(kept)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{kept} exists already; pass --overwrite to replace it" in err
    assert kept.read_text() == "precious"
    assert main([*args, "--overwrite"]) == 0
    assert kept.read_text().startswith("{")


def test_evaluate_refuses_match_numbers_out_of_range(tmp_path, capsys):
    from napari_dendrite_panoptic.io import write_labels_tiff

    labels = np.zeros((40, 40), np.uint16)
    labels[2:6, 2:6] = 1
    write_labels_tiff(tmp_path / "p.tif", labels, (1, 0.1, 0.1))
    args = ["evaluate", "--pred-spines", str(tmp_path / "p.tif")]
    args += ["--truth-spines", str(tmp_path / "p.tif"), "--json", str(tmp_path / "s.json")]
    for flag, value, words in (
        ("--iou", "0", "--iou must be more than 0 and less than 1, not 0.0"),
        ("--iou", "1", "--iou must be more than 0 and less than 1, not 1.0"),
        ("--distance-um", "0", "--distance-um must be more than 0, not 0.0"),
        ("--distance-um", "-1", "--distance-um must be more than 0, not -1.0"),
    ):
        assert main([*args, flag, value]) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_sample_keeps_existing_ground_truth_without_overwrite(tmp_path, capsys):
    out = tmp_path / "s.tif"
    kept = tmp_path / "s_gt_spines.tif"
    kept.write_text("precious")
    assert main(["sample", str(out), "--plane", "--ground-truth"]) == 2
    assert f"{kept} exists already; pass --overwrite" in capsys.readouterr().err
    assert kept.read_text() == "precious"
    assert not out.exists() and not (tmp_path / "s_gt_dendrite.tif").exists()
    assert main(["sample", str(out), "--plane", "--ground-truth", "--overwrite"]) == 0
    assert read_tiff(kept).data.shape == read_tiff(out).data.shape


def test_train_refuses_numbers_out_of_range(tmp_path, capsys):
    args = ["train", "--out", str(tmp_path / "m"), "--work", str(tmp_path / "w")]
    args += ["--data", "generator", "--steps", "1", "--crop", "64", "--batch-size", "1"]
    for flag, value, words in (
        ("--max-minutes", "0", "--max-minutes must be more than 0, not 0.0"),
        ("--max-minutes", "-2", "--max-minutes must be more than 0, not -2.0"),
        ("--checkpoint-every", "0", "checkpoint_every must be >= 1, not 0"),
        ("--pixel-size", "0", "pixel_size_um must be > 0, not 0.0"),
        ("--warmup", "-1", "warmup_steps must be >= 0, not -1"),
    ):
        assert main([*args, flag, value]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0]
    assert not (tmp_path / "m").exists() and not (tmp_path / "w").exists()


def test_evaluate_model_takes_the_dendrite_threshold(tiny_model_dir, tmp_path, capsys):
    import json

    recall = {}
    for threshold in (0.0, 1.0):
        out = tmp_path / f"t{threshold}.json"
        args = ["evaluate", "--model", str(tiny_model_dir), "--device", "cpu", "--generator", "1"]
        assert main([*args, "--dendrite-threshold", str(threshold), "--json", str(out)]) == 0
        ((_, scores),) = json.loads(out.read_text()).items()
        recall[threshold] = scores["dendrite_recall"]
    # every pixel's probability is >= 0, and (almost) none reaches 1
    assert recall[0.0] == 1.0 and recall[1.0] < 0.5
    args = ["evaluate", "--model", str(tiny_model_dir), "--generator", "1"]
    assert main([*args, "--dendrite-threshold", "1.5"]) == 2
    assert "dendrite_threshold must be between 0 and 1" in capsys.readouterr().err


def test_train_fine_tunes_and_writes_a_model_folder_segment_accepts(tiny_model_dir, tmp_path):
    from napari_dendrite_panoptic.models import load_models

    out, work = tmp_path / "finetuned", tmp_path / "work"
    args = ["train", "--out", str(out), "--work", str(work), "--data", "generator"]
    args += ["--steps", "3", "--until", "2", "--crop", "64", "--batch-size", "1"]
    assert main([*args, "--base-model", str(tiny_model_dir), "--name", "mine"]) == 0
    card = load_models(out, "cpu").card
    assert card.name == "mine" and card.provenance["steps"] == 2
    assert card.metrics == {}  # stopped by --until: no validation of a half-trained model
    assert card.provenance["base_model"] == str(tiny_model_dir)
    # batches drawn by the planned workers on this CPU (two, or none on a 1-core machine)
    config = card.provenance["config"]
    assert config["workers"] == (2 if (os.cpu_count() or 1) >= 2 else 0)
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, np.zeros((64, 64), np.uint16))
    assert main(["segment", str(img), "--out", str(tmp_path / "o"), "--model", str(out)]) == 0
    # the same output folder again is refused rather than overwritten
    assert main([*args, "--base-model", str(tiny_model_dir)]) == 2


def test_train_to_the_end_records_validation_scores(tiny_model_dir, tmp_path):
    from napari_dendrite_panoptic.models import load_models

    args = ["train", "--out", str(tmp_path / "m"), "--work", str(tmp_path / "w"), "--data"]
    args += ["generator", "--steps", "1", "--crop", "64", "--batch-size", "1", "--validate", "1"]
    assert main([*args, "--base-model", str(tiny_model_dir)]) == 0
    scores = load_models(tmp_path / "m", "cpu").card.metrics["validation_generator_2d"]
    assert scores["images"] == 1 and 0.0 <= scores["dendrite_iou"] <= 1.0
    prints = load_models(tmp_path / "m", "cpu").card.provenance["data_fingerprints"]
    from napari_dendrite_panoptic import __version__

    assert prints == {"generator": f"napari_dendrite_panoptic.synthetic {__version__}"}


def test_train_with_unknown_source_is_refused(tmp_path, capsys):
    args = [
        "train",
        "--out",
        str(tmp_path / "m"),
        "--work",
        str(tmp_path / "w"),
        "--data",
        "imagenet",
    ]
    assert main(args) == 2
    assert "unknown source 'imagenet'" in capsys.readouterr().err


def test_train_data_mix_is_read_or_refused_by_name():
    from napari_dendrite_panoptic.data.mix import parse_mix
    from napari_dendrite_panoptic.errors import DendritePanopticError

    assert parse_mix("generator:0.4, smirnov") == [("generator", 0.4), ("smirnov", 1.0)]
    with pytest.raises(DendritePanopticError, match="cannot read the weight in 'yolo11:lots'"):
        parse_mix("generator:0.5,yolo11:lots")
