import numpy as np
import pytest

from napari_dendrite_panoptic.errors import InputError
from napari_dendrite_panoptic.evaluation import match_instances, pixel_scores
from napari_dendrite_panoptic.evaluation.metrics import match_points, pool_instance_scores


def _squares(positions, shape=(40, 40), size=4):
    lab = np.zeros(shape, dtype=np.int32)
    for i, (y, x) in enumerate(positions, start=1):
        lab[y : y + size, x : x + size] = i
    return lab


def test_three_of_four_spines_matched_and_one_false_positive_gives_f1_075():
    truth = _squares([(2, 2), (2, 20), (20, 2), (20, 20)])
    pred = _squares([(2, 2), (2, 20), (20, 2), (33, 33)])
    scores, match = match_instances(pred, truth, 0.5)
    assert (scores.tp, scores.fp, scores.fn) == (3, 1, 1)
    assert scores.f1 == pytest.approx(0.75)
    assert scores.sq == pytest.approx(1.0) and scores.pq == pytest.approx(0.75)
    assert match.false_positives == [4] and match.false_negatives == [4]


def test_partial_overlap_counts_only_above_the_threshold():
    truth = _squares([(0, 0)], size=10)
    pred = np.zeros_like(truth)
    pred[0:10, 5:15] = 7  # IoU = 50 / 150
    assert match_instances(pred, truth, 0.5)[0].tp == 0
    s = match_instances(pred, truth, 0.25)[0]
    assert s.tp == 1 and s.sq == pytest.approx(1 / 3)


def test_a_pair_at_exactly_the_threshold_is_no_match_at_0_5():
    truth = _squares([(0, 0)], size=10)
    pred = np.zeros_like(truth)
    pred[0:10, 0:5] = 3  # IoU = 50 / 100, exactly 0.5
    assert match_instances(pred, truth, 0.5)[0].tp == 0  # PQ's definition: IoU > 0.5
    assert match_instances(pred, truth, 0.49)[0].tp == 1


def test_the_matching_finds_the_most_pairs_above_a_low_threshold():
    # strips on a row: truth A [0, 100), B [100, 125); pred Q [0, 26), P [26, 125)
    # IoU(A, P) = 74/125 = 0.59, IoU(A, Q) = 0.26, IoU(B, P) = 25/99 = 0.25; the most summed IoU
    # is A-P alone (0.59 > 0.26 + 0.25), but at 0.25 two pairs exist: A-Q and B-P
    truth = np.zeros((3, 130), np.int32)
    truth[:, 0:100], truth[:, 100:125] = 1, 2
    pred = np.zeros_like(truth)
    pred[:, 0:26], pred[:, 26:125] = 5, 6
    scores, match = match_instances(pred, truth, 0.25)
    assert (scores.tp, scores.fp, scores.fn) == (2, 0, 0)
    assert sorted(p[:2] for p in match.pairs) == [(1, 5), (2, 6)]
    assert scores.sq == pytest.approx((26 / 100 + 25 / 99) / 2)
    # at 0.5 only A-P is above the threshold
    scores, match = match_instances(pred, truth, 0.5)
    assert (scores.tp, scores.fp, scores.fn) == (1, 1, 1) and match.pairs[0][:2] == (1, 6)


def test_the_matching_counts_as_many_pairs_as_exist_and_then_the_most_iou():
    from itertools import permutations

    rng = np.random.default_rng(0)
    for _ in range(300):
        iou = rng.uniform(0, 0.7, (3, 3)) * (rng.uniform(size=(3, 3)) < 0.7)
        scores, match = match_instances(None, None, 0.25, (iou, np.arange(1, 4), np.arange(1, 4)))
        best = max(
            (
                sum(iou[r, c] > 0.25 for r, c in enumerate(p)),
                sum(iou[r, c] for r, c in enumerate(p) if iou[r, c] > 0.25),
            )
            for p in permutations(range(3))
        )
        assert scores.tp == best[0]
        assert sum(p[2] for p in match.pairs) == pytest.approx(best[1])


def test_pixel_scores_and_shape_mismatch():
    truth = np.zeros((10, 10), bool)
    truth[:5] = True
    pred = np.zeros((10, 10), bool)
    pred[:, :5] = True
    s = pixel_scores(pred, truth)
    assert s.iou == pytest.approx(25 / 75)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)
    with pytest.raises(InputError, match="differs from ground truth"):
        pixel_scores(pred, truth[:5])


