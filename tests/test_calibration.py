"""The spine and dendrite thresholds chosen on a lab's corrected planes, alone and after
fine-tuning, and the inference that then uses them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.data import prepare_volume, synthetic
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import ModelCard, load_models, save_models
from napari_dendrite_panoptic.training import (
    DENDRITE_THRESHOLD_SWEEP,
    THRESHOLD_SWEEP,
    choose_thresholds,
    recalibrate_model,
)


@pytest.fixture(scope="module")
def corrected_plane():
    """A generated plane whose ground truth plays the user's corrections."""
    rng = np.random.default_rng(5)
    sample = synthetic.generate(5, synthetic.random_config(rng, shape=(1, 192, 192)))
    volume, _ = prepare_volume(
        "plane", sample.image, sample.dendrite, sample.spines, sample.voxel_size_um[1]
    )
    return volume


def _with(volume, **arrays):
    return type(volume)(**{**volume.__dict__, **arrays})


def _model_with(tmp_path, **inference):
    """A copy of the bundled model whose card recommends ``inference``."""
    base = load_models(None, "cpu")
    folder = tmp_path / "model"
    card = type(base.card)(**{**base.card.__dict__, "inference": inference})
    save_models(folder, card, base.spines, base.dendrites)
    return folder


def test_the_chosen_thresholds_score_best_on_the_corrected_planes(corrected_plane):
    models = load_models(None, "cpu")
    spine, dendrite = choose_thresholds(models, [corrected_plane])
    assert spine.base_threshold == models.card.inference["spine_score_threshold"]
    assert spine.amount == len(np.unique(corrected_plane.spines)) - 1 >= 10
    assert spine.score == max(spine.curve) >= spine.base_score
    assert spine.threshold in THRESHOLD_SWEEP
    assert f"{spine.threshold:.2f}" in spine.describe() and "spine F1" in spine.describe()
    assert dendrite.base_threshold == models.card.inference.get("dendrite_threshold", 0.5)
    assert dendrite.score == max(dendrite.curve) >= dendrite.base_score
    assert dendrite.threshold in DENDRITE_THRESHOLD_SWEEP and "dendrite IoU" in dendrite.describe()


def test_too_little_correction_keeps_the_thresholds(corrected_plane):
    models = load_models(None, "cpu")
    few = corrected_plane.spines.copy()
    few[few > 3] = 0
    volume = _with(corrected_plane, spines=few, dendrite=np.zeros_like(corrected_plane.dendrite))
    spine, dendrite = choose_thresholds(models, [volume])
    assert spine.threshold == spine.base_threshold and not spine.changed
    assert "fewer than the 10 needed" in spine.describe()
    assert dendrite.threshold == dendrite.base_threshold and not dendrite.changed
    assert "of dendrite, less than the 10 needed" in dendrite.describe()


def test_a_wider_corrected_dendrite_lowers_the_dendrite_threshold(corrected_plane):
    """A user who paints the shaft wider than the model draws it gets a lower threshold, and
    the recalibrated model then draws the shaft wider."""
    from scipy import ndimage as ndi

    models = load_models(None, "cpu")
    found = predict(corrected_plane.image[0], (1.0, 0.1, 0.1), models=models)
    wider = ndi.binary_dilation(found.dendrite[0] > 0, iterations=2).astype(np.uint8)
    volume = _with(corrected_plane, dendrite=wider[None], pixel_size_um=0.1)
    _, dendrite = choose_thresholds(models, [volume])
    assert dendrite.changed and dendrite.threshold < dendrite.base_threshold
    assert dendrite.score > dendrite.base_score


def test_recalibrating_a_model_folder_writes_its_card(tmp_path, corrected_plane):
    # thresholds far from any plane's best, so that the sweeps must move them
    folder = _model_with(tmp_path, spine_score_threshold=0.95, dendrite_threshold=0.95)
    spine, dendrite = recalibrate_model(folder, [corrected_plane])
    assert spine.changed and spine.score > spine.base_score
    assert dendrite.changed and dendrite.score > dendrite.base_score
    saved = ModelCard.load(folder)
    assert saved.inference["spine_score_threshold"] == spine.threshold
    assert saved.inference["dendrite_threshold"] == dendrite.threshold
    assert saved.metrics["spine_threshold_calibration"]["previous_threshold"] == 0.95
    assert saved.metrics["dendrite_threshold_calibration"]["previous_threshold"] == 0.95
    load_models(folder, "cpu")  # the weights' hashes still hold


