"""Comparison engine on hand-made layers whose figures are known exactly (2D, 3D, anisotropic)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic import evaluation as cmp
from napari_dendrite_panoptic.core import mask_to_instances
from napari_dendrite_panoptic.errors import InputError


def _squares(positions, shape=(40, 40), size=4, ids=None, dtype=np.int32):
    lab = np.zeros(shape, dtype=dtype)
    for k, (y, x) in enumerate(positions):
        lab[y : y + size, x : x + size] = ids[k] if ids else k + 1
    return lab


TRUTH_POS = [(2, 2), (2, 20), (20, 2), (20, 20)]
PRED_POS = [(2, 2), (2, 20), (20, 2), (33, 33)]


def test_three_of_four_spines_and_one_false_positive_give_f1_075_and_a_table_row_each():
    truth = _squares(TRUTH_POS)
    pred = _squares(PRED_POS, ids=[7, 8, 9, 5])
    result = cmp.compare(pred_spines=pred, truth_spines=truth, voxel_size_um=(1, 0.1, 0.1))
    f = result.figures()
    assert (f["spine_tp"], f["spine_fp"], f["spine_fn"]) == (3, 1, 1)
    assert f["spine_precision"] == f["spine_recall"] == f["spine_f1"] == pytest.approx(0.75)
    assert f["spine_sq"] == 1.0 and f["spine_rq"] == pytest.approx(0.75)
    assert f["spine_pq"] == pytest.approx(0.75)
    # pixels: 3 squares of 16 shared, 16 extra, 16 missed
    assert f["spine_pixel_iou"] == pytest.approx(48 / 80)
    assert f["spine_pixel_precision"] == f["spine_pixel_recall"] == pytest.approx(0.75)
    obj = result.objects
    assert list(obj["index"]) == [1, 2, 3, 4, 5]
    assert list(obj["status"]) == ["TP", "TP", "TP", "FP", "FN"]
    assert list(obj["pred_id"]) == [7, 8, 9, 5, 0]
    assert list(obj["truth_id"]) == [1, 2, 3, 0, 4]
    fp, fn = 3, 4
    assert (obj["centroid_y_px"][fp], obj["centroid_x_px"][fp]) == (34.5, 34.5)
    assert obj["centroid_y_um"][fn] == pytest.approx(2.15) and obj["size_px"][fn] == 16
    assert obj["iou"][fp] == 0.0 and obj["iou"][0] == 1.0


def test_iou_threshold_decides_a_half_overlapping_pair():
    truth = _squares([(10, 10)], size=4)
    pred = _squares([(10, 12)], size=4)  # 8 shared px of 24 -> IoU 1/3
    strict = cmp.compare(pred_spines=pred, truth_spines=truth).figures()
    loose = cmp.compare(pred_spines=pred, truth_spines=truth, iou_threshold=0.3).figures()
    assert strict["spine_f1"] == 0.0 and strict["spine_pq"] == 0.0
    assert loose["spine_f1"] == 1.0
    assert loose["spine_sq"] == pytest.approx(1 / 3) and loose["spine_pq"] == pytest.approx(1 / 3)


def test_dendrite_pixel_scores_and_diff_map():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, :] = 1  # 40 px
    pred = np.zeros((10, 10), np.uint8)
    pred[4:8, :] = 1  # 40 px, 20 shared
    f = cmp.compare(pred_dendrite=pred, truth_dendrite=truth).figures()
    assert f["dendrite_iou"] == pytest.approx(20 / 60)
    assert f["dendrite_precision"] == f["dendrite_recall"] == pytest.approx(0.5)
    diff = cmp.dendrite_diff_map(pred, truth)
    assert np.all(diff[6:8] == cmp.DENDRITE_DIFF_VALUES["FP"])
    assert np.all(diff[2:4] == cmp.DENDRITE_DIFF_VALUES["FN"])
    assert np.all(diff[4:6] == 0) and np.all(diff[:2] == 0)


def test_status_map_draws_each_object_with_its_table_index():
    truth = _squares(TRUTH_POS)
    pred = _squares(PRED_POS)
    result = cmp.compare(pred_spines=pred, truth_spines=truth)
    status = cmp.spine_status_map(pred, truth, result.objects)
    assert status.dtype == np.uint32
    assert set(np.unique(status)) == {0, 1, 2, 3, 4, 5}
    assert np.all(status[33:37, 33:37] == 4)  # the false positive
    assert np.all(status[20:24, 20:24] == 5)  # the missed spine


def test_3d_stack_whole_and_per_plane():
    truth = np.zeros((3, 20, 20), np.int32)
    pred = np.zeros((3, 20, 20), np.int32)
    truth[0:3, 2:6, 2:6] = 1  # a spine through three planes
    pred[0:2, 2:6, 2:6] = 1  # found in two of them: IoU 2/3
    truth[1, 12:16, 12:16] = 2  # missed, plane 1 only
    pred[2, 12:16, 2:6] = 3  # extra, plane 2 only
    whole = cmp.compare(pred_spines=pred, truth_spines=truth, voxel_size_um=(0.5, 0.1, 0.1))
    f = whole.figures()
    assert (f["spine_tp"], f["spine_fp"], f["spine_fn"]) == (1, 1, 1)
    assert f["spine_sq"] == pytest.approx(2 / 3)
    assert f["spine_pq"] == pytest.approx(2 / 3 * 0.5)
    tp = list(whole.objects["status"]).index("TP")
    assert whole.objects["centroid_z_um"][tp] == pytest.approx(0.5)  # plane 1 x 0.5 µm
    figures, objects = cmp.compare_planes(
        pred_spines=pred, truth_spines=truth, voxel_size_um=(0.5, 0.1, 0.1)
    )
    assert list(figures["plane"]) == ["0", "1", "2", "all"]
    assert list(figures["spine_tp"]) == [1, 1, 0, 2]
    assert list(figures["spine_fn"]) == [0, 1, 1, 2]
    assert list(figures["spine_fp"]) == [0, 0, 1, 1]
    assert figures["spine_f1"][-1] == pytest.approx(4 / 7)
    assert list(objects["plane"]) == [0, 1, 1, 2, 2]
    assert list(objects["index"]) == [1, 2, 3, 4, 5]
    status = cmp.spine_status_map(pred, truth, objects)
    assert set(np.unique(status[2])) == {0, 4, 5}
    assert np.all(status[1, 12:16, 12:16] == 3)


def test_point_ground_truth_in_um_with_anisotropic_voxels():
    # spines (1 plane thick) at z = 2; voxel 2 µm in z, 0.1 µm in y/x
    pred = np.zeros((5, 40, 40), np.int32)
    pred[2, 10:13, 10:13] = 1  # centroid (2, 11, 11) px -> (4.0, 1.1, 1.1) µm
    pred[2, 30:33, 30:33] = 2  # centroid (2, 31, 31) px -> (4.0, 3.1, 3.1) µm
    truth_um = np.array(
        [
            [4.0, 1.1, 1.5],  # 0.4 µm from spine 1 -> match within 0.5 µm
            [5.0, 3.1, 3.1],  # same y/x as spine 2 but 1 µm off in z: no match within 0.5 µm
            [4.0, 0.2, 3.5],  # nothing near
        ]
    )
    vox = (2.0, 0.1, 0.1)
    result = cmp.compare(
        pred_spines=pred, truth_points_um=truth_um, voxel_size_um=vox, distance_um=0.5
    )
    f = result.figures()
    assert (f["point_tp"], f["point_fp"], f["point_fn"]) == (1, 1, 2)
    assert f["point_precision"] == 0.5 and f["point_recall"] == pytest.approx(1 / 3)
    assert f["point_f1"] == pytest.approx(0.4)
    obj = result.objects
    tp = list(obj["status"]).index("TP")
    assert obj["pred_id"][tp] == 1 and obj["truth_id"][tp] == 1
    assert obj["distance_um"][tp] == pytest.approx(0.4)
    # within 1.2 µm the z offset of 1 µm is forgiven: 2 of 3 centres found
    wide = cmp.compare(
        pred_spines=pred, truth_points_um=truth_um, voxel_size_um=vox, distance_um=1.2
    )
    assert wide.figures()["point_tp"] == 2
    status = cmp.spine_status_map(pred, None, obj)
    assert set(np.unique(status)) == {0} | {int(i) for i in obj["index"][obj["pred_id"] > 0]}


def test_point_ground_truth_per_plane_assigns_centres_to_their_nearest_plane():
    pred = np.zeros((3, 20, 20), np.int32)
    pred[0, 2:5, 2:5] = 1  # centroid (0, 3, 3)
    pred[2, 2:5, 2:5] = 2  # centroid (2, 3, 3)
    vox = (0.5, 0.2, 0.2)
    truth_um = np.array([[0.1, 0.6, 0.6], [1.1, 0.6, 0.6]])  # planes 0 and 2 (1.1/0.5 -> 2)
    figures, objects = cmp.compare_planes(
        pred_spines=pred, truth_points_um=truth_um, voxel_size_um=vox, distance_um=0.3
    )
    assert list(figures["point_tp"]) == [1, 0, 1, 2]
    assert figures["point_f1"][-1] == 1.0
    assert list(objects["truth_id"]) == [1, 2]
    assert list(objects["plane"]) == [0, 2]


def test_points_csv_in_px_is_scaled_by_the_voxel_size(tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("index,axis-0,axis-1,axis-2\n0,2,10,20\n1,1,0,5\n")
    pts = cmp.read_points_csv(path, (2.0, 0.1, 0.1))
    np.testing.assert_allclose(pts, [[4.0, 1.0, 2.0], [2.0, 0.0, 0.5]])
    um = tmp_path / "um.csv"
    um.write_text("y_um,x_um,type\n1.5,2.5,mushroom\n")
    np.testing.assert_allclose(cmp.read_points_csv(um, (1, 1, 1)), [[0.0, 1.5, 2.5]])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no coordinate columns"):
        cmp.read_points_csv(bad, (1, 1, 1))


def test_mismatched_grids_and_suspicious_layers_are_named():
    with pytest.raises(InputError, match="shape"):
        cmp.check_same_grid((4, 5), (4, 6), "pred", "truth")
    with pytest.raises(InputError, match="pixel size"):
        cmp.check_same_grid((4, 5), (4, 5), "pred", "truth", (0.1, 0.1), (0.2, 0.2))
    cmp.check_same_grid((4, 5), (4, 5), "pred", "truth", (0.1, 0.1), (0.1, 0.1))
    semantic = (_squares(TRUTH_POS) > 0).astype(np.uint8)
    assert cmp.looks_semantic(semantic) == 4
    assert cmp.looks_semantic(_squares(TRUTH_POS)) == 0
    (message,) = cmp.input_warnings(semantic, "rater A", "ground-truth spines", instances=True)
    assert "4 separate regions" in message
    (message,) = cmp.input_warnings(np.zeros((4, 4), np.uint8), "p", "predicted spines", True)
    assert "empty" in message
    split = mask_to_instances(semantic)
    result = cmp.compare(pred_spines=_squares(TRUTH_POS), truth_spines=split)
    assert result.figures()["spine_f1"] == 1.0
    # as given (one object), the four predicted squares match nothing at IoU 0.5
    assert (
        cmp.compare(pred_spines=_squares(TRUTH_POS), truth_spines=semantic).figures()["spine_tp"]
        == 0
    )


def test_empty_prediction_gives_zero_recall_and_undefined_precision():
    f = cmp.compare(
        pred_spines=np.zeros((40, 40), np.int32), truth_spines=_squares(TRUTH_POS)
    ).figures()
    assert (f["spine_tp"], f["spine_fn"]) == (0, 4)
    assert f["spine_recall"] == 0.0 and np.isnan(f["spine_precision"])


def test_csv_export_is_readable(tmp_path):
    import pandas as pd

    result = cmp.compare(pred_spines=_squares(PRED_POS), truth_spines=_squares(TRUTH_POS))
    cmp.write_csv(tmp_path / "f.csv", cmp.figures_table(result.figures()))
    cmp.write_csv(tmp_path / "o.csv", result.objects)
    f = pd.read_csv(tmp_path / "f.csv")
    assert f["spine_f1"][0] == pytest.approx(0.75) and f["scope"][0] == "stack"
    o = pd.read_csv(tmp_path / "o.csv")
    assert list(o["status"]) == ["TP", "TP", "TP", "FP", "FN"]
    assert not list(tmp_path.glob(".*part"))


def test_cli_evaluate_uses_the_same_engine_per_plane_points_and_csv(tmp_path, capsys):
    import pandas as pd

    from napari_dendrite_panoptic.cli import main
    from napari_dendrite_panoptic.io import write_labels_tiff

    truth = np.stack([_squares(TRUTH_POS), _squares(TRUTH_POS[:2])])
    pred = np.stack([_squares(PRED_POS), _squares(TRUTH_POS[:2])])
    vox = (2.0, 0.1, 0.1)
    write_labels_tiff(tmp_path / "p.tif", pred.astype(np.uint16), vox)
    write_labels_tiff(tmp_path / "t.tif", truth.astype(np.uint16), vox)
    # centres in px (napari Points CSV): spine 1 of plane 0, exactly; one far from everything
    (tmp_path / "c.csv").write_text("index,axis-0,axis-1,axis-2\n0,0,3.5,3.5\n1,1,38,2\n")
    args = ["evaluate", "--pred-spines", str(tmp_path / "p.tif")]
    args += ["--truth-spines", str(tmp_path / "t.tif"), "--truth-points", str(tmp_path / "c.csv")]
    args += ["--per-plane", "--distance-um", "0.3", "--csv", str(tmp_path / "run")]
    assert main(args) == 0
    out = capsys.readouterr().out
    # whole stack: 3D objects (the squares in both planes are one spine each): 3 of 4 found
    assert "instance_tp              3" in out and "instance_fp              1" in out
    # the centroid of a two-plane spine lies 1 µm (half a z step) from the plane-0 centre
    assert "point_tp                 0" in out
    figures = pd.read_csv(tmp_path / "run_figures.csv")
    assert list(figures["plane"].astype(str)) == ["0", "1", "all"]
    assert list(figures["spine_f1"]) == pytest.approx([0.75, 1.0, 10 / 12])
    assert list(figures["point_tp"]) == [1, 0, 1]
    objects = pd.read_csv(tmp_path / "run_objects.csv")
    assert {"plane", "status", "by", "pred_id", "truth_id", "centroid_z_um"} <= set(objects)
    assert (objects["by"] == "iou").sum() == 7 and (objects["status"] == "FN").sum() == 1 + 1
    assert main(args) == 2  # refuses to replace the CSVs without --overwrite
    assert main([*args, "--overwrite"]) == 0


def test_comparison_engine_imports_neither_napari_nor_qt_nor_torch():
    import subprocess
    import sys

    code = (
        "import sys, napari_dendrite_panoptic.evaluation\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PySide2', 'vispy', 'torch', 'matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sparse_large_ids_are_matched_without_a_table_of_every_id():
    truth = _squares(TRUTH_POS, dtype=np.uint32)
    pred = _squares(PRED_POS, ids=[4_000_000_000, 7, 3_999_999_999, 12], dtype=np.uint32)
    result = cmp.compare(pred_spines=pred, truth_spines=truth)
    assert result.figures()["spine_f1"] == pytest.approx(0.75)
    assert sorted(result.objects["pred_id"][result.objects["status"] == "TP"]) == [
        7,
        3_999_999_999,
        4_000_000_000,
    ]
    status = cmp.spine_status_map(pred, truth, result.objects)
    assert status[3, 3] == 1 and status[34, 34] == 4


def test_one_chosen_plane_numbers_centres_by_their_row_in_the_whole_list():
    pred = np.zeros((3, 20, 20), np.int32)
    pred[0, 2:5, 2:5] = 1
    pred[2, 2:5, 2:5] = 2
    truth_um = np.array([[0.0, 0.6, 0.6], [1.0, 0.6, 0.6], [1.0, 3.0, 3.0]])  # rows 1, 2, 3
    figures, objects = cmp.compare_planes(
        pred_spines=pred,
        truth_points_um=truth_um,
        voxel_size_um=(0.5, 0.2, 0.2),
        distance_um=0.3,
        planes=[2],
    )
    assert list(figures["plane"]) == ["2", "all"]
    assert list(figures["point_tp"]) == [1, 1] and list(figures["point_fn"]) == [1, 1]
    assert sorted(objects["truth_id"][objects["truth_id"] > 0]) == [2, 3]
    assert set(objects["plane"]) == {2}
    with pytest.raises(InputError, match="outside"):
        cmp.compare_planes(pred_spines=pred, truth_points_um=truth_um, planes=[3])