def test_points_within_distance():
    true = np.array([[0, 0], [10, 10], [20, 20]])
    pred = np.array([[1, 1], [10, 13], [50, 50]])
    s, pairs = match_points(pred, true, max_distance=2.0)
    assert (s.tp, s.fp, s.fn) == (1, 2, 2)
    s, _ = match_points(pred, true, max_distance=3.5)
    assert s.tp == 2 and s.f1 == pytest.approx(2 / 3)
    empty, _ = match_points(np.zeros((0, 2)), true, 3.0)
    assert empty.recall == 0.0 and np.isnan(empty.precision)


def test_pooling_sums_counts():
    a = match_instances(_squares([(2, 2)]), _squares([(2, 2)]))[0]
    b = match_instances(_squares([(30, 30)]), _squares([(2, 2)]))[0]
    pooled = pool_instance_scores([a, b])
    assert (pooled.tp, pooled.fp, pooled.fn) == (1, 1, 1) and pooled.f1 == pytest.approx(0.5)


def test_a_score_with_nothing_to_count_is_nan_everywhere():
    from napari_dendrite_panoptic.core import ratio

    assert np.isnan(ratio(0, 0)) and ratio(1, 4) == 0.25
    empty = np.zeros((20, 20), np.int32)
    px = pixel_scores(empty, empty)
    assert np.isnan(px.iou) and np.isnan(px.precision) and np.isnan(px.recall)
    nothing, _ = match_instances(empty, empty, 0.5)
    assert all(np.isnan(v) for v in (nothing.precision, nothing.recall, nothing.f1, nothing.pq))


def test_no_match_gives_pq_zero_with_an_undefined_sq():
    truth = _squares([(2, 2)])
    pred = _squares([(30, 30)])
    s, _ = match_instances(pred, truth, 0.5)
    assert (s.tp, s.fp, s.fn) == (0, 1, 1)
    assert s.f1 == 0.0 and s.pq == 0.0 and np.isnan(s.sq)
    pooled = pool_instance_scores([s, match_instances(truth, truth, 0.5)[0]])
    assert (pooled.tp, pooled.fp, pooled.fn) == (1, 1, 1)
    assert pooled.sq == pytest.approx(1.0) and pooled.pq == pytest.approx(pooled.sq * pooled.f1)


def test_a_mask_becomes_one_instance_per_connected_object_through_its_planes():
    from napari_dendrite_panoptic.core import mask_to_instances

    mask = np.zeros((3, 10, 10), bool)
    mask[0:3, 2:4, 2:4] = True  # one spine through three planes
    mask[1, 7:9, 7:9] = True
    mask[2, 6, 6] = True  # touches the second only at a corner: apart
    labels = mask_to_instances(mask)
    assert labels.dtype == np.uint32 and labels.max() == 3
    assert len(np.unique(labels[:, 2, 2])) == 1


def test_stack_centres_match_within_a_micron_and_two_planes_one_to_one():
    from napari_dendrite_panoptic.evaluation import (
        instance_centres,
        match_stack_centres,
        table_centres,
    )

    truth = np.array([[5.0, 10.0, 10.0], [5.0, 40.0, 40.0]])
    # 0.1 µm pixels: 9 px = 0.9 µm and 2 planes away matches; 11 px or 3 planes does not
    found = np.array([[7.0, 19.0, 10.0], [5.0, 40.0, 51.0], [8.0, 40.0, 40.0]])
    scores = match_stack_centres(found, truth, 0.1)
    assert (scores.tp, scores.fp, scores.fn) == (1, 2, 1)
    # two detections of one spine: one matches, the other is a false spine
    twice = match_stack_centres(np.array([[5.0, 10, 10], [6.0, 10, 11]]), truth[:1], 0.1)
    assert (twice.tp, twice.fp, twice.fn) == (1, 1, 0)
    labels = np.zeros((4, 8, 8), np.int32)
    labels[1:3, 2:4, 2:4] = 7
    assert np.allclose(instance_centres(labels), [[1.5, 2.5, 2.5]])
    assert instance_centres(labels[0]).shape == (0, 2)
    table = {"centroid_z_px": [1.5], "centroid_y_px": [2.5], "centroid_x_px": [3.0]}
    assert np.allclose(table_centres(table), [[1.5, 2.5, 3.0]])
    empty = {f"centroid_{a}_px": np.zeros(0) for a in "zyx"}
    assert table_centres(empty).shape == (0, 3)
