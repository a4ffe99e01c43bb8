"""Analysis exports: spine and branch CSVs with units, the Fiji ROI set, atomic writes."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import roifile

from napari_dendrite_panoptic.analysis import write_analysis_outputs
from napari_dendrite_panoptic.analysis.roi_export import spine_rois
from napari_dendrite_panoptic.inference.spine_table import spine_table


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_plane_outputs_have_types_measurements_and_branches(small_plane, tmp_path):
    s = small_plane
    base = spine_table(s.spines, {}, s.voxel_size_um)
    written = write_analysis_outputs(
        tmp_path, "p", s.dendrite, s.spines, s.voxel_size_um, s.image, base_table=base
    )
    assert {p.name for p in written.values()} == {
        "p_spines.csv",
        "p_dendrites.csv",
        "p_spines_roi.zip",
    }
    spines = _rows(written["csv"])
    n = len(np.unique(s.spines)) - 1
    assert len(spines) == n
    cols = set(spines[0])
    assert {"id", "centroid_y_um", "score", "area_um2", "type", "length_um"} <= cols
    assert {"head_diameter_um", "neck_width_um", "branch_id", "distance_along_branch_um"} <= cols
    assert {r["type"] for r in spines} <= {"mushroom", "stubby", "branched", "thin", "filopodium"}
    branches = _rows(written["dendrites_csv"])
    assert branches and {"branch_id", "length_um", "spine_count", "density_per_um"} <= set(
        branches[0]
    )
    assert sum(int(b["spine_count"]) for b in branches) == n
    rois = roifile.roiread(written["roi"])
    assert len(rois) == n
    assert all(r.name.startswith("spine-") for r in rois)
    # the outline encloses the spine's pixels
    first = rois[0]
    sid = int(first.name.split("-")[1])
    ys, xs = np.nonzero(s.spines[0] == sid)
    x0, y0 = first.coordinates().min(0)
    x1, y1 = first.coordinates().max(0)
    assert x0 <= xs.min() + 0.5 and x1 >= xs.max() + 0.5
    assert y0 <= ys.min() + 0.5 and y1 >= ys.max() + 0.5
    # nothing temporary left behind
    assert not list(tmp_path.glob(".*part"))


def test_stack_rois_carry_their_plane(small_stack, tmp_path):
    s = small_stack
    rois = spine_rois(s.spines)
    planes = {(int(r.name.split("-")[1]), r.z_position) for r in rois}
    expected = {(int(i), z + 1) for z in range(s.spines.shape[0]) for i in np.unique(s.spines[z])}
    expected = {p for p in expected if p[0] > 0}
    assert planes == expected
    written = write_analysis_outputs(tmp_path, "st", s.dendrite, s.spines, s.voxel_size_um, s.image)
    spines = _rows(written["csv"])
    assert "volume_um3" in spines[0] and "area_um2" not in spines[0]
    assert len(roifile.roiread(written["roi"])) == len(rois)
    # one spine is one object: its per-plane ROIs share one name (Fiji lists them together)
    deep = [
        i for i in np.unique(s.spines) if i and len(np.unique(np.nonzero(s.spines == i)[0])) > 1
    ]
    assert deep
    names = {
        r.name for r in roifile.roiread(written["roi"]) if r.name.startswith(f"spine-{deep[0]}-")
    }
    assert len(names) == 1


def test_a_failed_write_leaves_the_old_file(small_plane, tmp_path, monkeypatch):
    import zipfile

    s = small_plane
    old = tmp_path / "p_spines_roi.zip"
    old.write_bytes(b"precious")

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError, match="disk full"):
        write_analysis_outputs(tmp_path, "p", s.dendrite, s.spines, s.voxel_size_um, s.image)
    assert old.read_bytes() == b"precious"
    assert not list(tmp_path.glob(".*part"))


def test_segment_writes_the_analysis_beside_the_labels(tiny_model_dir, tmp_path):
    from napari_dendrite_panoptic.cli import main

    plane = tmp_path / "in" / "plane.tif"
    assert main(["sample", str(plane), "--plane"]) == 0
    out = tmp_path / "out"
    args = ["segment", str(plane), "--out", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu", "--score-threshold", "0"]) == 0
    spines = _rows(out / "plane_spines.csv")
    assert spines, "the tiny random model keeps some spines at score 0"
    assert {"score", "area_um2", "type", "length_um", "branch_id"} <= set(spines[0])
    header = (out / "plane_dendrites.csv").read_text().splitlines()[0]
    assert header.startswith("branch_id,length_um,")
    assert len(roifile.roiread(out / "plane_spines_roi.zip")) == len(spines)
    # the new outputs are protected like the others
    assert main(args) == 1


def test_analysis_imports_neither_napari_nor_qt_nor_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import napari_dendrite_panoptic.analysis as a\n"
        "import napari_dendrite_panoptic.analysis.exports, napari_dendrite_panoptic.analysis.roi_export\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'torch', 'vispy')]\n"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
