import numpy as np
import pytest

from napari_dendrite_panoptic.errors import Cancelled, InputError
from napari_dendrite_panoptic.inference import (
    InferenceConfig,
    PanopticResult,
    iter_predict,
    predict,
)
from napari_dendrite_panoptic.inference.config import ProgressEvent
from napari_dendrite_panoptic.inference.tiling import tile_layout, tile_origins


def _cfg(model, **kw):
    return InferenceConfig(model=str(model), device="cpu", spine_score_threshold=0.0, **kw)


def test_stack_gives_panoptic_labels_of_the_input_shape(tiny_model_dir, small_stack):
    events = list(iter_predict(small_stack.image, small_stack.voxel_size_um, _cfg(tiny_model_dir)))
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    result = events[-1]
    assert isinstance(result, PanopticResult)
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    assert progress[-1].done == progress[-1].total > 0
    assert result.dendrite.shape == result.spines.shape == small_stack.image.shape
    assert result.dendrite.dtype == np.uint8 and result.spines.dtype == np.uint32
    # every voxel is background, dendrite or exactly one spine
    assert not np.any((result.dendrite > 0) & (result.spines > 0))
    ids = np.unique(result.spines[result.spines > 0])
    np.testing.assert_array_equal(result.table["id"], ids)
    assert "volume_um3" in result.table and result.pixel_size_source == "image metadata"
    assert result.voxel_size_um == small_stack.voxel_size_um


def test_other_pixel_size_is_resampled_and_returned_at_input_shape(tiny_model_dir):
    image = np.random.default_rng(0).integers(0, 500, size=(70, 130)).astype(np.uint16)
    result = predict(image, (1.0, 0.2, 0.2), _cfg(tiny_model_dir))
    assert result.dendrite.shape == (1, 70, 130)
    assert result.voxel_size_um == (1.0, 0.2, 0.2)
    assert "area_um2" in result.table
    # an explicit pixel size wins over the metadata
    result = predict(image, (1.0, 0.2, 0.2), _cfg(tiny_model_dir, pixel_size_um=0.05))
    assert result.voxel_size_um[1:] == (0.05, 0.05)
    assert result.pixel_size_source == "pixel_size_um parameter"


def test_large_plane_is_tiled_and_stitched(tiny_model_dir):
    image = np.random.default_rng(1).normal(100, 10, size=(300, 700)).astype(np.float32)
    cfg = _cfg(tiny_model_dir, tile_size=128, tile_overlap=32)
    events = list(iter_predict(image, (1.0, 0.1, 0.1), cfg))  # the tiny model's pixel size
    total = events[0].total
    assert total == len(tile_layout(300, 128, 32)[1]) * len(tile_layout(700, 128, 32)[1])
    result = events[-1]
    assert result.spines.shape == (1, 300, 700)
    assert result.pixel_size_source == "image metadata"


def test_tile_origins_cover_the_axis_with_overlap():
    for length in (64, 129, 500, 4096):
        starts = tile_origins(length, 128, 32)
        assert starts[0] == 0 and starts[-1] + 128 >= length
        gaps = np.diff(starts)
        assert (gaps <= 128 - 32).all()


def test_tile_layout_uses_the_fewest_and_smallest_tiles():
    assert tile_layout(1024, 1024, 64) == (1024, [0])
    assert tile_layout(300, 1024, 64) == (320, [0])  # one tile, padded to a multiple of 32
    tile, starts = tile_layout(1280, 1024, 64)
    assert (tile, len(starts)) == (672, 2)  # not two tiles of 1024
    for length in (1025, 2000, 4096, 5000):
        tile, starts = tile_layout(length, 1024, 64)
        assert tile <= 1024 and tile % 32 == 0
        assert starts[0] == 0 and starts[-1] + tile >= length
        assert (np.diff(starts) <= tile - 64).all()
        assert len(starts) == int(np.ceil((length - 64) / (1024 - 64)))


def test_cancel_between_tiles(tiny_model_dir, small_stack):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        predict(
            small_stack.image, small_stack.voxel_size_um, _cfg(tiny_model_dir), should_stop=stop
        )


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((2, 3, 4, 5)), "expected a 2D"),
        (np.zeros((1, 1)), "too small"),
        (np.array([["a", "b"], ["c", "d"]]), "not a real number type"),
    ],
)
def test_bad_images_get_readable_errors(tiny_model_dir, image, message):
    with pytest.raises(InputError, match=message):
        predict(image, None, _cfg(tiny_model_dir))


def test_non_finite_and_constant_images_segment(tiny_model_dir):
    image = np.full((64, 64), 5.0, dtype=np.float32)
    image[3, 3] = np.nan
    image[4, 4] = np.inf
    result = predict(image, None, _cfg(tiny_model_dir))
    assert result.dendrite.shape == (1, 64, 64)


def test_config_is_validated():
    with pytest.raises(InputError, match="multiple of 32"):
        InferenceConfig(tile_size=100)
    with pytest.raises(InputError, match="between 0 and 1"):
        InferenceConfig(spine_score_threshold=2)
    with pytest.raises(InputError, match="pixel size"):
        InferenceConfig(pixel_size_um=0)


def test_model_card_recommends_the_spine_threshold(tiny_model_dir, tmp_path, small_plane):
    from dataclasses import replace

    from napari_dendrite_panoptic.models import load_models, save_models

    tiny = load_models(tiny_model_dir, "cpu")
    strict = replace(tiny.card, inference={"spine_score_threshold": 1.0})
    save_models(tmp_path / "strict", strict, tiny.spines, tiny.dendrites)
    cfg = InferenceConfig(model=str(tmp_path / "strict"), device="cpu")
    result = predict(small_plane.image, small_plane.voxel_size_um, cfg)
    assert result.parameters["spine_score_threshold_used"] == 1.0
    assert result.spines.max() == 0  # no detection scores 1.0
    loose = predict(
        small_plane.image, small_plane.voxel_size_um, replace(cfg, spine_score_threshold=0.0)
    )
    assert loose.parameters["spine_score_threshold_used"] == 0.0 and loose.spines.max() > 0


@pytest.mark.parametrize("shape", [(3, 70), (2, 2), (40, 1000)])
def test_thin_and_tiny_planes_are_padded_and_segmented(tiny_model_dir, shape):
    """Planes smaller than a tile are mirrored into the padding, however thin."""
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    result = predict(image, (1.0, 0.08, 0.08), _cfg(tiny_model_dir))
    assert result.dendrite.shape == (1, *shape) and result.spines.shape == (1, *shape)


@pytest.mark.parametrize("size", [100, 57])
def test_spine_labels_are_resized_without_shifting_them(size):
    """Labels found at the model's pixel size go back to the image's size centred: plain
    'nearest' would shift them by up to a pixel down and right when enlarging."""
    import torch
    from scipy import ndimage as ndi

    from napari_dendrite_panoptic.inference.planes import resize as _resize

    labels = np.zeros((40, 40), np.float32)
    labels[10:13, 20:23] = 1
    resized = _resize(torch.from_numpy(labels)[None, None], (size, size), "nearest")[0, 0]
    scale = size / 40
    cy, cx = ndi.center_of_mass(resized.numpy() > 0)
    assert abs((cy + 0.5) / scale - 11.5) < 0.35 and abs((cx + 0.5) / scale - 21.5) < 0.35
