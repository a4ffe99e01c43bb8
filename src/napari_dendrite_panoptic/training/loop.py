"""Training engine: fit the spine Mask R-CNN and the dendrite FCN, resumably.

In the spirit of torchvision's detection references: AdamW, linear warm-up then cosine decay, a
finite-loss check that raises, and a full checkpoint (networks, optimisers, step, config) written
atomically every ``checkpoint_every`` steps. :func:`iter_fit` is a generator of
:class:`TrainEvent` that ends by saving a model folder; it stops cleanly between batches when
``should_stop()`` turns true. :func:`fit` runs it to the end.

Checkpoint files (:func:`save_checkpoint`, :func:`load_checkpoint`, :class:`CheckpointError`,
re-exported here) live in :mod:`napari_dendrite_panoptic.checkpoints`; drawing batches (seeded
per step, in the loop or by forked workers) in :mod:`napari_dendrite_panoptic.training_batches`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import SampleSource, TrainingSample, generator_sample
from ..errors import InputError, OutputExistsError
from ..models import (
    DENDRITE_DEFAULTS,
    SPINE_DEFAULTS,
    ModelCard,
    NetworkCard,
    build_dendrite_model,
    build_spine_model,
    load_models,
    resolve_device,
    save_models,
    widen_input_planes,
)
from .batches import step_batches, to_device

# re-exported: training.CheckpointError, training.load_checkpoint and training.save_checkpoint
# stay part of the API (docs/reliability.md, the tests)
from .checkpoints import load_checkpoint, save_checkpoint
from .config import CHECKPOINT_FILE, NonFiniteLossError, TrainConfig, TrainEvent
from .losses import dendrite_loss, lr_factor

logger = logging.getLogger(__name__)
"""Dendrite target value of pixels without dendrite annotation (centre-only real sets)."""


def _default_card(cfg: TrainConfig) -> ModelCard:
    planes = {"input_planes": cfg.input_planes} if (cfg.input_planes or 1) > 1 else {}
    return ModelCard(
        name=cfg.model_name,
        version=cfg.model_version,
        pixel_size_um=cfg.pixel_size_um,
        spines=NetworkCard(
            "maskrcnn_resnet18_fpn_lite",
            "spines.safetensors",
            "",
            {**SPINE_DEFAULTS, **planes},
            ("spine",),
        ),
        dendrites=NetworkCard(
            "fcn_resnet18_fpn_lite",
            "dendrites.safetensors",
            "",
            {**DENDRITE_DEFAULTS, **planes},
            ("background", "dendrite"),
        ),
    )


def run_input_planes(requested: int | None, base: ModelCard | str | Path | None) -> int:
    """Planes the networks of a training run see: ``requested`` (1 or 3), else the base
    model's (a card or a model folder), else 1. Sources that draw from stacks give neighbouring
    planes when this is above 1."""
    if requested is not None:
        return requested
    if base is None:
        return 1
    return (base if isinstance(base, ModelCard) else ModelCard.load(Path(base))).input_planes


def _build(cfg: TrainConfig) -> tuple[ModelCard, torch.nn.Module, torch.nn.Module]:
    if not cfg.base_model:
        card = _default_card(cfg)
        spines = build_spine_model(card.spines.config)
        return card, spines, build_dendrite_model(card.dendrites.config)
    base = load_models(cfg.base_model, device="cpu")
    card = base.card
    spines = build_spine_model(card.spines.config)
    dendrites = build_dendrite_model(card.dendrites.config)
    spines.load_state_dict(base.spines.state_dict())
    dendrites.load_state_dict(base.dendrites.state_dict())
    wanted = run_input_planes(cfg.input_planes, card)
    if wanted == card.input_planes:
        return card, spines, dendrites
    if card.input_planes != 1:
        raise InputError(
            f"the base model takes {card.input_planes} input planes; only a 1-plane model can "
            f"be trained further with {wanted}"
        )
    widen_input_planes(spines, wanted)
    widen_input_planes(dendrites, wanted)
    return card.with_input_planes(wanted), spines, dendrites


def set_training_mode(net: torch.nn.Module, training: bool, freeze_norm: bool = False) -> None:
    """Put ``net`` in training (or evaluation) mode; with ``freeze_norm`` its BatchNorm layers
    stay in evaluation mode, normalising with (and keeping) their running statistics."""
    net.train(training)
    if training and freeze_norm:
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def _cpu_copy(value: Any) -> Any:
    """Tensors of a (nested) state dict copied to the CPU, so checkpoints load anywhere."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return value


