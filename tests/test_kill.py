"""A killed ``segment`` or ``train`` (SIGKILL, in a subprocess) leaves no partial file under a final
name, and ``train`` resumes from the last complete checkpoint.

The subprocess kills itself with SIGKILL at the worst moment, deterministically: when it is about
to rename the N-th finished temporary file to its final name ("before-rename"), or with that
temporary file cut to half its size, as if the kill came while its bytes were being written
("mid-write").
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import napari_dendrite_panoptic
from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.errors import DendritePanopticError
from napari_dendrite_panoptic.io import read_tiff, write_tiff_atomic
from napari_dendrite_panoptic.models import load_models
from napari_dendrite_panoptic.training import CheckpointError, load_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

KILLER = """
import os, signal, sys
mode, count, suffix, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
real_replace, renames = os.replace, 0

def replace(src, dst, *args, **kwargs):
    global renames
    if str(dst).endswith(suffix):
        renames += 1
        if renames == count:
            if mode == "mid-write":
                os.truncate(src, os.path.getsize(src) // 2)
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from napari_dendrite_panoptic.cli import main
sys.exit(main(argv))
"""


def _run_killed(tmp_path: Path, mode: str, count: int, suffix: str, argv: list[str]):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = dict(os.environ)
    src = str(Path(napari_dendrite_panoptic.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(script), mode, str(count), suffix, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _check_complete(path: Path) -> None:
    """A file under a final name opens and holds everything it should."""
    if path.suffix == ".tif":
        stack = read_tiff(path)
        assert np.asarray(stack.data).shape == (96, 96)
    elif path.suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert all(row["id"] for row in rows)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    else:
        assert path.stat().st_size > 0


@pytest.mark.parametrize("mode", ["before-rename", "mid-write"])
def test_killed_segment_leaves_no_partial_file_under_a_final_name(
    tmp_path, tiny_model_dir, small_plane, mode
):
    image = tmp_path / "cell.tif"
    write_tiff_atomic(image, small_plane.image[0][:96, :96], (1.0, 0.1, 0.1))
    out = tmp_path / "out"
    argv = ["segment", str(image), "--out", str(out), "--model", str(tiny_model_dir)]
    argv += ["--device", "cpu", "--score-threshold", "0"]
    proc = _run_killed(tmp_path, mode, 2, "", argv)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    final = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    staging = sorted(p for p in out.iterdir() if p.name.endswith(".new"))
    # the outputs are written into a hidden staging folder and moved into place together: a
    # kill while they are written leaves nothing under a final name in the output folder
    assert final == []
    assert not (out / "cell_run.json").exists()  # the record, written last, marks a full set
    assert len(staging) == 1
    staged = sorted(staging[0].iterdir())
    # in the staging folder the first output was renamed complete; the second was killed
    # before its rename and is still a hidden temporary
    assert [p.name.endswith(".part") for p in staged].count(True) == 1
    for p in staged:
        if not p.name.endswith(".part"):
            _check_complete(p)
    # run again: the complete set appears (replacing needs --overwrite, as for any output)
    assert main([*argv, "--overwrite"]) == 0
    for name in ("cell_dendrite.tif", "cell_spines.tif", "cell_spines.csv", "cell_run.json"):
        _check_complete(out / name)


def test_killed_training_resumes_from_the_last_complete_checkpoint(
    tmp_path, tiny_model_dir, capsys
):
    work, model = tmp_path / "work", tmp_path / "model"
    argv = ["train", "--out", str(model), "--work", str(work), "--data", "generator:1"]
    argv += ["--steps", "3", "--batch-size", "1", "--crop", "64", "--checkpoint-every", "1"]
    argv += ["--warmup", "1", "--base-model", str(tiny_model_dir), "--pixel-size", "0.1"]
    argv += ["--validate", "0", "--threads", "1"]
    # killed while writing the checkpoint of step 2 (its hash was already on record)
    proc = _run_killed(tmp_path, "mid-write", 2, "checkpoint.pt", argv)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    recorded = json.loads((work / "checkpoint.pt.sha256.json").read_text())["sha256"]
    assert len(recorded) == 2  # step 2's (never renamed) and step 1's
    assert load_checkpoint(work / "checkpoint.pt")["step"] == 1  # hash-checked
    assert not model.exists() or not (model / "card.json").exists()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "resuming from the checkpoint at step 1" in out
    assert "done at step 3" in out
    assert load_checkpoint(work / "checkpoint.pt")["step"] == 3
    trained = load_models(model, "cpu")  # weights checked against the card's SHA-256
    assert trained.card.provenance["steps"] == 3


def test_damaged_checkpoint_is_a_clear_error(tmp_path, tiny_model_dir):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"PK\x03\x04 this is no checkpoint")
    with pytest.raises(CheckpointError, match="the checkpoint is damaged or not a checkpoint"):
        load_checkpoint(path)
    assert issubclass(CheckpointError, DendritePanopticError)
    import torch

    torch.save({"anything": 1}, path)
    with pytest.raises(CheckpointError, match="it is not a training checkpoint"):
        load_checkpoint(path)
    # a pickle that would run code is refused by weights_only=True
    torch.save({"step": 1, "spines": {}, "dendrites": {}, "hook": print}, path)
    with pytest.raises(CheckpointError, match="damaged or not a checkpoint"):
        load_checkpoint(path)


def test_altered_checkpoint_is_refused(tmp_path):
    from napari_dendrite_panoptic.training import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 4, "spines": {}, "dendrites": {}})
    assert load_checkpoint(path)["step"] == 4
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the SHA-256 recorded when it was"):
        load_checkpoint(path)
