"""Training data from corrected layers: checks with exact messages, crops, edited planes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic.core import IGNORE, mask_to_instances
from napari_dendrite_panoptic.data import (
    SemanticSpinesError,
    correction_source,
    edited_planes,
    plane_hashes,
    prepare_volume,
    save_corrections,
    steps_per_epoch,
)
from napari_dendrite_panoptic.errors import InputError
from napari_dendrite_panoptic.training import TrainConfig, iter_fit, load_checkpoint
from napari_dendrite_panoptic.training.config import CHECKPOINT_FILE
from napari_dendrite_panoptic.training.fine_tuning import volume_scorer


def _triple(sample):
    return sample.image[0], sample.dendrite[0], sample.spines[0]


def test_prepare_volume_gives_normalised_zyx_arrays(small_plane):
    image, dendrite, spines = _triple(small_plane)
    volume, notes = prepare_volume("plane", image, dendrite, spines, 0.1)
    assert volume.image.shape == volume.dendrite.shape == volume.spines.shape == (1, 128, 128)
    assert volume.image.dtype == np.float32 and 0.5 < float(volume.image.max()) < 2
    assert volume.planes == (0,) and notes == []


def test_mismatched_shapes_name_both_shapes(small_plane):
    image, dendrite, spines = _triple(small_plane)
    with pytest.raises(InputError, match=r"spine layer is 64 × 64 but the image is 128 × 128"):
        prepare_volume("plane", image, dendrite, spines[:64, :64], 0.1)


def test_empty_layers_are_refused_only_for_the_network_that_trains(small_plane):
    image, dendrite, spines = _triple(small_plane)
    empty = np.zeros_like(spines)
    with pytest.raises(InputError, match="the spine layer is empty"):
        prepare_volume("plane", image, dendrite, empty, 0.1, which="both")
    volume, _ = prepare_volume("plane", image, dendrite, empty, 0.1, which="dendrites")
    assert not volume.spines.any()
    with pytest.raises(InputError, match="the dendrite layer is empty"):
        prepare_volume("plane", image, np.zeros_like(dendrite), spines, 0.1, which="dendrites")


def test_semantic_spine_layer_is_detected_and_can_be_split(small_plane):
    image, dendrite, spines = _triple(small_plane)
    semantic = (spines > 0).astype(np.uint8)
    n = int(mask_to_instances(semantic).max())
    assert n > 1
    with pytest.raises(SemanticSpinesError, match=f"all {n} separate spines with the same id 1"):
        prepare_volume("plane", image, dendrite, semantic, 0.1)
    volume, _ = prepare_volume("plane", image, dendrite, mask_to_instances(semantic), 0.1)
    assert int(volume.spines.max()) == n


def test_dendrite_ids_above_one_are_read_as_dendrite_with_a_note(small_plane):
    image, dendrite, spines = _triple(small_plane)
    volume, notes = prepare_volume("plane", image, dendrite.astype(np.int32) * 3, spines, 0.1)
    assert set(np.unique(volume.dendrite)) == {0, 1}
    assert any("labels up to 3" in n for n in notes)


def test_edited_planes_finds_exactly_the_changed_planes(small_stack):
    labels = small_stack.spines.copy()
    hashes = plane_hashes(labels)
    assert edited_planes(labels, hashes) == []
    labels[2, 10:14, 10:14] = 99
    assert edited_planes(labels, hashes) == [2]
    assert len(plane_hashes(labels[0])) == 1  # a 2D layer is one plane


def test_crops_have_the_model_pixel_size_and_padding_is_ignored(small_plane):
    image, dendrite, spines = _triple(small_plane)
    # a 128 px image at 0.05 µm is 64 px at the model's 0.1 µm: the 96 px crop is padded
    volume, _ = prepare_volume("fine", image, dendrite, spines, 0.05)
    draw = correction_source([volume], 96, 0.1)
    sample = draw(np.random.default_rng(0))
    assert sample.image.shape == sample.dendrite.shape == sample.spines.shape == (96, 96)
    assert (sample.dendrite[64:, :] == IGNORE).all()
    assert (sample.dendrite[:64, :64] != IGNORE).all()
    assert sample.spines.max() > 0  # crops are drawn around annotations
    assert steps_per_epoch([volume], 96, 0.1, 1) == 1
    coarse, _ = prepare_volume("coarse", image, dendrite, spines, 0.1)
    assert steps_per_epoch([coarse], 64, 0.1, 2) == 2


def test_corrections_are_saved_as_tiffs_with_their_voxel_size(small_stack, tmp_path):
    raw = {
        "name": "my stack",
        "image": small_stack.image,
        "dendrite": small_stack.dendrite,
        "spines": small_stack.spines,
        "voxel_size_um": (0.5, 0.1, 0.1),
    }
    paths = save_corrections(tmp_path, [raw, dict(raw)])
    names = sorted(p.name for p in paths)
    assert "my_stack_spines.tif" in names and "my_stack_2_spines.tif" in names
    back = tifffile.imread(tmp_path / "my_stack_spines.tif")
    np.testing.assert_array_equal(back, small_stack.spines)
    assert not list(tmp_path.glob("*.tmp*"))


def test_time_budget_ends_the_run_and_held_out_scores_reach_the_card(
    small_plane, tiny_model_dir, tmp_path
):
    image, dendrite, spines = _triple(small_plane)
    volume, _ = prepare_volume("plane", image, dendrite, spines, 0.1)
    cfg = TrainConfig(
        work_dir=str(tmp_path / "work"),
        output_model=str(tmp_path / "model"),
        steps=10_000,
        batch_size=1,
        crop_size=64,
        base_model=str(tiny_model_dir),
        pixel_size_um=0.1,
        warmup_steps=1,
        checkpoint_every=1000,
        max_seconds=0.5,
    )
    events = list(
        iter_fit(
            cfg,
            source=correction_source([volume], 64, 0.1),
            validator=volume_scorer(volume),
        )
    )
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and "validation" in kinds
    steps = events[-1].step
    assert 1 <= steps < 10_000
    state = load_checkpoint(tmp_path / "work" / CHECKPOINT_FILE)
    assert state["step"] == steps  # the last partial interval is checkpointed too
    from napari_dendrite_panoptic.models import ModelCard

    card = ModelCard.load(tmp_path / "model")
    assert set(card.metrics["validation"]) >= {"spine_f1", "dendrite_iou", "step"}
    assert card.provenance["base_model"] == str(tiny_model_dir)


@pytest.mark.parametrize("keep_last", [False, True])
def test_keep_best_scores_the_base_first_and_saves_the_best_steps_weights(
    small_plane, tiny_model_dir, tmp_path, keep_last
):
    """Scores that fall step by step: the base is scored at step 0, the model folder holds the
    weights of step 1 (the best after the start), and the card names that step; with
    ``keep_last`` (too little held-out data to choose a step) the last step's."""
    import torch

    from napari_dendrite_panoptic.models import ModelCard, load_models

    image, dendrite, spines = _triple(small_plane)
    volume, _ = prepare_volume("plane", image, dendrite, spines, 0.1)
    cfg = TrainConfig(
        work_dir=str(tmp_path / "work"),
        output_model=str(tmp_path / "model"),
        steps=3,
        batch_size=1,
        crop_size=64,
        base_model=str(tiny_model_dir),
        pixel_size_um=0.1,
        warmup_steps=1,
        checkpoint_every=1000,
        lr=1e-2,
    )
    seen: list[dict] = []

    def validator(models):
        seen.append({k: v.detach().clone() for k, v in models.dendrites.state_dict().items()})
        return {"spine_f1": 1.0 - 0.1 * len(seen), "dendrite_iou": 0.5}

    events = list(
        iter_fit(
            cfg,
            source=correction_source([volume], 64, 0.1),
            validator=validator,
            validate_every=1,
            keep_best=lambda m: m["spine_f1"],
            keep_last=keep_last,
        )
    )
    validations = [e.step for e in events if e.kind == "validation"]
    assert validations == [0, 1, 2, 3]
    last = events[-1]
    kept = 3 if keep_last else 1
    assert last.kind == "done" and last.step == 3 and last.best_step == kept
    assert last.kept_last == keep_last
    assert last.base_metrics["spine_f1"] == pytest.approx(0.9)
    assert last.metrics["spine_f1"] == pytest.approx(1.0 - 0.1 * (kept + 1))
    card = ModelCard.load(tmp_path / "model")
    assert card.metrics["validation"]["step"] == kept
    assert card.metrics["validation_base"]["spine_f1"] == pytest.approx(0.9)
    saved = load_models(tmp_path / "model", "cpu").dendrites.state_dict()
    name = next(k for k, v in seen[1].items() if v.is_floating_point() and v.numel() > 100)
    assert not torch.allclose(seen[1][name], seen[3][name], atol=1e-3)  # training moved them
    torch.testing.assert_close(saved[name].float(), seen[kept][name].float(), atol=2e-3, rtol=2e-3)
