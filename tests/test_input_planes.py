"""Networks that see a stack's plane with its neighbours (3 input planes, "2.5D")."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.data import TrainingSample, augment, generator_sample, network_input
from napari_dendrite_panoptic.errors import InputError, ModelError
from napari_dendrite_panoptic.inference import InferenceConfig, predict, tile_passes
from napari_dendrite_panoptic.models import ModelCard, load_models, save_models, widen_input_planes
from napari_dendrite_panoptic.training import TrainConfig
from napari_dendrite_panoptic.training.loop import fit


def _widened_copy(tiny_model_dir, folder):
    """The tiny model with 3-plane stems, saved as its own model folder."""
    base = load_models(tiny_model_dir, "cpu")
    widen_input_planes(base.spines, 3)
    widen_input_planes(base.dendrites, 3)
    save_models(folder, base.card.with_input_planes(3), base.spines, base.dendrites)
    return folder


def _tiny_run(tmp_path, base, output: str, **kw) -> TrainConfig:
    """A training job of one-crop batches of 64 px from ``base``, into ``tmp_path / output``."""
    return TrainConfig(
        work_dir=str(tmp_path / "work"),
        output_model=str(tmp_path / output),
        base_model=str(base),
        batch_size=1,
        crop_size=64,
        **kw,
    )


def test_widened_networks_segment_a_stack_as_the_one_plane_networks_do(
    tiny_model_dir, tmp_path, small_stack
):
    widened = load_models(_widened_copy(tiny_model_dir, tmp_path / "wide"), "cpu")
    assert widened.card.input_planes == 3
    assert widened.spines.backbone.body.conv1.weight.shape[1] == 3
    for flips in (False, True):
        cfg = InferenceConfig(device="cpu", spine_score_threshold=0.05, test_time_flips=flips)
        one = predict(
            small_stack.image, small_stack.voxel_size_um, cfg, load_models(tiny_model_dir)
        )
        three = predict(small_stack.image, small_stack.voxel_size_um, cfg, widened)
        assert one.spines.max() > 0  # the comparison covers spines, not only empty results
        assert np.mean(one.dendrite == three.dendrite) > 0.999
        assert np.mean(one.spines == three.spines) > 0.999


def test_each_plane_is_segmented_with_the_planes_below_and_above(
    tiny_model_dir, tmp_path, monkeypatch
):
    models = load_models(_widened_copy(tiny_model_dir, tmp_path / "wide"), "cpu")
    rng = np.random.default_rng(0)
    stack = np.stack([k * 100 + rng.integers(0, 10, (64, 64)) for k in range(4)]).astype(np.uint16)
    seen = []

    def record(models, tiles):
        seen.append(tiles.mean(dim=(0, 2, 3)))  # the mean of each input plane
        zero = torch.zeros(tiles.shape[0], *tiles.shape[-2:])
        return zero, [tile_passes.NO_DETECTIONS] * tiles.shape[0]

    monkeypatch.setattr(tile_passes, "run_networks", record)
    predict(stack, (0.5, 0.1, 0.1), InferenceConfig(device="cpu", stack_mode="planes"), models)
    order = [[round(float(m) * 3 / float(seen[-1][-1])) for m in means] for means in seen]
    # planes 0..3 normalised to about 0, 1/3, 2/3, 1; the ends repeat their own plane
    assert order == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_a_plane_and_its_neighbours_are_augmented_together():
    image = np.zeros((32, 32), np.float32)
    image[3, 9] = 5.0
    sample = TrainingSample(
        image,
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32), np.int32),
        neighbours=np.stack([image * 0.5, image * 0.8]),
    )
    for seed in range(12):
        out = augment(sample, np.random.default_rng(seed))
        planes = network_input(out, 3)
        peaks = {np.unravel_index(int(np.argmax(p)), p.shape) for p in planes}
        assert len(peaks) == 1, f"seed {seed}: the planes were moved apart ({peaks})"
        assert planes[0].max() < planes[1].max()  # each keeps its own content
    assert network_input(out, 1).shape == (1, 32, 32)


def test_generated_stacks_carry_neighbours_and_2d_images_repeat_their_plane():
    rng = np.random.default_rng(3)
    stacked = generator_sample(rng, 64, 0.1, p3d=1.0, neighbours=True)
    assert stacked.neighbours.shape == (2, 64, 64)
    assert not np.allclose(stacked.neighbours[0], stacked.image)
    flat = generator_sample(rng, 64, 0.1, p3d=0.0, neighbours=True)
    assert flat.neighbours is None
    assert np.array_equal(network_input(flat, 3), np.stack([flat.image] * 3))


def test_cards_refuse_mismatched_or_even_plane_counts(tiny_model_dir):
    card = load_models(tiny_model_dir, "cpu").card
    with pytest.raises(ModelError, match="different numbers of input planes"):
        replace(card, spines=replace(card.spines, config={"input_planes": 3}))
    with pytest.raises(ModelError, match="positive odd"):
        ModelCard.from_dict(
            {
                **card.to_dict(),
                "spines": {**card.to_dict()["spines"], "config": {"input_planes": 2}},
                "dendrites": {**card.to_dict()["dendrites"], "config": {"input_planes": 2}},
            }
        )


def test_training_widens_a_one_plane_model_and_refuses_a_mismatched_checkpoint(
    tiny_model_dir, tmp_path, small_stack
):
    cfg = _tiny_run(tmp_path, tiny_model_dir, "m3", steps=1, input_planes=3)
    assert fit(cfg)[-1].kind == "done"  # the default source: generated stacks with neighbours
    trained = load_models(tmp_path / "m3", "cpu")
    assert trained.card.input_planes == 3
    result = predict(small_stack.image, small_stack.voxel_size_um, InferenceConfig(), trained)
    assert result.spines.shape == small_stack.image.shape
    one_plane = replace(cfg, input_planes=None, steps=2, output_model=str(tmp_path / "m1"))
    with pytest.raises(InputError, match="networks of another shape"):
        fit(one_plane)


def test_cli_trains_three_plane_networks_on_generated_stacks(tiny_model_dir, tmp_path):
    args = ["train", "--out", str(tmp_path / "m"), "--work", str(tmp_path / "w")]
    args += ["--data", "generator3d", "--steps", "1", "--crop", "64", "--batch-size", "1"]
    args += ["--validate", "0", "--input-planes", "3", "--base-model", str(tiny_model_dir)]
    assert main(args) == 0
    card = load_models(tmp_path / "m", "cpu").card
    assert card.input_planes == 3 and "generator3d" in card.provenance["data"]


def test_corrected_stacks_give_their_neighbouring_planes_to_fine_tuning(small_stack, small_plane):
    # plane crops of a stack (slab_share 0; by default a stack trains on slab projections)
    from napari_dendrite_panoptic.data import correction_source, prepare_volume

    rng = np.random.default_rng(1)
    for truth, planes in ((small_stack, (2, 64, 64)), (small_plane, None)):
        volume, _ = prepare_volume("im", truth.image, truth.dendrite, truth.spines, 0.1)
        sample = correction_source([volume], 64, 0.1, neighbours=True, slab_share=0.0)(rng)
        assert (None if sample.neighbours is None else sample.neighbours.shape) == planes
        assert correction_source([volume], 64, 0.1)(rng).neighbours is None


def test_a_three_plane_model_fine_tunes_on_a_corrected_stack(tiny_model_dir, tmp_path, small_stack):
    # the bundled pair reads three planes since v0.3: the training dock's path (corrections of a
    # stack, crops with their neighbouring planes) must train it and keep its planes
    from napari_dendrite_panoptic.data import correction_source, prepare_volume

    base = _widened_copy(tiny_model_dir, tmp_path / "base3")
    volume, _ = prepare_volume(
        "stack", small_stack.image, small_stack.dendrite, small_stack.spines, 0.1
    )
    # plane crops carry their neighbours; slab projections (the default) are 2D images
    source = correction_source([volume], 64, 0.1, neighbours=True)
    rng = np.random.default_rng(0)
    plane = correction_source([volume], 64, 0.1, neighbours=True, slab_share=0.0)(rng)
    assert plane.neighbours is not None and plane.neighbours.shape == (2, 64, 64)
    projection = correction_source([volume], 64, 0.1, neighbours=True, slab_share=1.0)(rng)
    assert projection.neighbours is None
    cfg = _tiny_run(tmp_path, base, "tuned", steps=2, pixel_size_um=0.1, checkpoint_every=2)
    fit(cfg, source=source)
    tuned = load_models(tmp_path / "tuned", "cpu")
    assert tuned.card.input_planes == 3
    before = load_models(base, "cpu").spines.state_dict()
    after = tuned.spines.state_dict()
    assert any(
        not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point()
    )
