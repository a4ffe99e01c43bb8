"""Reliability and security, round two: the cases an adversarial user found (issue 31).

Each test names the item of docs/reliability.md it checks; all run on tiny data.
"""

import csv
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic.cli import batch_summary, main
from napari_dendrite_panoptic.errors import ModelError, TiffReadError
from napari_dendrite_panoptic.io import read_tiff, spreadsheet_safe, write_table_csv
from napari_dendrite_panoptic.models import ModelCard, load_models


def _plane(shape=(48, 48), dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 1000, shape).astype(dtype)


def _model_copy(tiny_model_dir: Path, tmp_path: Path, edit=None) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    if edit is not None:
        card = json.loads((folder / "card.json").read_text())
        edit(card)
        (folder / "card.json").write_text(json.dumps(card))
    load_models.cache_clear()
    return folder


# --- security --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", None, "abc"])
def test_card_without_a_hash_is_refused(tiny_model_dir, tmp_path, value):
    def edit(card):
        if value is None:
            del card["dendrites"]["sha256"]
        else:
            card["dendrites"]["sha256"] = value

    folder = _model_copy(tiny_model_dir, tmp_path, edit)
    data = bytearray((folder / "dendrites.safetensors").read_bytes())
    data[-10] ^= 0xFF  # tampered, and the card's check is switched off
    (folder / "dendrites.safetensors").write_bytes(bytes(data))
    words = "sha256" if value is None else "no valid SHA-256 .* cannot be verified are refused"
    with pytest.raises(ModelError, match=words):
        load_models(folder, "cpu")


@pytest.mark.parametrize("name", ["../outside.safetensors", "/tmp/outside.safetensors"])
def test_weights_outside_the_model_folder_are_refused(tiny_model_dir, tmp_path, name):
    folder = _model_copy(tiny_model_dir, tmp_path, lambda c: c["spines"].update(weights_file=name))
    shutil.copy(folder / "spines.safetensors", tmp_path / "outside.safetensors")
    with pytest.raises(ModelError, match="lies outside the model folder"):
        load_models(folder, "cpu")


# --- model cards: one line naming the card -----------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (
            lambda c: c["spines"]["config"].update(fpn_channels=-1),
            "fpn_channels must be a positive",
        ),
        (lambda c: c.update(pixel_size_um="0.1"), "pixel_size_um must be a number"),
        (lambda c: c["normalisation"].update(low="one"), "normalisation low and high"),
        (lambda c: c.update(inference={"spine_score_threshold": "x"}), "spine_score_threshold"),
    ],
)
def test_bad_card_values_name_the_card(tiny_model_dir, tmp_path, edit, words):
    folder = _model_copy(tiny_model_dir, tmp_path, edit)
    with pytest.raises(ModelError, match=words) as info:
        load_models(folder, "cpu")
    assert "card.json" in str(info.value)