def iter_fit(
    cfg: TrainConfig,
    source: SampleSource | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    resume: bool = True,
    provenance: dict[str, Any] | None = None,
    validator: Callable[[Any], dict[str, float]] | None = None,
    validate_every: int = 0,
) -> Iterator[TrainEvent]:
    """Train (or fine-tune) and yield progress events; the last event carries the model folder.

    Parameters
    ----------
    cfg
        The job.
    source
        Draws one :class:`TrainingSample` from a random generator; default: the synthetic
        generator at ``cfg.pixel_size_um``.
    should_stop
        Polled between batches; when true the last complete checkpoint is kept, a model folder is
        written from the current weights and a "stopped" event ends the run.
    resume
        Continue from ``work_dir/checkpoint.pt`` when it exists.
    validator
        Scores the networks (a :class:`~napari_dendrite_panoptic.models.store.LoadedModels` in
        eval mode) on held-out data, e.g. :func:`napari_dendrite_panoptic.corrections.volume_scorer`;
        run every ``validate_every`` steps (0: only at the end) and at the end, each time as a
        "validation" event. The last scores go into the card's metrics as ``validation``.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if (Path(cfg.output_model) / "card.json").exists():
        raise OutputExistsError(
            f"model folder '{cfg.output_model}' exists already; choose a new output name"
        )
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ckpt_path = work / CHECKPOINT_FILE
    card, spines, dendrites = _build(cfg)
    if source is None:
        px, crop, around = cfg.pixel_size_um, cfg.crop_size, card.input_planes > 1

        def source(rng: np.random.Generator) -> TrainingSample:
            return generator_sample(rng, crop, px, neighbours=around)

    state = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    start = int(state["step"]) if state else 0
    elapsed_before = float(state.get("elapsed_s", 0.0)) if state else 0.0
    train_s = cfg.which in ("both", "spines")
    train_d = cfg.which in ("both", "dendrites")
    device = resolve_device(cfg.device)
    batches = step_batches(
        source, cfg, start, card.input_planes
    )  # workers fork here, before CUDA is touched
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest convolutions
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if state:
        try:
            spines.load_state_dict(state["spines"])
            dendrites.load_state_dict(state["dendrites"])
        except RuntimeError as exc:  # other shapes, e.g. another number of input planes
            first = str(exc).strip().splitlines()[-1].strip()
            raise InputError(
                f"the checkpoint in '{work}' belongs to networks of another shape ({first}); "
                "resume with the settings it was started with, or start in a new --work folder"
            ) from None
    spines.to(device)
    dendrites.to(device)
    # optimisers over the parameters on their device: a resumed state is cast to it on loading
    params_s = [p for p in spines.parameters() if p.requires_grad]
    params_d = [p for p in dendrites.parameters() if p.requires_grad]
    opt_s = torch.optim.AdamW(params_s, lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(params_d, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state:
        opt_s.load_state_dict(state["opt_spines"])
        opt_d.load_state_dict(state["opt_dendrites"])
        logger.info("resumed from %s at step %d", ckpt_path, start)
    set_training_mode(spines, train_s, cfg.freeze_norm)
    set_training_mode(dendrites, train_d, cfg.freeze_norm)
    t0 = time.perf_counter()
    yield TrainEvent("start", start, cfg.steps)

    def checkpoint(step: int) -> None:
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "spines": _cpu_copy(spines.state_dict()),
                "dendrites": _cpu_copy(dendrites.state_dict()),
                "opt_spines": _cpu_copy(opt_s.state_dict()),
                "opt_dendrites": _cpu_copy(opt_d.state_dict()),
                "config": asdict(cfg),
                "elapsed_s": elapsed_before + time.perf_counter() - t0,
            },
        )

    def run_validation() -> dict[str, float]:
        from ..models import LoadedModels

        spines.eval()
        dendrites.eval()
        try:
            held_out = LoadedModels(card, Path(cfg.output_model), spines, dendrites, device)
            with torch.inference_mode():
                return validator(held_out) if validator is not None else {}
        finally:
            set_training_mode(spines, train_s, cfg.freeze_norm)
            set_training_mode(dendrites, train_d, cfg.freeze_norm)

    last_validation: dict[str, float] = {}
    step = start
    saved_step = start
    stopped = False
    waited = 0.0  # seconds this run spent waiting for batches
    while step < cfg.steps:
        if should_stop():
            stopped = True
            break
        spent = elapsed_before + time.perf_counter() - t0
        if cfg.max_seconds is not None and spent >= cfg.max_seconds:
            break
        asked = time.perf_counter()
        images, dendrite_t, targets = to_device(next(batches), device)
        waited += time.perf_counter() - asked
        time_fraction = spent / cfg.max_seconds if cfg.max_seconds else 0.0
        factor = lr_factor(step, cfg.warmup_steps, cfg.steps, time_fraction)
        losses: dict[str, float] = {}
        if train_s:
            for g in opt_s.param_groups:
                g["lr"] = cfg.lr * factor
            loss_dict = spines(list(images), targets)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"spine loss is not finite at step {step}: "
                    + ", ".join(f"{k}={v.item():.4g}" for k, v in loss_dict.items())
                )
            opt_s.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params_s, 10.0)
            opt_s.step()
            losses.update({k: v.item() for k, v in loss_dict.items()})
            losses["spines"] = loss.item()
        if train_d:
            for g in opt_d.param_groups:
                g["lr"] = cfg.lr * factor
            logits = dendrites(images)["out"]
            loss_d = dendrite_loss(logits, dendrite_t)
            if not torch.isfinite(loss_d):
                raise NonFiniteLossError(f"dendrite loss is not finite at step {step}")
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            torch.nn.utils.clip_grad_norm_(params_d, 10.0)
            opt_d.step()
            losses["dendrites"] = loss_d.item()
        step += 1
        running = time.perf_counter() - t0  # this run's wall time; elapsed adds earlier runs'
        elapsed = elapsed_before + running
        share = waited / max(running, 1e-9)
        yield TrainEvent(
            "step", step, cfg.steps, losses, cfg.lr * factor, elapsed, data_wait_fraction=share
        )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint(step)
            saved_step = step
            yield TrainEvent("checkpoint", step, cfg.steps, losses, cfg.lr * factor, elapsed)
        if validator is not None and validate_every and step % validate_every == 0:
            last_validation = run_validation()
            yield TrainEvent(
                "validation", step, cfg.steps, elapsed_s=elapsed, metrics=last_validation
            )

    if step > saved_step:  # stopped, or out of time, between two checkpoints
        checkpoint(step)
    if validator is not None and not stopped and (not validate_every or step % validate_every):
        last_validation = run_validation()
        yield TrainEvent("validation", step, cfg.steps, metrics=last_validation)
    elapsed = elapsed_before + time.perf_counter() - t0
    del batches  # a run that ends early leaves no data-loader workers behind
    spines.eval().cpu()
    dendrites.eval().cpu()
    # the base model's record describes the base, not this run: keep it, nested, not merged
    prov: dict[str, Any] = (
        {"base_model_provenance": dict(card.provenance)} if cfg.base_model else {}
    )
    prov.update(
        {
            "base_model": cfg.base_model,
            "base_model_identity": (
                {
                    "name": card.name,
                    "version": card.version,
                    "weights_sha256": {
                        "spines": card.spines.sha256,
                        "dendrites": card.dendrites.sha256,
                    },
                }
                if cfg.base_model
                else None
            ),
            "trained_networks": cfg.which,
            "steps": step,
            "train_seconds": round(elapsed, 1),
            "train_device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "data": cfg.data_description,
            "config": asdict(cfg),
            "torch": torch.__version__,
            **(provenance or {}),
        }
    )
    metrics: dict[str, Any] = {}  # a base model's scores do not describe the new weights
    if cfg.validate_images > 0 and not stopped:
        metrics = {"validation_generator_2d": _validate(cfg, card, spines, dendrites)}
    if last_validation:
        metrics["validation"] = {"step": step, **last_validation}
    out_card = replace(
        card, name=cfg.model_name, version=cfg.model_version, provenance=prov, metrics=metrics
    )
    out_card = save_models(Path(cfg.output_model), out_card, spines, dendrites)
    yield TrainEvent(
        "stopped" if stopped else "done",
        step,
        cfg.steps,
        elapsed_s=elapsed,
        model_folder=str(cfg.output_model),
    )


def _validate(
    cfg: TrainConfig, card: ModelCard, spines: torch.nn.Module, dendrites: torch.nn.Module
) -> dict[str, Any]:
    """Scores of the trained networks on held-out generator images (seeds never trained on)."""
    from ..evaluation import evaluate_generator
    from ..models import LoadedModels

    models = LoadedModels(card, Path(cfg.output_model), spines, dendrites, torch.device("cpu"))
    return evaluate_generator(models, cfg.validate_images)


def fit(cfg: TrainConfig, **kwargs: Any) -> Sequence[TrainEvent]:
    """Run :func:`iter_fit` to the end; returns the list of non-step events."""
    return [e for e in iter_fit(cfg, **kwargs) if e.kind != "step"]
