"""Spine types: the rule set on hand-made measurements, the shipped learned classifier, and its
accuracy on the YOLO11 set's real labels (skipped when ../shared/data is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.analysis import TypeRules, analyse, classify_rules, measure_spines
from napari_dendrite_panoptic.analysis.spine_types import (
    WEIGHTS,
    load_learned,
    measurement_features,
    predict_learned_proba,
    spine_crops,
)
from napari_dendrite_panoptic.data import real as rd


def _table(length, head, neck, tips=1):
    return {
        "length_um": np.array([length]),
        "head_diameter_um": np.array([head]),
        "neck_width_um": np.array([neck]),
        "tips": np.array([tips]),
    }


@pytest.mark.parametrize(
    "row, expected",
    [
        ((0.6, 0.6, np.nan), "stubby"),  # short, no neck
        ((1.0, 0.9, 0.3), "mushroom"),  # big head on a thin neck
        ((1.2, 0.35, 0.15), "thin"),  # long, small head
        ((2.5, 0.2, 0.2), "filopodium"),  # long, no head
    ],
)
def test_rules_follow_the_documented_ratios(row, expected):
    assert classify_rules(_table(*row))[0] == expected


def test_rule_thresholds_are_editable():
    t = _table(1.0, 0.9, 0.3, tips=3)
    assert classify_rules(t)[0] == "mushroom"
    assert classify_rules(t, TypeRules(branched_min_tips=2))[0] == "branched"
    t2 = _table(1.0, 0.9, 0.3)
    assert (
        classify_rules(t2, TypeRules(mushroom_min_head_neck=99, mushroom_min_head_um=99))[0]
        == "stubby"
    )


def test_the_rules_never_call_a_one_tip_spine_branched():
    # even with the tip threshold set to 1 (the learned classifier is not forced: see
    # spine_types.classify_learned)
    assert classify_rules(_table(1.0, 0.9, 0.3, tips=1), TypeRules(branched_min_tips=1))[0] != (
        "branched"
    )


def test_learned_weights_ship_with_the_package_and_classify(small_plane):
    assert WEIGHTS.exists() and WEIGHTS.stat().st_size < 1_000_000
    model = load_learned()
    assert model is not None and len(model[0]) == 3
    s = small_plane
    result = analyse(s.dendrite, s.spines, s.voxel_size_um, s.image)
    assert result.type_method == "learned"
    assert len(result.spines["type"]) == len(np.unique(s.spines)) - 1
    assert set(result.spines["type"]) <= {"mushroom", "stubby", "branched", "thin", "filopodium"}


def test_a_mirrored_spine_gets_the_same_type_probabilities(small_plane):
    s = small_plane
    table = measure_spines(s.dendrite, s.spines, s.voxel_size_um, s.image)
    crops = spine_crops(s.image, s.dendrite, s.spines, table, s.voxel_size_um)
    features = measurement_features(table, s.voxel_size_um[-1])
    model = load_learned()
    plain = predict_learned_proba(model, crops, features)
    mirrored = predict_learned_proba(model, crops[..., ::-1], features)
    assert plain.shape == (len(table["id"]), 5)
    np.testing.assert_allclose(plain, mirrored, atol=1e-5)


@pytest.mark.shared_data
def test_learned_type_accuracy_on_yolo11_val_outlines():
    try:
        items = rd.load_yolo11("val")
    except FileNotFoundError:
        pytest.skip("../shared/data is absent: the YOLO11 set is needed")
    truth, pred = [], []
    for it in items:
        voxel = (1.0, it.pixel_size_um, it.pixel_size_um)
        r = analyse(it.dendrite, it.spines, voxel, it.image, type_method="learned")
        for sid, t in zip(r.spines["id"], r.spines["type"], strict=True):
            truth.append(it.spine_types[int(sid)])
            pred.append(t)
    truth, pred = np.array(truth), np.array(pred)
    acc = np.mean(truth == pred)
    # measured 0.824 (84/102) with the mirror view, 0.804 without; always "stubby" gets 0.44
    assert acc >= 0.75
    for kind in ("mushroom", "stubby", "branched"):
        assert np.mean(pred[truth == kind] == kind) > 0.6
