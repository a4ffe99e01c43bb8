"""Reliability and security, round two: the cases an adversarial user found (issue 31).

Each test names the item of docs/reliability.md it checks; all run on tiny data.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.errors import ModelError
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
