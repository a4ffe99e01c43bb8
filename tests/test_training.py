import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_dendrite_panoptic import training
from napari_dendrite_panoptic.data import TrainingSample
from napari_dendrite_panoptic.errors import InputError, OutputExistsError
from napari_dendrite_panoptic.models import load_models
from napari_dendrite_panoptic.training import TrainConfig, iter_fit, load_checkpoint
from napari_dendrite_panoptic.training import batches as training_batches
from napari_dendrite_panoptic.training import networks as training_networks
from napari_dendrite_panoptic.training.batches import instance_targets
from napari_dendrite_panoptic.training.loop import fit


def _source(rng):
    from napari_dendrite_panoptic.core import percentile_normalise
    from napari_dendrite_panoptic.data import synthetic

    s = synthetic.generate(int(rng.integers(1000)), synthetic.SyntheticConfig(shape=(1, 64, 64)))
    return TrainingSample(percentile_normalise(s.image[0]), s.dendrite[0], s.spines[0])


def _cfg(tmp_path, base, **kw):
    kw = {
        "steps": 2,
        "batch_size": 1,
        "crop_size": 64,
        "checkpoint_every": 1,
        "output_model": str(tmp_path / "model"),
        **kw,
    }
    return TrainConfig(work_dir=str(tmp_path / "work"), base_model=str(base), **kw)


def test_fine_tune_writes_a_loadable_model_and_resumes(tmp_path, tiny_model_dir):
    events = fit(_cfg(tmp_path, tiny_model_dir), source=_source)
    assert [e.kind for e in events][-1] == "done"
    model = load_models(tmp_path / "model", "cpu")
    assert model.card.provenance["base_model"] == str(tiny_model_dir)
    base = load_models(tiny_model_dir, "cpu").card
    identity = model.card.provenance["base_model_identity"]
    assert identity["name"] == "tiny-test-model"
    assert identity["weights_sha256"]["spines"] == base.spines.sha256
    # the base's own record is kept apart, so none of it reads as this run's
    assert model.card.provenance["base_model_provenance"] == dict(base.provenance)
    assert "note" not in model.card.provenance
    assert model.card.provenance["steps"] == 2
    assert load_checkpoint(tmp_path / "work" / "checkpoint.pt")["step"] == 2
    # resume: a longer job starts where the checkpoint ended
    cfg = _cfg(tmp_path, tiny_model_dir, steps=3, output_model=str(tmp_path / "model2"))
    steps = [e.step for e in iter_fit(cfg, source=_source) if e.kind == "step"]
    assert steps == [3]


def test_stop_keeps_a_checkpoint_and_a_model(tmp_path, tiny_model_dir):
    seen = []

    def stop():
        return len(seen) >= 1

    for e in iter_fit(_cfg(tmp_path, tiny_model_dir, steps=50), source=_source, should_stop=stop):
        if e.kind == "step":
            seen.append(e)
    assert load_checkpoint(tmp_path / "work" / "checkpoint.pt")["step"] == 1
    assert load_models(tmp_path / "model", "cpu").card.provenance["steps"] == 1


