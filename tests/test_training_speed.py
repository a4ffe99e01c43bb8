"""What makes training steps cheaper: region sampling sized to a crop's spines, and bfloat16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dendrite_panoptic.errors import InputError
from napari_dendrite_panoptic.models import build_spine_model, load_models
from napari_dendrite_panoptic.models.builders import MAX_REGIONS, MIN_REGIONS, regions_for
from napari_dendrite_panoptic.training import TrainConfig, iter_fit, training_precision
from napari_dendrite_panoptic.training.batches import instance_targets


def _crop_with_spines(n: int, size: int = 128) -> tuple[torch.Tensor, dict]:
    labels = np.zeros((size, size), np.int32)
    for i in range(n):
        y, x = 6 + (i // 10) * 12, 6 + (i % 10) * 12
        labels[y : y + 6, x : x + 6] = i + 1
    image = torch.from_numpy((labels > 0).astype(np.float32))[None].repeat(3, 1, 1)
    return image, instance_targets(labels)


def test_box_and_mask_heads_see_regions_in_proportion_to_the_crops_spines():
    torch.manual_seed(0)
    model = build_spine_model({"input_planes": 3, "fpn_channels": 32, "box_head_size": 64})
    model.train()
    seen: list[int] = []
    pool = model.roi_heads.box_roi_pool
    pool.register_forward_hook(lambda m, args, out: seen.append(out.shape[0]))
    crops = [_crop_with_spines(2), _crop_with_spines(30)]
    model([c[0] for c in crops], [c[1] for c in crops])
    # torchvision samples 512 (here 256) regions per crop whatever it holds
    assert seen == [regions_for(2) + regions_for(30)]
    assert regions_for(2) == MIN_REGIONS < regions_for(30) == 120 < MAX_REGIONS
    assert regions_for(1000) == MAX_REGIONS


def test_inference_is_untouched_by_the_training_sampler(tiny_model_dir):
    models = load_models(tiny_model_dir, "cpu")
    image, _ = _crop_with_spines(5)
    with torch.inference_mode():
        out = models.spines([image[: models.card.input_planes]])
    assert set(out[0]) == {"boxes", "labels", "scores", "masks"}


def test_precision_is_chosen_by_the_device_or_asked():
    cpu = torch.device("cpu")
    assert training_precision("float32", cpu) == torch.float32
    assert training_precision("bfloat16", cpu) == torch.bfloat16
    assert training_precision("auto", cpu) in (torch.bfloat16, torch.float32)
    with pytest.raises(InputError, match="precision must be auto, float32, bfloat16"):
        TrainConfig(work_dir="w", output_model="m", precision="fp8")


def test_bfloat16_training_keeps_float32_weights_and_records_the_precision(
    tmp_path, tiny_model_dir
):
    from napari_dendrite_panoptic.data import TrainingSample, synthetic

    def source(rng):
        s = synthetic.generate(int(rng.integers(100)), synthetic.SyntheticConfig(shape=(1, 64, 64)))
        image = s.image[0].astype(np.float32) / max(float(s.image.max()), 1.0)
        return TrainingSample(image, s.dendrite[0], s.spines[0])

    cfg = TrainConfig(
        work_dir=str(tmp_path / "work"),
        output_model=str(tmp_path / "model"),
        steps=2,
        batch_size=2,
        crop_size=64,
        base_model=str(tiny_model_dir),
        precision="bfloat16",
    )
    events = list(iter_fit(cfg, source=source))
    losses = [e.losses for e in events if e.kind == "step"]
    assert all(np.isfinite(v) for step in losses for v in step.values())
    model = load_models(tmp_path / "model", "cpu")
    assert model.card.provenance["train_precision"] == "bfloat16"
    assert {p.dtype for p in model.spines.parameters()} == {torch.float32}


def _fine_tuned_with_layers(tmp_path, base_dir, layers: str):
    """The base pair and the pair trained 3 steps from it with ``layers``, both loaded."""
    from napari_dendrite_panoptic.data import TrainingSample, synthetic

    def source(rng):
        s = synthetic.generate(int(rng.integers(100)), synthetic.SyntheticConfig(shape=(1, 64, 64)))
        image = s.image[0].astype(np.float32) / max(float(s.image.max()), 1.0)
        return TrainingSample(image, s.dendrite[0], s.spines[0])

    cfg = TrainConfig(
        work_dir=str(tmp_path / "work"),
        output_model=str(tmp_path / "model"),
        steps=3,
        batch_size=2,
        crop_size=64,
        lr=1e-2,
        base_model=str(base_dir),
        layers=layers,
    )
    list(iter_fit(cfg, source=source))
    return load_models(base_dir, "cpu"), load_models(tmp_path / "model", "cpu")


def test_heads_only_training_leaves_the_trunks_and_their_statistics_as_they_were(
    tmp_path, tiny_model_dir
):
    from napari_dendrite_panoptic.models import trunk_modules

    base, tuned = _fine_tuned_with_layers(tmp_path, tiny_model_dir, "heads")
    for name in ("spines", "dendrites"):
        old, new = getattr(base, name), getattr(tuned, name)
        for a, b in zip(trunk_modules(old), trunk_modules(new), strict=True):
            for (key, x), (_, y) in zip(
                a.state_dict().items(), b.state_dict().items(), strict=True
            ):
                assert torch.equal(x, y), f"{name} trunk {key} changed"
        heads_moved = any(
            not torch.equal(x, y)
            for (k, x), (_, y) in zip(
                old.state_dict().items(), new.state_dict().items(), strict=True
            )
            if "backbone.body" not in k and "backbone.layer" not in k and "stem" not in k
        )
        assert heads_moved, f"the {name} heads did not train"
    with pytest.raises(InputError, match="layers only needs a base model"):
        TrainConfig(work_dir="w", output_model="m", layers="heads")


def test_upper_layer_training_keeps_the_stem_and_first_stage_and_trains_the_rest(
    tmp_path, tiny_model_dir
):
    from napari_dendrite_panoptic.models import trunk_modules

    base, tuned = _fine_tuned_with_layers(tmp_path, tiny_model_dir, "upper")
    for name in ("spines", "dendrites"):
        old, new = getattr(base, name), getattr(tuned, name)
        kept = [m.state_dict() for m in trunk_modules(old, lower=True)]
        after = [m.state_dict() for m in trunk_modules(new, lower=True)]
        for a, b in zip(kept, after, strict=True):
            assert all(torch.equal(a[k], b[k]) for k in a), f"{name} stem or first stage changed"
        a, b = old.state_dict(), new.state_dict()
        moved = [k for k in a if "layer2" in k and not torch.equal(a[k], b[k])]
        assert moved, f"the {name} trunk's second stage did not train"