def test_deeply_nested_card_is_a_clear_error(tiny_model_dir, tmp_path):
    folder = _model_copy(tiny_model_dir, tmp_path)
    (folder / "card.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelError, match="nested too deeply"):
        ModelCard.load(folder)


def test_wrong_shaped_weights_give_a_short_message(tiny_model_dir, tmp_path):
    folder = _model_copy(
        tiny_model_dir, tmp_path, lambda c: c["dendrites"]["config"].update(fpn_channels=8)
    )
    with pytest.raises(ModelError, match="wrong-shaped tensors") as info:
        load_models(folder, "cpu")
    assert len(str(info.value)) < 400


# --- run records (--from-run) -------------------------------------------------------------------


@pytest.fixture
def recorded_run(tiny_model_dir, tmp_path):
    image = tmp_path / "two.tif"
    planes = np.stack([_plane(), _plane()[::-1]])  # two channels
    tifffile.imwrite(image, planes, imagej=True, metadata={"axes": "CYX"})
    out = tmp_path / "run1"
    args = ["segment", str(image), "--out", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu", "--channel", "1", "--tile-size", "256"]) == 0
    return image, out / "two_run.json"


def _edited(record_path: Path, tmp_path: Path, edit) -> Path:
    record = json.loads(record_path.read_text())
    edit(record)
    path = tmp_path / "edited_run.json"
    path.write_text(json.dumps(record))
    return path


def test_from_run_without_hashes_is_refused(recorded_run, tiny_model_dir, tmp_path, capsys):
    image, record = recorded_run
    other = _model_copy(tiny_model_dir, tmp_path)

    def edit(r):
        del r["model"]["weights_sha256"]
        r["model"]["folder"] = str(other)

    path = _edited(record, tmp_path, edit)
    assert main(["segment", str(image), "--out", str(tmp_path / "o"), "--from-run", str(path)]) == 2
    assert "holds no weight hashes" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_from_run_keeps_the_channel_and_refuses_conflicting_flags(recorded_run, tmp_path, capsys):
    image, record = recorded_run
    assert json.loads(record.read_text())["input"]["channel"] == 1
    out = tmp_path / "again"
    assert main(["segment", str(image), "--out", str(out), "--from-run", str(record)]) == 0
    rerun = json.loads((out / "two_run.json").read_text())
    assert rerun["input"]["channel"] == 1
    a = tifffile.imread(record.parent / "two_dendrite.tif")
    np.testing.assert_array_equal(a, tifffile.imread(out / "two_dendrite.tif"))
    base = ["segment", str(image), "--out", str(tmp_path / "x"), "--from-run", str(record)]
    for flag in (["--pixel-size", "0.2"], ["--dendrite-threshold", "0.3"], ["--flips"]):
        assert main([*base, *flag]) == 2
        assert f"{flag[0]} " in capsys.readouterr().err
    assert main([*base, "--channel", "0"]) == 2
    assert "conflicts with the run record's channel 1" in capsys.readouterr().err
    assert main([*base, "--device", "cpu", "--tile-size", "256"]) == 0  # same as recorded


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda r: r["parameters"].update(tile_size="1024"), "tile_size must be a whole number"),
        (lambda r: r.update(model="bundled"), "'model' must be an object"),
    ],
)
def test_run_record_with_wrong_types_is_one_line(recorded_run, tmp_path, capsys, edit, words):
    image, record = recorded_run
    path = _edited(record, tmp_path, edit)
    assert main(["segment", str(image), "--out", str(tmp_path / "o"), "--from-run", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_channel_of_a_one_channel_image_is_checked(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "one.tif"
    tifffile.imwrite(image, _plane())
    args = ["segment", str(image), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir)]
    assert main([*args, "--channel", "7"]) == 1
    assert "Channel 7 does not exist" in capsys.readouterr().err


# --- CSV cells ------------------------------------------------------------------------------------


def test_csv_cells_that_look_like_formulas_are_neutralised(tmp_path):
    assert spreadsheet_safe('=HYPERLINK("http://x","y").tif') == '\'=HYPERLINK("http://x","y").tif'
    for start in "=+-@\t\r":
        assert spreadsheet_safe(start + "a").startswith("'")
    assert spreadsheet_safe("cell.tif") == "cell.tif"
    table = {"name": np.array(["=1+1", "ok"]), "size": np.array([-3.5, 2.0])}
    rows = list(csv.reader(write_table_csv(tmp_path / "t.csv", table).open()))
    assert rows[1] == ["'=1+1", "-3.5"] and rows[2] == ["ok", "2"]
    outcome = batch_summary.FileOutcome(
        file="=cmd|' /C calc'!A0.tif", status="failed", error="-bad"
    )
    path = batch_summary.write_summary_csv(tmp_path / "summary.csv", [outcome])
    row = next(csv.DictReader(path.open()))
    assert row["file"].startswith("'=") and row["error"] == "'-bad"


# --- one folder, several writers ------------------------------------------------------------------


def _seg(tiny_model_dir, out, *inputs, extra=()):
    args = ["segment", *map(str, inputs), "--out", str(out), "--model", str(tiny_model_dir)]
    return main([*args, "--device", "cpu", *extra])


def test_same_stem_from_two_folders_is_refused_up_front(tiny_model_dir, tmp_path, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        tifffile.imwrite(tmp_path / sub / "x.tif", _plane())
    out = tmp_path / "o"
    code = _seg(
        tiny_model_dir, out, tmp_path / "a/x.tif", tmp_path / "b/x.tif", extra=["--overwrite"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "would both write 'x_*' outputs" in err and "--overwrite" not in err
    assert not out.exists()


def test_a_stem_another_process_is_writing_is_refused(tiny_model_dir, tmp_path, capsys):
    from filelock import FileLock

    image = tmp_path / "x.tif"
    tifffile.imwrite(image, _plane())
    out = tmp_path / "o"
    out.mkdir()
    with FileLock(out / ".x.lock"):  # as a second `segment` process holds it
        assert _seg(tiny_model_dir, out, image) == 1
    assert (
        "another dendrite-panoptic process is writing the outputs of 'x'" in capsys.readouterr().err
    )
    assert not list(out.glob("x_*"))
    assert _seg(tiny_model_dir, out, image) == 0  # free again


KILLER = """
import os, signal, sys
suffix, argv = sys.argv[1], sys.argv[2:]
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if str(dst).endswith(suffix):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
from napari_dendrite_panoptic.cli import main
sys.exit(main(argv))
"""


def test_overwrite_changes_a_stems_outputs_together_or_not_at_all(tiny_model_dir, tmp_path):
    import napari_dendrite_panoptic

    image = tmp_path / "x.tif"
    tifffile.imwrite(image, _plane((96, 96)))
    out = tmp_path / "o"
    assert _seg(tiny_model_dir, out, image, extra=["--overlay"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = dict(os.environ)
    src = str(Path(napari_dendrite_panoptic.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    argv = ["segment", str(image), "--out", str(out), "--model", str(tiny_model_dir)]
    argv += ["--device", "cpu", "--overwrite", "--score-threshold", "0.01"]
    proc = subprocess.run(
        [sys.executable, str(script), "_spines.csv", *argv], env=env, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL
    after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    assert after == before  # killed while the new set was written: the old set is untouched
    assert _seg(tiny_model_dir, out, image, extra=["--overwrite"]) == 0
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert "x_overlay.png" not in names  # the old run's overlay is not left beside the new set
    assert {"x_dendrite.tif", "x_spines.tif", "x_spines.csv", "x_run.json"} <= names


# --- inputs that are not plain files ------------------------------------------------------------


def test_named_pipe_is_refused_without_waiting(tmp_path):
    pipe = tmp_path / "x.tif"
    os.mkfifo(pipe)
    box = {}

    def read():
        try:
            read_tiff(pipe)
        except TiffReadError as exc:
            box["error"] = str(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(30)
    assert "not a regular file" in box.get("error", "it waited on the pipe")


def test_symlink_loop_fails_alone_in_a_batch(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "loop.tif").symlink_to(tmp_path / "loop.tif")
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, _plane())
    out = tmp_path / "o"
    assert _seg(tiny_model_dir, out, tmp_path / "loop.tif", good) == 1
    assert "loop of symbolic links" in capsys.readouterr().err
    rows = {Path(r["file"]).name: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["good.tif"]["status"] == "ok" and rows["loop.tif"]["status"] == "failed"


def test_missing_input_whose_outputs_exist_says_it_is_missing(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "gone_spines.csv").write_text("id\n")
    assert _seg(tiny_model_dir, out, tmp_path / "gone.tif") == 1
    assert "the file does not exist" in capsys.readouterr().err


def test_a_folder_segmented_into_itself_skips_its_own_outputs(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "f"
    folder.mkdir()
    tifffile.imwrite(folder / "x.tif", _plane())
    assert _seg(tiny_model_dir, folder, folder) == 0
    capsys.readouterr()
    assert _seg(tiny_model_dir, folder, folder, extra=["--overwrite"]) == 0
    assert "skipping 2 file(s)" in capsys.readouterr().err
    assert not list(folder.glob("x_dendrite_*"))


# --- output folders and the summary ---------------------------------------------------------------


def test_out_that_is_a_file_or_not_writable_is_refused_first(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    image = tmp_path / "x.tif"
    tifffile.imwrite(image, _plane())
    taken = tmp_path / "taken"
    taken.write_text("")
    assert _seg(tiny_model_dir, taken, image) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert _seg(tiny_model_dir, tmp_path / "ro", image) == 2
    err = capsys.readouterr().err
    assert "cannot write to --out" in err and "Read-only file system" in err
    assert ".part" not in err


def test_summary_that_is_a_folder_or_cannot_be_written(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    images = []
    for name in ("a", "b"):
        images.append(tmp_path / f"{name}.tif")
        tifffile.imwrite(images[-1], _plane())
    out = tmp_path / "o"
    assert _seg(tiny_model_dir, out, *images, extra=["--summary", str(tmp_path)]) == 2
    assert "is a folder; name a .csv file" in capsys.readouterr().err

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch_summary, "atomic_write_text", full)
    assert _seg(tiny_model_dir, out, *images) == 1
    err = capsys.readouterr().err
    assert "cannot write the summary" in err and "the disk is full" in err
    assert (out / "a_run.json").is_file() and (out / "b_run.json").is_file()


def test_disk_full_while_writing_outputs_says_so():
    outcome = batch_summary.failed_outcome(
        Path("x.tif"), OSError("65536 requested and 25600 written")
    )
    assert outcome.error.startswith("the disk is full")


def test_a_long_file_name_is_segmented(tiny_model_dir, tmp_path):
    image = tmp_path / ("n" * 231 + ".tif")  # 235 characters; outputs up to 250
    tifffile.imwrite(image, _plane())
    assert _seg(tiny_model_dir, tmp_path / "o", image) == 0
    assert (tmp_path / "o" / ("n" * 231 + "_spines_roi.zip")).is_file()


# --- parallel runs ------------------------------------------------------------------------------


def test_workers_are_capped_at_the_cores(capsys):
    from napari_dendrite_panoptic.cli.segment import _capped_workers

    cores = os.cpu_count() or 1
    assert _capped_workers(1000) == cores
    assert f"--workers 1000 is more than this machine's {cores} cores" in capsys.readouterr().err


def test_scheduler_that_never_answers_or_is_no_address(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "x.tif"
    tifffile.imwrite(image, _plane())
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    threading.Thread(
        target=lambda: [held.append(server.accept()) for _ in range(8)], daemon=True
    ).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    assert _seg(tiny_model_dir, tmp_path / "o", image, extra=["--scheduler", address]) == 2
    assert "no answer within 5 s" in capsys.readouterr().err
    assert _seg(tiny_model_dir, tmp_path / "o", image, extra=["--scheduler", "notaurl"]) == 2
    assert "not a scheduler address" in capsys.readouterr().err
    server.close()


# --- pixel sizes and intensities ------------------------------------------------------------------


def _predict(model_dir, image, voxel, **cfg):
    from napari_dendrite_panoptic.inference import InferenceConfig, predict

    config = InferenceConfig(model=str(model_dir), device="cpu", tile_size=256, **cfg)
    return predict(image, voxel, config)


def test_anisotropic_pixels_keep_both_sizes(tiny_model_dir, tmp_path):
    result = _predict(tiny_model_dir, _plane((48, 64)), (1.0, 0.2, 0.1))
    assert result.voxel_size_um == (1.0, 0.2, 0.1)
    assert result.dendrite.shape == (1, 48, 64)
    image = tmp_path / "aniso.tif"
    tifffile.imwrite(
        image, _plane((48, 64)), resolution=(1 / 0.1, 1 / 0.2), resolutionunit="MICROMETER"
    )
    assert _seg(tiny_model_dir, tmp_path / "o", image) == 0
    assert read_tiff(tmp_path / "o" / "aniso_spines.tif").voxel_size_um[1:] == pytest.approx(
        (0.2, 0.1)
    )


def test_too_small_a_pixel_size_is_refused_with_the_range(tiny_model_dir, tmp_path, capsys):
    from napari_dendrite_panoptic.errors import InputError

    with pytest.raises(InputError, match=r"plausible pixel sizes for this model are 0.005 to 2 µm"):
        _predict(tiny_model_dir, _plane(), None, pixel_size_um=1e-6)
    image = tmp_path / "x.tif"
    tifffile.imwrite(image, _plane())
    assert _seg(tiny_model_dir, tmp_path / "o", image, extra=["--pixel-size", "1e-6"]) == 1
    assert "plausible pixel sizes" in capsys.readouterr().err


def test_int32_with_a_large_offset_is_normalised_without_losing_levels():
    from napari_dendrite_panoptic.inference.planes import PlaneReader, stack_percentiles

    small = _plane((48, 48)).astype(np.int64)[None]
    offset = (small + 2_000_000_000).astype(np.int32)
    planes = []
    for volume in (small, offset):
        lo, hi = stack_percentiles(volume, 1.0, 99.8)
        planes.append(PlaneReader(volume, lo, hi - lo, (48, 48), 0).native(0).numpy())
    assert len(np.unique(planes[1])) == len(np.unique(planes[0])) > 500
    np.testing.assert_allclose(planes[1], planes[0], atol=1e-6)


TRUNCATE = """
import os, sys
import numpy as np
from napari_dendrite_panoptic.errors import TiffReadError
from napari_dendrite_panoptic.io import read_tiff, stack_zyx
path = sys.argv[1]
volume = stack_zyx(read_tiff(path, lazy=True))
np.asarray(volume[0])
os.truncate(path, os.path.getsize(path) // 2)  # cut short while it is being read
try:
    np.asarray(volume[volume.shape[0] - 1])
except TiffReadError as exc:
    print(exc)
    sys.exit(3)
"""


def test_a_file_truncated_while_it_is_read_is_an_error_not_a_bus_error(tmp_path):
    import napari_dendrite_panoptic

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.ones((4, 64, 64), np.uint16), imagej=True, metadata={"axes": "ZYX"})
    env = dict(os.environ)
    src = str(Path(napari_dendrite_panoptic.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", TRUNCATE, str(path)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 3, proc.stderr  # not -SIGBUS
    assert "the file is incomplete (truncated while it was read?)" in proc.stdout


# --- evaluate, sample, train ----------------------------------------------------------------------


def test_evaluate_and_sample_refuse_folders_and_odd_centres(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--overwrite"]) == 2
    assert "is a folder; name the .tif file" in capsys.readouterr().err
    labels = tmp_path / "spines.tif"
    tifffile.imwrite(labels, np.zeros((32, 32), np.uint16))
    base = ["evaluate", "--pred-spines", str(labels), "--truth-points"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("y_px,x_px,note\n1,2,caf\xe9\n".encode("latin-1"))
    assert main([*base, str(latin)]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err
    nan = tmp_path / "nan.csv"
    nan.write_text("y_px,x_px\n1,2\nnan,3\n")
    assert main([*base, str(nan)]) == 2
    assert "1 centre(s) have a coordinate that is not a finite number" in capsys.readouterr().err
    points = tmp_path / "ok.csv"
    points.write_text("y_px,x_px\n1,2\n")
    assert main([*base, str(points), "--json", str(tmp_path)]) == 2
    assert "is a folder; name a .json file" in capsys.readouterr().err


def test_checkpoint_without_optimiser_state_is_refused(tiny_model_dir, tmp_path, capsys):
    from napari_dendrite_panoptic.training import save_checkpoint

    work = tmp_path / "work"
    work.mkdir()
    models = load_models(tiny_model_dir, "cpu")
    state = {
        "step": 1,
        "spines": models.spines.state_dict(),
        "dendrites": models.dendrites.state_dict(),
    }
    save_checkpoint(work / "checkpoint.pt", {k: v for k, v in state.items()})
    argv = ["train", "--out", str(tmp_path / "m"), "--work", str(work), "--data", "generator:1"]
    argv += [
        "--steps",
        "2",
        "--batch-size",
        "1",
        "--crop",
        "64",
        "--base-model",
        str(tiny_model_dir),
    ]
    argv += ["--pixel-size", "0.1", "--validate", "0", "--threads", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds no opt_spines, opt_dendrites" in err and "Traceback" not in err


def test_a_thumbnail_first_series_is_named_when_a_larger_one_exists(tmp_path, caplog):
    path = tmp_path / "thumb.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(np.ones((16, 16), np.uint16))
        writer.write(np.ones((128, 128), np.uint16))
    with caplog.at_level("WARNING"):
        assert read_tiff(path).shape == (16, 16)
    assert "series 2 is larger" in caplog.text and "(128, 128)" in caplog.text
