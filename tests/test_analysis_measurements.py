"""Skeleton, dendrite length, spine measurements and density against the generator's exact
geometry, in 2D and in stacks with anisotropic voxels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.analysis import (
    analyse,
    dendrite_length_um,
    measure_spines,
    skeletonize_dendrite,
)
from napari_dendrite_panoptic.data import synthetic
from napari_dendrite_panoptic.errors import InputError

PLANES = [(21, (1, 256, 256)), (8, (1, 192, 192))]
STACKS = [(4, (12, 256, 256)), (6, (12, 192, 192))]


def _samples(specs, z_step=0.5):
    return [
        synthetic.generate(seed, synthetic.SyntheticConfig(shape=shape, z_step_um=z_step))
        for seed, shape in specs
    ]


def _errors(samples):
    """Relative length errors and head-diameter errors in px of the unclipped spines."""
    rel, head = [], []
    for s in samples:
        table = measure_spines(s.dendrite, s.spines, s.voxel_size_um, s.image)
        px = s.voxel_size_um[-1]
        for i, sid in enumerate(table["id"]):
            g = s.spine_geometry[int(sid)]
            if g.clipped:
                continue
            rel.append((table["length_um"][i] - g.length_um) / g.length_um)
            if s.spine_types[int(sid)] != "branched":  # two heads: the larger one is drawn
                head.append((table["head_diameter_um"][i] - g.head_diameter_um) / px)
    return np.abs(rel), np.abs(head)


@pytest.mark.parametrize("specs", [PLANES, STACKS], ids=["2D", "3D-anisotropic"])
def test_spine_length_and_head_diameter_match_the_drawn_geometry(specs):
    rel, head = _errors(_samples(specs))
    assert len(rel) >= 40
    # per spine: the median spine's length within 15 %, its head diameter within 1 px
    assert np.median(rel) < 0.15
    assert np.mean(rel < 0.15) > 0.75
    assert np.median(head) <= 1.0
    assert np.mean(head <= 1.0) > 0.6


@pytest.mark.parametrize("specs", [PLANES, STACKS], ids=["2D", "3D-anisotropic"])
def test_density_per_um_within_ten_percent(specs):
    for s in _samples(specs):
        result = analyse(s.dendrite, s.spines, s.voxel_size_um, s.image, type_method="rules")
        truth = len(s.spine_geometry) / s.dendrite_length_um
        assert result.skeleton.length_um == pytest.approx(s.dendrite_length_um, rel=0.1)
        assert result.density_per_um == pytest.approx(truth, rel=0.1)
        # every spine sits on a branch and the branch rows add up
        assert (result.spines["branch_id"] > 0).all()
        assert result.branches["spine_count"].sum() == len(result.spines["id"])


def test_skeleton_of_a_y_has_three_branches_with_their_lengths():
    mask = np.zeros((120, 120), bool)
    mask[10:110, 58:63] = True  # vertical bar, 100 px
    for k in range(50):  # diagonal arm from the middle to the right
        mask[60 - k : 60 - k + 4, 60 + k : 60 + k + 4] = True
    sk = skeletonize_dendrite(mask, (1.0, 0.2, 0.2), prune_um=1.0)
    assert len(sk.branches) == 3
    lengths = sorted(b.length_um for b in sk.branches)
    total = 100 * 0.2 + 50 * np.sqrt(2) * 0.2
    assert sum(lengths) == pytest.approx(total, rel=0.08)
    table = sk.branch_table()
    assert set(table) >= {"branch_id", "length_um", "start_y_um", "end_x_um"}
    assert sk.branch_labels().max() == 3


def test_dendrite_length_uses_the_voxel_size_in_3d():
    mask = np.zeros((6, 40, 200), bool)
    mask[2:4, 18:23, 10:190] = True
    assert dendrite_length_um(mask, (0.5, 0.1, 0.1)) == pytest.approx(18.0, rel=0.06)
    assert dendrite_length_um(mask, (0.5, 0.2, 0.2)) == pytest.approx(36.0, rel=0.06)


def test_intensity_area_and_attachment_of_a_drawn_spine():
    dend = np.zeros((40, 60), np.uint8)
    dend[:, :10] = 1
    spines = np.zeros((40, 60), np.int32)
    spines[19:22, 10:20] = 1  # neck 3 px wide, 10 px long
    yy, xx = np.ogrid[:40, :60]
    spines[(yy - 20) ** 2 + (xx - 24) ** 2 <= 16] = 1  # head, radius 4 px
    img = np.where(spines > 0, 100.0, 10.0)
    img[20, 24] = 250.0
    t = measure_spines(dend, spines, (1.0, 0.1, 0.1), img)
    assert t["area_um2"][0] == pytest.approx((spines > 0).sum() * 0.01)
    assert t["max_intensity"][0] == 250.0
    assert 100.0 < t["mean_intensity"][0] < 103.0
    assert t["attached"][0]
    assert t["base_x_um"][0] == pytest.approx(0.95, abs=0.06)  # on the shaft's edge
    assert t["length_um"][0] == pytest.approx(1.85, abs=0.1)  # 0.95 µm → 2.8 µm
    assert t["head_diameter_um"][0] == pytest.approx(0.9, abs=0.1)
    assert t["neck_width_um"][0] == pytest.approx(0.3, abs=0.1)
    assert t["neck_length_um"][0] == pytest.approx(0.95, abs=0.2)


def test_mismatched_shapes_are_refused():
    with pytest.raises(InputError, match="differ in shape"):
        measure_spines(np.zeros((10, 10)), np.zeros((10, 12), np.int32), (1, 0.1, 0.1))
    with pytest.raises(InputError, match="integers"):
        measure_spines(np.zeros((10, 10)), np.zeros((10, 10), float), (1, 0.1, 0.1))


def test_a_shaft_a_few_planes_thick_gives_one_branch_with_its_3d_length():
    # 12 planes at 0.5 µm, shaft radius ~0.5 µm rising 3 µm in z over 18 µm in x
    z, y, x = np.mgrid[:12, :40, :200]
    centre_z = 3 + 6 * (x - 10) / 180
    mask = ((z - centre_z) * 0.5) ** 2 + ((y - 20) * 0.1) ** 2 <= 0.5**2
    mask &= (x >= 10) & (x < 190)
    sk = skeletonize_dendrite(mask, (0.5, 0.1, 0.1))
    assert len(sk.branches) == 1
    assert sk.length_um == pytest.approx(np.hypot(18.0, 3.0), rel=0.06)
