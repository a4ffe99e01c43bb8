"""The bundled model on the bundled sample stack and on the real DeepD3 crop."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dendrite_panoptic.evaluation import match_instances, pixel_scores
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import bundled_model_dir, load_models

SHARED_DATA = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundled():
    if not (bundled_model_dir() / "card.json").is_file():
        pytest.fail("the bundled model folder is missing from the package")
    return load_models(None, "cpu")


def test_bundled_card_describes_a_trained_model(bundled):
    card = bundled.card
    assert card.pixel_size_um == pytest.approx(0.08)
    assert card.provenance["steps"] >= 1000
    assert "generator" in card.provenance["data"]
    size = sum(p.stat().st_size for p in bundled_model_dir().glob("*.safetensors"))
    assert size < 40e6


@pytest.mark.parametrize(
    # measured with v0.1: stack 0.59 / 18 of 28 / 0.75; plane 0.94 / 61 of 78 / 0.98; the stack's
    # dendrite with v0.2 and the dendrite depth trim: 0.85 (0.59 without the trim)
    ("which", "min_dendrite_iou", "min_found", "min_precision"),
    [("sample_stack", 0.75, 0.45, 0.6), ("sample_plane", 0.85, 0.65, 0.85)],
)
def test_bundled_model_segments_the_samples(
    bundled, which, min_dendrite_iou, min_found, min_precision
):
    from napari_dendrite_panoptic.data import synthetic

    sample = getattr(synthetic, which)()
    result = predict(sample.image, sample.voxel_size_um, InferenceConfig(device="cpu"), bundled)
    assert result.spines.shape == sample.image.shape
    assert pixel_scores(result.dendrite, sample.dendrite).iou > min_dendrite_iou
    spines, _ = match_instances(result.spines, sample.spines, 0.25)
    assert spines.tp >= min_found * len(sample.spine_types)
    assert spines.precision > min_precision


def test_bundled_model_finds_spines_beside_the_shaft_of_the_real_deepd3_crop(bundled):
    path = SHARED_DATA / "deepd3-benchmark-crop" / "dendrite.tif"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the real-data smoke test needs ../shared/data")
    from napari_dendrite_panoptic.io import read_tiff

    stack = read_tiff(path)
    image = np.asarray(stack.data)[8:14]  # six planes through the dendrite, to stay quick
    result = predict(image, (0.5, 0.094, 0.094), InferenceConfig(device="cpu"), bundled)
    n_spines = len(result.table["id"])
    assert n_spines >= 5
    assert result.dendrite.any()
    # spines sit on the shaft's sides: (nearly) every spine lies within 2 µm of the dendrite
    near = ndi.distance_transform_edt(result.dendrite == 0, sampling=(0.5, 0.094, 0.094)) <= 2.0
    spine_ids = np.unique(result.spines[result.spines > 0])
    attached = np.unique(result.spines[(result.spines > 0) & near])
    assert len(attached) >= 0.9 * len(spine_ids)


def test_no_dendrite_is_drawn_along_the_edges_of_an_odd_sized_image(bundled):
    """A plane whose native size is not a multiple of 32 is padded to one; the padding must not
    read as a shaft along the bottom and right edges (zero padding gave 216 false pixels here,
    mirrored padding 32)."""
    from napari_dendrite_panoptic.data import synthetic

    sample = synthetic.sample_plane()
    image, truth = sample.image[..., :221, :221], sample.dendrite[..., :221, :221] > 0
    result = predict(image, sample.voxel_size_um, InferenceConfig(device="cpu"), bundled)
    band = np.zeros(truth.shape, bool)
    band[..., -20:, :] = band[..., :, -20:] = True
    false_edge = (result.dendrite > 0) & ~truth & band
    assert false_edge.sum() < 100
    assert ((result.dendrite > 0) & truth & band).sum() > 0.8 * (truth & band).sum()


def test_spine_masks_sit_on_the_true_spines(bundled):
    """Mask R-CNN's masks are learned half a pixel right of and below their boxes; pasted on the
    box itself they sat 0.4-0.45 px up and left of every spine (mask IoU lost on small spines)."""
    import dataclasses

    from napari_dendrite_panoptic.data import synthetic

    offsets = []
    for seed in (50000, 50001, 50002):
        config = synthetic.random_config(np.random.default_rng(seed), shape=(1, 256, 256))
        sample = synthetic.generate(seed, dataclasses.replace(config, pixel_size_um=0.08))
        cfg = InferenceConfig(device="cpu", test_time_flips=False)
        found = predict(sample.image, sample.voxel_size_um, cfg, bundled).spines[0]
        truth = sample.spines[0]
        for spine in np.unique(truth)[1:]:
            mask = truth == spine
            hits = found[mask][found[mask] > 0]
            if not hits.size:
                continue
            best = found == np.bincount(hits).argmax()
            if np.count_nonzero(best & mask) < 0.3 * np.count_nonzero(best | mask):
                continue
            offsets.append(np.subtract(ndi.center_of_mass(best), ndi.center_of_mass(mask)))
    mean_dy, mean_dx = np.mean(offsets, axis=0)
    assert len(offsets) > 30
    assert abs(mean_dy) < 0.25 and abs(mean_dx) < 0.25, (mean_dy, mean_dx)


def test_the_fast_cpu_layout_segments_exactly_as_the_default_layout(bundled):
    """Networks loaded for the CPU run in channels-last memory format (faster on oneDNN); the
    segmentation must be the same as with the weights in the default layout."""
    import torch

    from napari_dendrite_panoptic.data import synthetic
    from napari_dendrite_panoptic.models import LoadedModels

    conv = next(m for m in bundled.spines.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    default = LoadedModels(
        bundled.card,
        bundled.folder,
        bundled.spines.to(memory_format=torch.contiguous_format),
        bundled.dendrites.to(memory_format=torch.contiguous_format),
        bundled.device,
    )
    sample = synthetic.sample_plane()
    cfg = InferenceConfig(device="cpu")
    try:
        slow = predict(sample.image, sample.voxel_size_um, cfg, default)
    finally:
        for net in (bundled.spines, bundled.dendrites):
            net.to(memory_format=torch.channels_last)
    fast = predict(sample.image, sample.voxel_size_um, cfg, bundled)
    assert fast.spines.max() > 5
    np.testing.assert_array_equal(fast.spines, slow.spines)
    np.testing.assert_array_equal(fast.dendrite, slow.dendrite)
