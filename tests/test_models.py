import json

import numpy as np
import pytest
import torch

from napari_dendrite_panoptic.errors import ModelError
from napari_dendrite_panoptic.models import (
    ModelCard,
    bundled_model_dir,
    load_models,
    resolve_device,
    save_models,
)


def test_saved_model_loads_with_the_same_outputs(tiny_model_dir):
    models = load_models(tiny_model_dir, "cpu")
    assert models.card.name == "tiny-test-model"
    assert models.card.pixel_size_um == 0.1
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        a = models.dendrites(x)["out"]
    # fp16 storage round trip: saving again and loading gives identical outputs
    assert load_models(tiny_model_dir, "cpu") is models  # cached, not rebuilt
    with torch.inference_mode():
        b = models.dendrites(x)["out"]
    torch.testing.assert_close(a, b)
    assert a.shape == (1, 2, 64, 64)


def test_altered_weight_file_is_refused(tiny_model_dir, tmp_path):
    models = load_models(tiny_model_dir, "cpu")
    folder = tmp_path / "copy"
    save_models(folder, models.card, models.spines, models.dendrites)
    data = bytearray((folder / "dendrites.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (folder / "dendrites.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_models(folder, "cpu")


def test_missing_weight_file_and_unknown_architecture(tiny_model_dir, tmp_path):
    models = load_models(tiny_model_dir, "cpu")
    folder = tmp_path / "m"
    save_models(folder, models.card, models.spines, models.dendrites)
    (folder / "spines.safetensors").unlink()
    with pytest.raises(ModelError, match="missing its weight file 'spines.safetensors'"):
        load_models(folder, "cpu")
    card = json.loads((folder / "card.json").read_text())
    card["spines"]["architecture"] = "yolo_v99"
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="unknown architecture 'yolo_v99'"):
        ModelCard.load(folder)


def test_not_a_model_folder_and_no_overwrite(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="is not a model folder"):
        load_models(tmp_path, "cpu")
    models = load_models(tiny_model_dir, "cpu")
    with pytest.raises(ModelError, match="exists already"):
        save_models(tiny_model_dir, models.card, models.spines, models.dendrites)
    with pytest.raises(ModelError, match="read-only"):
        save_models(bundled_model_dir(), models.card, models.spines, models.dendrites)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu")


def test_weights_are_stored_in_half_precision(tiny_model_dir):
    from safetensors.torch import load_file

    state = load_file(str(tiny_model_dir / "spines.safetensors"))
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert np.isfinite(np.concatenate([v.float().numpy().ravel() for v in floats])).all()


def test_the_bundled_card_names_no_training_folder_at_any_level():
    """A card is data: its provenance says in words where each level started, never a folder
    of the machine it was trained on."""
    from napari_dendrite_panoptic.models import bundled_model_dir

    level = json.loads((bundled_model_dir() / "card.json").read_text())["provenance"]
    depth = 0
    while level:
        config = level.get("config", {})
        assert not {"output_model", "work_dir"} & set(config), f"level {depth}"
        for where in (level, config):
            base = where.get("base_model", "")
            assert not base or " " in base, f"level {depth}: base_model {base!r} is a folder"
        level, depth = level.get("base_model_provenance", {}), depth + 1
    assert depth >= 5
