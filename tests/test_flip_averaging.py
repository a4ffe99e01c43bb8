"""Test-time flips: spines the mirror views agree on are kept, one view's fancies are dropped."""

import numpy as np
import pytest
import torch

from napari_dendrite_panoptic.inference import InferenceConfig, iter_predict, tile_passes
from napari_dendrite_panoptic.inference.config import ProgressEvent
from napari_dendrite_panoptic.inference.flips import fuse_views, paste_fused


def _disc(shape, cy, cx, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_views_that_agree_keep_the_spine_and_a_lone_view_loses_it():
    shape = (40, 60)
    real = [_disc(shape, 10, 10 + shift, 4) for shift in (0, 1, 0, -1)]  # slightly jittered
    lone = _disc(shape, 30, 45, 4)
    views, scores = [], []
    for k, mask in enumerate(real):
        labels = np.zeros(shape, np.int32)
        labels[mask] = 1
        view_scores = [0.9 if k % 2 else 0.8]
        if k == 2:  # only this view also sees a second spine, very confidently
            labels[lone] = 2
            view_scores.append(0.95)
        views.append(labels)
        scores.append(view_scores)

    fused = fuse_views(views, scores)
    assert [round(f.score, 4) for f in fused] == [0.85, round(0.95 / 4, 4)]
    labels, kept_scores = paste_fused(shape, fused, score_threshold=0.5, min_px=6)
    assert kept_scores == [pytest.approx(0.85)] and labels.max() == 1
    # the kept mask is where at least half the views put the spine
    votes = np.sum(real, axis=0)
    np.testing.assert_array_equal(labels == 1, votes >= 2)


def test_two_touching_spines_of_one_view_stay_two():
    shape = (30, 40)
    left, right = _disc(shape, 15, 14, 5), _disc(shape, 15, 24, 5) & ~_disc(shape, 15, 14, 5)
    labels = np.zeros(shape, np.int32)
    labels[left], labels[right] = 1, 2
    fused = fuse_views([labels] * 4, [[0.9, 0.8]] * 4)
    out, scores = paste_fused(shape, fused, 0.5, min_px=6)
    assert scores == [pytest.approx(0.9), pytest.approx(0.8)]
    np.testing.assert_array_equal(out, labels)


def test_paste_fused_drops_small_and_mostly_covered_spines():
    shape = (20, 20)
    tiny = np.zeros(shape, np.int32)
    tiny[2:4, 2:4] = 1  # 4 px
    fused = fuse_views([tiny] * 4, [[0.9]] * 4)
    assert paste_fused(shape, fused, 0.5, min_px=6)[1] == []
    assert paste_fused(shape, fused, 0.5, min_px=4)[1] == [pytest.approx(0.9)]


def _corner_spine_network(models, tiles):
    """A stand-in network that always 'finds' a spine at the same place in each tile it sees,
    whatever the tile shows, and finds a real bright spot wherever it is."""
    n, _, th, tw = tiles.shape
    prob = torch.full((n, th, tw), 0.9)
    dets = []
    for tile in tiles[:, 0]:
        cy, cx = divmod(int(torch.argmax(tile)), tw)
        boxes = torch.tensor([[2.0, 2.0, 10.0, 10.0], [cx - 4.0, cy - 4.0, cx + 4.0, cy + 4.0]])
        dets.append(
            {
                "boxes": boxes,
                "scores": torch.tensor([0.9, 0.9]),
                "masks": torch.ones((2, 1, 28, 28)),
            }
        )
    return prob, dets


def test_a_spine_found_in_one_mirror_view_only_is_dropped(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(tile_passes, "run_networks", _corner_spine_network)
    image = np.zeros((64, 64), np.float32)
    image[39:44, 29:34] = 0.5  # one bright spot, away from the corners
    image[41, 31] = 1.0
    cfg = InferenceConfig(
        model=str(tiny_model_dir),
        device="cpu",
        spine_score_threshold=0.5,
        tile_size=64,
        tile_overlap=0,
        test_time_flips=True,
    )
    no_flips = InferenceConfig(**{**cfg.__dict__, "test_time_flips": False})
    *plain_events, plain_result = list(iter_predict(image, (1.0, 0.08, 0.08), no_flips))
    *events, result = list(iter_predict(image, (1.0, 0.08, 0.08), cfg))

    # without flips the fixed-corner 'spine' is kept beside the real one
    assert plain_result.spines.max() == 2
    assert plain_result.spines[0, 5, 5] > 0
    # each mirror view puts the corner spine in another corner: no two views agree, it goes
    assert result.spines.max() == 1
    assert result.spines[0, 41, 31] == 1 and result.spines[0, 5, 5] == 0
    assert result.table["score"].tolist() == [pytest.approx(0.9)]
    # four views are four times the work, and the progress says so
    total = [e.total for e in events if isinstance(e, ProgressEvent)][-1]
    plain_total = [e.total for e in plain_events if isinstance(e, ProgressEvent)][-1]
    assert total == 4 * plain_total
