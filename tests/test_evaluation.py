"""Scoring predicted spines against annotated centres, as `evaluate --real` and the threshold
calibration do."""

from types import SimpleNamespace

import numpy as np

from napari_dendrite_panoptic.evaluation.heldout import point_counts


def test_point_counts_keep_spines_by_score_and_match_within_the_radius():
    item = SimpleNamespace(centres_px=np.array([[10.0, 10.0], [40.0, 40.0]]), match_radius_px=3.0)
    table = {
        "centroid_y_px": np.array([11.0, 40.0, 80.0]),
        "centroid_x_px": np.array([10.0, 44.0, 80.0]),  # the 2nd is 4 px off: too far
        "score": np.array([0.9, 0.8, 0.5]),
    }
    counts = point_counts(table, item, [0.0, 0.6, 0.95])
    np.testing.assert_array_equal(counts[0], [1, 2, 1])  # all three kept
    np.testing.assert_array_equal(counts[1], [1, 1, 1])  # the 0.5 spine dropped
    np.testing.assert_array_equal(counts[2], [0, 0, 2])  # none kept: both centres missed
