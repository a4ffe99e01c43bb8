"""Hard negatives of centre-annotated fields: bright blobs far from every click."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.data import real as rd
from napari_dendrite_panoptic.data.mix import parse_mix, training_source
from napari_dendrite_panoptic.data.real.records import PointAnnotatedImage

PX = 0.1  # µm per px


def _field(spots: list[tuple[int, int]], size: int = 200) -> np.ndarray:
    """A dark field with one bright Gaussian blob (σ 2.5 px) at each (y, x)."""
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size), 10.0, np.float32)
    for y, x in spots:
        image += 100.0 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.5**2))
    return image


SPINES = [(40, 40), (40, 70), (40, 100), (70, 40), (70, 100)]  # 3 µm apart
PUNCTUM = (160, 150)  # far (> 10 µm) from every spine


def test_a_bright_punctum_far_from_every_click_is_a_hard_negative():
    image = _field(SPINES + [PUNCTUM])
    anchors = rd.hard_negatives(image, np.array(SPINES, float), PX)
    assert anchors.shape == (1, 2)
    assert np.abs(anchors[0] - PUNCTUM).max() <= 1
    # a clicked spine, even 1 px off its peak, is never one
    clicks = np.array(SPINES, float) + 1
    assert np.abs(rd.hard_negatives(image, clicks, PX) - PUNCTUM).max() <= 1


def test_a_field_with_many_unclicked_blobs_gives_no_hard_negatives():
    # three of five bright blobs unclicked: these may be spines the annotator skipped
    image = _field(SPINES + [PUNCTUM])
    assert rd.hard_negatives(image, np.array(SPINES[:2], float), PX).shape == (0, 2)
    # and without clicks there is nothing to compare a blob's brightness with
    assert rd.hard_negatives(image, np.zeros((0, 2)), PX).shape == (0, 2)


def test_negative_crops_are_placed_on_the_anchors():
    image = _field(SPINES + [PUNCTUM], size=400)
    item = PointAnnotatedImage("f", image, np.array(SPINES, float), PX, 10.0, "g")
    empty = PointAnnotatedImage("e", image, np.zeros((0, 2)), PX, 10.0, "g")
    anchors = [rd.hard_negatives(image, item.centres_px, PX), np.zeros((0, 2))]
    # 64 px at 0.1 µm: a crop that holds the punctum cannot hold a spine
    src = rd.point_source([item, empty], 64, PX, p_centre=1.0, anchors=anchors)
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = src(rng)
        assert s.spines.max() == 0  # no clicked spine in view: the blob is background
        assert s.image.max() > 0.9  # the punctum is in view
    with pytest.raises(ValueError, match="anchor"):
        rd.point_source([empty], 64, PX, anchors=[np.zeros((0, 2))])


def test_the_training_mix_knows_the_hard_negative_source():
    assert parse_mix("findspines:0.2,findspines-negatives:0.1") == [
        ("findspines", 0.2),
        ("findspines-negatives", 0.1),
    ]


@pytest.mark.shared_data
def test_findspines_hard_negatives_come_from_training_fields_only():

    if not (rd.data_root() / "findspines").is_dir():
        pytest.skip("../shared/data/findspines is absent: this test needs it")
    _, described = training_source("findspines-negatives:1", 64, 0.08)
    assert "hard negatives" in described
    train, val = rd.findspines_split(rd.load_findspines())
    n = sum(len(rd.hard_negatives(it.image, it.centres_px, it.pixel_size_um)) for it in train)
    assert f"{n} blobs" in described and n > 100