def test_non_finite_loss_raises(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(training_networks, "dendrite_loss", lambda *a: torch.tensor(float("nan")))
    with pytest.raises(training.NonFiniteLossError, match="not finite"):
        fit(_cfg(tmp_path, tiny_model_dir, which="dendrites"), source=_source)


def test_existing_output_model_is_not_overwritten(tmp_path, tiny_model_dir):
    with pytest.raises(OutputExistsError):
        fit(_cfg(tmp_path, tiny_model_dir, output_model=str(tiny_model_dir)), source=_source)


def test_instance_targets_from_labels():
    labels = np.zeros((20, 30), dtype=np.int32)
    labels[2:5, 3:9] = 1
    labels[10:15, 20:22] = 4
    t = instance_targets(labels)
    assert t["boxes"].tolist() == [[3, 2, 9, 5], [20, 10, 22, 15]]
    assert t["masks"].shape == (2, 20, 30) and t["labels"].tolist() == [1, 1]
    empty = instance_targets(np.zeros((8, 8), dtype=np.int32))
    assert empty["boxes"].shape == (0, 4)


def test_learning_rate_warms_up_then_decays():
    f = [training.lr_factor(s, 10, 100) for s in range(100)]
    assert f[0] < 0.05 and max(f) == pytest.approx(1.0, abs=0.01) and f[-1] < 0.05


def test_worker_processes_draw_the_same_batches_as_the_loop(tmp_path):
    """Batches drawn by data-loader workers (as on a GPU machine) equal the in-loop ones, in
    order, from the resume step on."""
    cfg = TrainConfig(
        work_dir=str(tmp_path),
        output_model=str(tmp_path / "m"),
        steps=5,
        batch_size=2,
        crop_size=64,
        seed=4,
    )
    inline = list(training_batches.step_batches(_source, cfg, start=2))
    workers = training_batches.step_batches(_source, replace(cfg, workers=2), start=2)
    drawn = list(workers)
    assert len(inline) == len(drawn) == 3
    for (im_a, den_a, tg_a), (im_b, den_b, tg_b) in zip(inline, drawn, strict=True):
        assert torch.equal(im_a, im_b) and torch.equal(den_a, den_b)
        assert all(torch.equal(a["masks"], b["masks"]) for a, b in zip(tg_a, tg_b, strict=True))


@pytest.mark.parametrize(
    ("asked", "on_gpu", "cpus", "which", "plan"),
    [
        # this machine, dendrites alone: two workers, torch on one thread
        ((None, None), False, 2, "dendrites", (2, 1)),
        ((None, None), False, 8, "dendrites", (2, 6)),
        # with the spine network the networks set the pace: torch keeps all cores
        ((None, None), False, 2, "both", (2, None)),
        ((None, None), False, 8, "spines", (2, None)),
        ((None, None), False, 1, "dendrites", (0, None)),  # one core: drawn in the loop
        ((None, None), True, 16, "dendrites", (14, None)),
        ((None, None), True, 64, "both", (training_batches.MAX_AUTO_WORKERS, None)),
        ((0, None), False, 2, "dendrites", (0, None)),  # what the user asks is kept
        ((3, 2), False, 8, "dendrites", (3, 2)),
        ((None, 4), False, 8, "dendrites", (2, 4)),
    ],
)
def test_loader_plan_fills_in_only_what_is_not_asked(asked, on_gpu, cpus, which, plan):
    assert training_batches.loader_plan(*asked, on_gpu, cpus, which) == plan


def test_training_with_workers_records_device_and_checkpoint_loads_on_cpu(tmp_path, tiny_model_dir):
    events = fit(_cfg(tmp_path, tiny_model_dir, workers=1, device="auto"), source=_source)
    assert events[-1].kind == "done"
    card = load_models(tmp_path / "model", "cpu").card
    expected = "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    assert card.provenance["train_device"] == expected
    state = load_checkpoint(tmp_path / "work" / "checkpoint.pt")
    assert all(t.device.type == "cpu" for t in state["spines"].values())


def test_bad_device_or_workers_are_refused(tmp_path):
    with pytest.raises(InputError, match="device must be"):
        TrainConfig(work_dir=str(tmp_path), output_model=str(tmp_path / "m"), device="tpu")
    with pytest.raises(InputError, match="workers"):
        TrainConfig(work_dir=str(tmp_path), output_model=str(tmp_path / "m"), workers=-1)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("checkpoint_every", 0, "checkpoint_every must be >= 1, not 0"),
        ("pixel_size_um", 0.0, "pixel_size_um must be > 0, not 0.0"),
        ("pixel_size_um", -0.1, "pixel_size_um must be > 0, not -0.1"),
        ("warmup_steps", -1, "warmup_steps must be >= 0, not -1"),
    ],
)
def test_numbers_out_of_range_are_refused(tmp_path, field, value, words):
    with pytest.raises(InputError, match=words):
        TrainConfig(work_dir=str(tmp_path), output_model=str(tmp_path / "m"), **{field: value})


@pytest.mark.parametrize(("trained", "kept"), [("spines", "dendrites"), ("dendrites", "spines")])
def test_training_one_network_leaves_the_other_as_the_base_model_had_it(
    tmp_path, tiny_model_dir, trained, kept
):
    """``--which spines`` fine-tunes the spine network and writes the base's dendrite network
    unchanged, and ``--which dendrites`` the other way round (a 3-plane spine network can so be
    trained beside v0.2's dendrite network, docs/models.md "Open")."""
    fit(_cfg(tmp_path, tiny_model_dir, which=trained), source=_source)
    base = load_models(tiny_model_dir, "cpu")
    tuned = load_models(tmp_path / "model", "cpu")
    for name, should_change in ((trained, True), (kept, False)):
        before = getattr(base, name).state_dict()
        after = getattr(tuned, name).state_dict()
        same = all(torch.equal(before[k], after[k]) for k in before)
        assert same is not should_change, name


def test_step_events_say_how_much_of_the_run_waited_for_data(tmp_path, tiny_model_dir):
    def slow_source(rng):
        time.sleep(0.5)
        return _source(rng)

    steps = [
        e for e in iter_fit(_cfg(tmp_path, tiny_model_dir), source=slow_source) if e.kind == "step"
    ]
    assert [e.step for e in steps] == [1, 2]
    assert all(0.0 < e.data_wait_fraction <= 1.0 for e in steps)
    # two batches of one crop that takes at least 0.5 s each were waited for
    waited_s = steps[-1].data_wait_fraction * steps[-1].elapsed_s
    assert waited_s >= 1.0


def _norm_statistics(net):
    return {
        k: v.clone()
        for k, v in net.state_dict().items()
        if k.endswith(("running_mean", "running_var"))
    }


@pytest.mark.parametrize("freeze", [False, True])
def test_freeze_norm_keeps_the_base_models_batchnorm_statistics(tmp_path, tiny_model_dir, freeze):
    """With ``freeze_norm`` (``train --freeze-norm``) small fine-tuning batches do not replace the
    base model's BatchNorm statistics, while the weights still learn; without it they move."""
    fit(_cfg(tmp_path, tiny_model_dir, which="spines", freeze_norm=freeze), source=_source)
    base = load_models(tiny_model_dir, "cpu").spines
    tuned = load_models(tmp_path / "model", "cpu").spines
    before, after = _norm_statistics(base), _norm_statistics(tuned)
    assert before, "the spine network has BatchNorm layers"
    kept = all(torch.equal(before[k], after[k]) for k in before)
    assert kept is freeze
    weights_before, weights_after = base.state_dict(), tuned.state_dict()
    assert any(
        not torch.equal(weights_before[k], weights_after[k])
        for k in weights_before
        if k.endswith("weight")
    )


def test_freeze_norm_needs_a_base_model(tmp_path):
    with pytest.raises(InputError, match="base model"):
        TrainConfig(work_dir=str(tmp_path), output_model=str(tmp_path / "m"), freeze_norm=True)
