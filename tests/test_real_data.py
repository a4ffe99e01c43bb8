"""Real-data adapters: loaders, twin-group split, pseudo masks and sample sources.

Tests marked ``shared_data`` read ``../shared/data`` and skip when it is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.core import SPINE_TYPES
from napari_dendrite_panoptic.data import TrainingSample
from napari_dendrite_panoptic.data import real as rd
from napari_dendrite_panoptic.errors import DataNotFoundError

CROP = 128


@pytest.fixture(scope="module")
def root():
    path = rd.data_root()
    if not (path / "smirnov2018").is_dir():
        pytest.skip("../shared/data is absent: real-data tests need it")
    return path


@pytest.fixture(scope="module")
def findspines(root):
    return rd.load_findspines(root)


def _check_sample(s: TrainingSample, crop: int) -> None:
    assert isinstance(s, TrainingSample)
    assert s.image.shape == s.dendrite.shape == s.spines.shape == (crop, crop)
    assert s.image.dtype == np.float32 and s.dendrite.dtype == np.uint8
    assert s.spines.dtype == np.int32
    assert np.isfinite(s.image).all()
    # normalised: 1st..99.8th percentile mapped to 0..1
    assert -0.5 < np.percentile(s.image, 50) < 1.0 and s.image.max() > 0.5


def _centres_inside(items) -> bool:
    for it in items:
        h, w = it.image.shape
        c = it.centres_px
        if c.size and not ((c >= 0).all() and (c[:, 0] < h).all() and (c[:, 1] < w).all()):
            return False
    return True


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(rd.ENV_VAR, str(tmp_path))
    assert rd.data_root() == tmp_path
    with pytest.raises(DataNotFoundError, match=f"'smirnov2018/test' is absent.*{rd.ENV_VAR}"):
        rd.load_smirnov("test")
    monkeypatch.delenv(rd.ENV_VAR)
    assert rd.data_root() == rd.DATA_ROOT
    assert rd.DATA_ROOT.parts[-2:] == ("shared", "data")


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "--device", "cpu", "--real"],
        ["train", "--data", "generator:0.5,findspines:0.5", "--steps", "1"],
    ],
)
def test_an_absent_real_set_is_one_line_that_names_the_setting(
    command, monkeypatch, tmp_path, capsys
):
    from napari_dendrite_panoptic.cli import main

    monkeypatch.setenv(rd.ENV_VAR, str(tmp_path / "nowhere"))
    if command[0] == "train":
        command = [*command, "--out", str(tmp_path / "m"), "--work", str(tmp_path / "w")]
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and rd.ENV_VAR in err and "is absent" in err
    assert not (tmp_path / "m").exists()


def test_a_card_never_fingerprints_a_set_that_is_not_there(monkeypatch, tmp_path):
    from napari_dendrite_panoptic.data import data_fingerprints

    monkeypatch.setenv(rd.ENV_VAR, str(tmp_path))
    (tmp_path / "findspines").mkdir()
    (tmp_path / "findspines" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    prints = data_fingerprints("generator:0.4,findspines:0.3,smirnov:0.3")
    assert set(prints) == {"generator", "findspines"}


def test_pseudo_masks_on_a_synthetic_plane_cover_the_spines():
    from napari_dendrite_panoptic.data import synthetic

    cfg = synthetic.SyntheticConfig(shape=(1, 160, 160), pixel_size_um=0.1)
    s = synthetic.generate(2, cfg)
    ids = sorted(s.spine_centres_um)
    centres = np.array([s.spine_centres_um[i][1:] for i in ids]) / 0.1
    lab = rd.pseudo_spine_masks(s.image[0], centres, radius_px=9, min_radius_px=2.5)
    assert lab.dtype == np.int32
    assert np.array_equal(np.unique(lab[lab > 0]), np.arange(1, len(ids) + 1))
    spines = s.spines[0] > 0
    # nearly every true spine pixel is covered; most mask pixels are spine, not shaft
    assert (lab[spines] > 0).mean() > 0.8
    assert ((lab > 0) & (s.dendrite[0] > 0)).sum() < 0.5 * (lab > 0).sum()


@pytest.mark.shared_data
def test_smirnov_test_split_counts(root):
    items = rd.load_smirnov("test", root)
    assert len(items) == 183
    assert sum(len(it.centres_px) for it in items) == 680
    assert _centres_inside(items)
    it = items[0]
    assert it.image.dtype == np.float32 and it.image.ndim == 2
    assert it.pixel_size_um == pytest.approx(1 / 15.36)
    assert it.match_radius_px == 7.5


@pytest.mark.shared_data
def test_yolo11_val_masks(root):
    items = rd.load_yolo11("val", root)
    assert len(items) == 15
    n_spines = 0
    for it in items:
        ids = np.unique(it.spines)
        ids = ids[ids > 0]
        assert set(ids.tolist()) == set(it.spine_types)  # one unique id per spine
        assert set(it.spine_types.values()) <= set(SPINE_TYPES)
        assert not ((it.dendrite > 0) & (it.spines > 0)).any()
        assert np.array_equal(it.foreground, it.image > 0)
        assert np.array_equal((it.dendrite > 0) | (it.spines > 0), it.foreground)
        assert it.pixel_size_um == {512: 0.14, 1024: 0.08}[it.image.shape[1]]
        n_spines += len(it.spine_types)
    assert n_spines == 102  # every label line of the val split


@pytest.mark.shared_data
def test_findspines_counts_and_pixel_sizes(findspines):
    assert len(findspines) == 296
    assert sum(len(it.centres_px) for it in findspines) == 8653
    assert _centres_inside(findspines)
    px = {it.image.shape: it.pixel_size_um for it in findspines}
    assert px[(512, 512)] == pytest.approx(0.1)
    assert px[(256, 256)] == pytest.approx(0.2)
    assert px[(130, 512)] == pytest.approx(0.1)  # a crop of a full-resolution field
    # match radius: half the annotators' box (32 px on 000018, 16.3 px on 000001)
    by_name = {it.name: it for it in findspines}
    assert by_name["000018"].match_radius_px == pytest.approx(16.0, abs=0.1)
    assert by_name["000001"].match_radius_px == pytest.approx(8.13, abs=0.1)


@pytest.mark.shared_data
def test_findspines_split_keeps_twin_groups_apart(findspines):
    groups = {it.group for it in findspines}
    assert 40 <= len(groups) <= 80
    by_name = {it.name: it.group for it in findspines}
    assert by_name["000132"] == by_name["000133"] == by_name["000134"]  # one field, 3 times
    assert by_name["000079"] == by_name["000084"]  # twins across a gap in the numbering
    train, val = rd.findspines_split(findspines, val_fraction=0.2, seed=0)
    assert len(train) + len(val) == 296
    assert not {it.group for it in train} & {it.group for it in val}
    assert 0.17 <= len(val) / 296 <= 0.25
    again = rd.findspines_split(findspines, val_fraction=0.2, seed=0)[1]
    assert [it.name for it in again] == [it.name for it in val]


@pytest.mark.shared_data
def test_pseudo_masks_one_per_centre(root, findspines):
    items = rd.load_smirnov("test", root, limit=10) + findspines[:3]
    for it in items:
        r = rd.PSEUDO_RADIUS_UM / it.pixel_size_um
        lab = rd.pseudo_spine_masks(it.image, it.centres_px, r, 0.25 / it.pixel_size_um)
        n = len(it.centres_px)
        assert np.array_equal(np.unique(lab[lab > 0]), np.arange(1, n + 1))
        c = np.round(it.centres_px).astype(int)
        assert np.array_equal(lab[c[:, 0], c[:, 1]], np.arange(1, n + 1))
        areas = np.bincount(lab.ravel())[1:]
        assert areas.max() <= np.pi * (r + 1) ** 2  # never beyond the growth disk


@pytest.mark.shared_data
def test_point_sources(root, findspines):
    rng = np.random.default_rng(0)
    smirnov = rd.point_source(rd.load_smirnov("test", root, limit=20), CROP, 0.1)
    fields = rd.point_source(findspines[:8], CROP, 0.1)
    for src, name in ((smirnov, "smirnov"), (fields, "findspines")):
        n_spines = 0
        for _ in range(3):
            s = src(rng)
            _check_sample(s, CROP)
            assert (s.dendrite == 255).all()
            assert s.spine_weight == 0.5 and s.source == name
            ids = np.unique(s.spines)
            assert np.array_equal(ids, np.arange(ids.size))  # ids 0..n, no gaps
            n_spines += ids.size - 1
        assert n_spines >= 3  # crops prefer spines


@pytest.mark.shared_data
def test_mask_and_mixed_sources(root):
    rng = np.random.default_rng(1)
    items = rd.load_yolo11("val", root, limit=3)
    src = rd.mask_source(items, CROP, 0.1)
    for _ in range(3):
        s = src(rng)
        _check_sample(s, CROP)
        assert set(np.unique(s.dendrite)) <= {0, 1}
        assert not ((s.dendrite > 0) & (s.spines > 0)).any()
        assert s.spine_weight == 1.0 and s.source == "yolo11"
        # the background is no longer a flat black: it carries noise and structure
        bg = (s.dendrite == 0) & (s.spines == 0)
        assert s.image[bg].std() > 0.01
    mixed = rd.mixed_source([(src, 1.0), (lambda r: pytest.fail("weight 0 drawn"), 0.0)])
    _check_sample(mixed(rng), CROP)


def test_yolo_labels_are_read_from_corner_to_corner(tmp_path):
    """A YOLO outline from 0.25 to 0.5 of an 8 px image covers pixels 2 and 3 on each axis (its
    edges at 2.0 and 4.0 px); read with pixel centres at i / size it covered pixels 2, 3 and 4.
    Box centres of FindSpines labels are read the same way."""
    import tifffile

    folder = tmp_path / "spine-types-yolo11" / "train"
    folder.mkdir(parents=True)
    image = np.full((8, 8), 100, np.uint8)
    tifffile.imwrite(folder / "1.tif", image)
    (folder / "1.txt").write_text("0 0.25 0.25 0.5 0.25 0.5 0.5 0.25 0.5\n")
    (item,) = rd.load_yolo11("train", root=tmp_path)
    rows, cols = np.nonzero(item.spines)
    assert sorted(set(rows.tolist())) == [2, 3] and sorted(set(cols.tolist())) == [2, 3]

    fields = tmp_path / "findspines"
    (fields / "img").mkdir(parents=True)
    (fields / "labels").mkdir()
    from PIL import Image

    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(fields / "img" / "000001.jpg")
    (fields / "labels" / "000001.txt").write_text("0 0.5 0.25 0.0635 0.0635\n")
    (field,) = rd.load_findspines(root=tmp_path)
    np.testing.assert_allclose(field.centres_px, [[15.5, 31.5]])
