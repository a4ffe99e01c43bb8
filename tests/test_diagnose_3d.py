"""The depth bounds of benchmarks/diagnose_3d.py: a prediction moved onto its true spine's planes."""

from __future__ import annotations

import numpy as np

from napari_dendrite_panoptic.evaluation import match_instances


def test_moving_a_prediction_onto_the_true_planes_recovers_the_match(load_script):
    diagnose = load_script("diagnose_3d")
    truth = np.zeros((4, 20, 20), dtype=np.uint32)
    truth[1:3, 5:10, 5:10] = 1  # planes 1-2
    pred = np.zeros_like(truth)
    pred[2:4, 5:11, 5:10] = 7  # one plane too deep, a column wider
    pred[0, 15:18, 15:18] = 9  # a false positive far away stays as it is
    assert match_instances(pred, truth, 0.5)[0].tp == 0

    moved = diagnose.with_true_depth(pred, truth, true_masks=False)
    assert set(np.flatnonzero((moved == 7).any((1, 2)))) == {1, 2}
    assert (moved[1] == 7).sum() == 30  # plane 1 had no mask: it takes the footprint
    assert (moved == 9).sum() == 9
    assert match_instances(moved, truth, 0.5)[0].tp == 1

    exact = diagnose.with_true_depth(pred, truth, true_masks=True)
    assert np.array_equal(exact == 7, truth == 1)


def test_a_prediction_whose_footprint_misses_stays_where_it_is(load_script):
    diagnose = load_script("diagnose_3d")
    truth = np.zeros((3, 20, 20), dtype=np.uint32)
    truth[1, 2:6, 2:6] = 1
    pred = np.zeros_like(truth)
    pred[0:2, 12:16, 12:16] = 4
    assert np.array_equal(diagnose.with_true_depth(pred, truth, true_masks=True), pred)
