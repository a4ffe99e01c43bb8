"""benchmarks/spine_visibility.py: how a poorly outlined spine's prediction is classified."""

from __future__ import annotations

import numpy as np


def test_outline_faults_tell_too_large_merged_and_split_apart(load_script):
    vis = load_script("spine_visibility")
    truth = np.zeros((30, 30), dtype=np.int32)
    truth[2:6, 2:6] = 1  # 16 px
    truth[2:6, 8:12] = 2
    truth[20:26, 20:26] = 3  # 36 px
    pred = np.zeros_like(truth)
    pred[1:7, 1:13] = 5  # one prediction over spines 1 and 2: too large and merged
    pred[20:26, 20:23] = 6  # spine 3 split in two halves
    pred[20:26, 23:26] = 7

    merged = vis._footprint_outline(pred, truth, 1)
    assert merged == {"area_ratio": 72 / 16, "preds_on_truth": 1, "truths_under_pred": 2}
    split = vis._footprint_outline(pred, truth, 3)
    assert split["preds_on_truth"] == 2 and split["area_ratio"] == 0.5
    assert vis._footprint_outline(np.zeros_like(truth), truth, 3)["area_ratio"] == 0.0

    rows = [
        {"found_footprint_iou10": True, "found_footprint": False, **merged},
        {"found_footprint_iou10": True, "found_footprint": False, **split},
        {"found_footprint_iou10": True, "found_footprint": True, **split},  # matched: not counted
    ]
    lines = vis.outline_faults(rows)
    assert lines[0].startswith("footprints touched but not matched: 2 spines")
    assert "prediction > 1.5 × the spine's area: 1" in lines[1]
    assert "prediction < 0.67 × the spine's area: 1" in lines[2]
    assert "covers other true spines too: 1" in lines[3]
    assert "split over several predictions: 1" in lines[4]


def test_recall_table_bins_spines_by_visibility(load_script):
    vis = load_script("spine_visibility")
    rows = [
        {
            "visibility": 0.5,
            "found_3d": False,
            "found_footprint": False,
            "found_footprint_iou10": False,
        },
        {
            "visibility": 6.0,
            "found_3d": True,
            "found_footprint": True,
            "found_footprint_iou10": True,
        },
        {
            "visibility": 7.0,
            "found_3d": False,
            "found_footprint": True,
            "found_footprint_iou10": True,
        },
    ]
    lines = vis.table(rows)
    assert "| 0-1 | 1 | 0.00 | 0.00 | 0.00 |" in lines
    assert "| 5-8 | 2 | 0.50 | 1.00 | 1.00 |" in lines
    assert lines[-1] == "| all | 3 | 0.333 | 0.667 | 0.667 |"