def test_without_held_out_planes_the_spine_threshold_keeps_as_many_spines_as_corrected(
    tmp_path, corrected_plane
):
    """Without held-out planes the new model's spine threshold is the one at which it keeps
    about as many spines on the corrected planes as they hold corrected (not its F1 there,
    which training inflates); its card records how, and the dendrite threshold stays."""
    tuned = _model_with(tmp_path / "tuned", spine_score_threshold=0.95, dendrite_threshold=0.95)
    own = choose_thresholds(load_models(tuned, "cpu"), [corrected_plane])
    (spine,) = recalibrate_model(tuned, [], [corrected_plane])
    assert spine.counted and spine.changed and spine.amount == own[0].amount
    gaps = [abs(k - spine.amount) for k in spine.kept]
    assert abs(spine.kept_at_threshold - spine.amount) == min(gaps)
    assert "about as many as they hold corrected" in spine.describe()
    saved = ModelCard.load(tuned)
    assert saved.inference["spine_score_threshold"] == spine.threshold
    record = saved.metrics["spine_threshold_calibration"]
    assert "chosen by count" in record["on"] and record["kept"] == spine.kept_at_threshold
    # the dendrite threshold stays: the new dendrite network learned the corrected outline
    assert own[1].changed and saved.inference["dendrite_threshold"] == 0.95
    assert "dendrite_threshold_calibration" not in saved.metrics


