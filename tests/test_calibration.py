"""The spine threshold chosen on a lab's corrected planes, alone and after fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.data import prepare_volume, synthetic
from napari_dendrite_panoptic.models import ModelCard, load_models
from napari_dendrite_panoptic.training import (
    THRESHOLD_SWEEP,
    choose_spine_threshold,
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


def test_the_chosen_threshold_scores_best_on_the_corrected_planes(corrected_plane):
    models = load_models(None, "cpu")
    choice = choose_spine_threshold(models, [corrected_plane])
    assert choice.base_threshold == models.card.inference["spine_score_threshold"]
    assert choice.spines == len(np.unique(corrected_plane.spines)) - 1 >= 10
    assert choice.f1 == max(choice.curve) >= choice.base_f1
    assert choice.threshold in THRESHOLD_SWEEP
    assert f"{choice.threshold:.2f}" in choice.describe()


def test_too_few_corrected_spines_keep_the_threshold(corrected_plane):
    models = load_models(None, "cpu")
    few = corrected_plane.spines.copy()
    few[few > 3] = 0
    volume = type(corrected_plane)(**{**corrected_plane.__dict__, "spines": few})
    choice = choose_spine_threshold(models, [volume])
    assert choice.threshold == choice.base_threshold and not choice.changed
    assert "fewer than the 10 needed" in choice.describe()


def test_recalibrating_a_model_folder_writes_its_card(tmp_path, corrected_plane):
    from napari_dendrite_panoptic.models import save_models

    base = load_models(None, "cpu")
    folder = tmp_path / "model"
    card = base.card
    # a threshold far from any plane's best, so that the sweep must move it
    card = type(card)(**{**card.__dict__, "inference": {"spine_score_threshold": 0.95}})
    save_models(folder, card, base.spines, base.dendrites)
    choice = recalibrate_model(folder, [corrected_plane])
    assert choice.changed and choice.f1 > choice.base_f1
    saved = ModelCard.load(folder)
    assert saved.inference["spine_score_threshold"] == choice.threshold
    assert saved.metrics["spine_threshold_calibration"]["previous_threshold"] == 0.95
    load_models(folder, "cpu")  # the weights' hashes still hold
