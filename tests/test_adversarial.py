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