def test_few_held_out_spines_choose_the_spine_threshold_by_count_on_every_row(
    tmp_path, corrected_plane
):
    """A held-out row with a handful of spines says too little: the spine threshold is chosen
    by count on all corrected rows; the new model still chooses the dendrite's on the
    held-out row."""
    from napari_dendrite_panoptic.training import HELD_OUT_MIN_SPINES

    few = corrected_plane.spines.copy()
    few[few > 12] = 0
    held = _with(corrected_plane, spines=few)
    tuned = _model_with(tmp_path / "tuned", spine_score_threshold=0.95, dendrite_threshold=0.95)
    everything, _ = choose_thresholds(load_models(tuned, "cpu"), [corrected_plane, held])
    _, by_new = choose_thresholds(load_models(tuned, "cpu"), [held])
    spine, dendrite = recalibrate_model(tuned, [held], [corrected_plane])
    assert spine.counted and spine.amount == everything.amount and spine.changed
    assert f"fewer than the {HELD_OUT_MIN_SPINES}" in spine.note
    assert not dendrite.counted and dendrite.threshold == by_new.threshold
    # enough held-out spines: the new model chooses both there by score
    per_plane = len(np.unique(corrected_plane.spines)) - 1
    enough = [corrected_plane] * (HELD_OUT_MIN_SPINES // per_plane + 1)
    spine, _ = recalibrate_model(tuned, enough, [held])
    assert not spine.counted and spine.amount >= HELD_OUT_MIN_SPINES
    # a held-out dendrite left as the model drew it chooses nothing: its threshold stays
    fresh = _model_with(tmp_path / "fresh", spine_score_threshold=0.95, dendrite_threshold=0.95)
    (spine,) = recalibrate_model(fresh, [_with(held, unedited=("dendrites",))], [held])
    assert spine.counted and "held-out dendrites are as the model drew them" in spine.note
    assert ModelCard.load(fresh).inference["dendrite_threshold"] == 0.95


def test_inference_uses_the_cards_dendrite_threshold_unless_told(tmp_path, corrected_plane):
    folder = _model_with(tmp_path, dendrite_threshold=0.9)
    plane = corrected_plane.image[0]
    card_run = predict(plane, (1.0, 0.1, 0.1), InferenceConfig(model=str(folder), device="cpu"))
    told = InferenceConfig(model=str(folder), device="cpu", dendrite_threshold=0.3)
    told_run = predict(plane, (1.0, 0.1, 0.1), told)
    assert card_run.parameters["dendrite_threshold"] is None
    assert card_run.parameters["dendrite_threshold_used"] == 0.9
    assert told_run.parameters["dendrite_threshold_used"] == 0.3
    assert told_run.dendrite.sum() > card_run.dendrite.sum()


def test_a_card_with_a_dendrite_threshold_out_of_range_is_refused(tmp_path):
    from napari_dendrite_panoptic.errors import ModelError

    with pytest.raises(ModelError, match="inference.dendrite_threshold must be a number"):
        load_models(_model_with(tmp_path, dendrite_threshold=1.5), "cpu")


def test_a_corrected_stack_calibrates_the_spine_threshold_through_the_stack_path():
    """A corrected stack's spines count once each (not once per plane they cross), matched
    against what the stack path finds with the stack's z-step."""
    sample = synthetic.twophoton_stack(5, (8, 160, 160))
    z, px = sample.voxel_size_um[0], sample.voxel_size_um[1]
    volume, _ = prepare_volume(
        "stack", sample.image, sample.dendrite, sample.spines, px, z_step_um=z
    )
    models = load_models(None, "cpu")
    spine, _ = choose_thresholds(models, [volume])
    assert spine.amount == len(sample.spine_types) >= 10
    assert spine.planes == 8
    assert spine.score == max(spine.curve) >= spine.base_score > 0
    # the held-out score of a fine-tuning run is that sweep's best, counted the same way
    from napari_dendrite_panoptic.training.calibration import best_spine_f1

    assert best_spine_f1(models, volume) == pytest.approx(spine.score)
    # the base threshold's F1 is the stack path's: the same spines found by predict
    cfg = InferenceConfig(spine_score_threshold=spine.base_threshold)
    found = predict(volume.image, sample.voxel_size_um, cfg, models=models)
    assert len(found.table["id"]) > 0
    if spine.changed:
        assert spine.threshold in THRESHOLD_SWEEP


def _scoring_higher(tmp_path, logit: float, **inference):
    """A copy of the bundled model whose spine scores are all raised (``logit`` added to the
    spine class's score), as a model fine-tuned on a lab's dim spines scores them higher."""
    import torch

    base = load_models(None, "cpu")
    with torch.no_grad():
        base.spines.roi_heads.box_predictor.cls_score.bias[1] += logit
    folder = tmp_path / "higher"
    card = type(base.card)(**{**base.card.__dict__, "inference": inference})
    save_models(folder, card, base.spines, base.dendrites)
    return folder


def test_a_fine_tuned_model_that_scores_spines_higher_gets_a_higher_spine_threshold(
    tmp_path, corrected_plane
):
    """A model that scores every spine higher than its base keeps as many spines as were
    corrected at a higher threshold, and there finds about as many as the plane holds."""
    base = _model_with(tmp_path / "base", spine_score_threshold=0.95, dendrite_threshold=0.5)
    tuned = _scoring_higher(tmp_path, 1.5, spine_score_threshold=0.95, dendrite_threshold=0.5)
    (plain,) = recalibrate_model(base, [], [corrected_plane])
    assert plain.threshold < 0.8  # room above it
    (spine,) = recalibrate_model(tuned, [], [corrected_plane])
    assert plain.threshold < spine.threshold
    assert abs(spine.kept_at_threshold - spine.amount) <= 0.15 * spine.amount
    assert ModelCard.load(tuned).inference["spine_score_threshold"] == spine.threshold
    # at its threshold the new model finds about as many spines as were corrected
    plane, px = corrected_plane.image[0], corrected_plane.pixel_size_um
    found = predict(
        plane,
        (1.0, px, px),
        InferenceConfig(model=str(tuned), device="cpu", spine_score_threshold=spine.threshold),
        models=load_models(tuned, "cpu"),
    ).table
    assert abs(len(found["id"]) - spine.amount) <= 0.15 * spine.amount


def test_held_out_scores_compare_a_model_that_scores_spines_higher_at_its_best_threshold(
    tmp_path, corrected_plane
):
    """A model fine-tuned on a lab scores its spines higher than the base model: at the base
    model's threshold it keeps too many, yet it tells spines from the rest as well. The held-out
    score the dock keeps steps by and compares with the base model is spine F1 at each model's
    best threshold, and a layer left as the base model drew it is not scored."""
    from dataclasses import replace

    from napari_dendrite_panoptic.training import held_out_score
    from napari_dendrite_panoptic.training.fine_tuning import volume_scorer

    base = _model_with(tmp_path / "base", spine_score_threshold=0.5, dendrite_threshold=0.5)
    tuned = _scoring_higher(tmp_path, 3.0, spine_score_threshold=0.5, dendrite_threshold=0.5)
    score = volume_scorer(replace(corrected_plane, unedited=("dendrites",)))
    by_base, by_tuned = score(load_models(base, "cpu")), score(load_models(tuned, "cpu"))
    assert "dendrite_iou" not in by_base and "dendrite_iou" not in by_tuned
    assert by_tuned["spine_f1"] < by_base["spine_f1"] - 0.1  # too many spines at 0.5
    assert by_tuned["spine_f1_best"] == pytest.approx(by_base["spine_f1_best"], abs=0.05)
    assert held_out_score(by_tuned) == by_tuned["spine_f1_best"]
    assert held_out_score({"spine_f1": 0.2, "spine_f1_best": 0.8, "dendrite_iou": 0.6}) == (
        pytest.approx(0.7)
    )
    assert held_out_score({"spine_f1": 0.4, "dendrite_iou": 0.6}, "spines") == 0.4
    assert np.isnan(held_out_score({"spine_f1_best": 0.8}, "dendrites"))


def test_too_few_corrected_spines_leave_the_counted_threshold_unchosen(corrected_plane):
    from napari_dendrite_panoptic.training import match_corrected_count

    models = load_models(None, "cpu")
    few = corrected_plane.spines.copy()
    few[few > 3] = 0
    volume = _with(corrected_plane, spines=few)
    own, _ = choose_thresholds(models, [volume])
    assert not own.enough
    kept = match_corrected_count(own)
    assert not kept.counted and kept.threshold == own.base_threshold and not kept.changed
