"""Training engine: fit the spine Mask R-CNN and the dendrite FCN, resumably.

In the spirit of torchvision's detection references: AdamW, linear warm-up then cosine decay, a
finite-loss check that raises, and a full checkpoint (networks, optimisers, step, config) written
atomically every ``checkpoint_every`` steps. :func:`iter_fit` is a generator of
:class:`TrainEvent` that ends by saving a model folder; it stops cleanly between batches when
``should_stop()`` turns true. :func:`fit` runs it to the end.

:func:`iter_fit` reads as torchvision's ``train_one_epoch``: prepare the networks
(``_Networks``: weights from a checkpoint, optimisers), then per step a batch, the learning
rate, one optimiser step per network, and the hooks: a checkpoint every ``checkpoint_every``
steps (:mod:`.checkpoints`), validation every ``validate_every`` steps; at the end the model
folder with its card. Batches (seeded per step, in the loop or by forked workers) come from
:mod:`.batches`.
"""

from __future__ import annotations

import contextlib
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
    trunk_modules,
    widen_input_planes,
)
from .batches import step_batches, to_device
from .checkpoints import load_checkpoint, save_checkpoint
from .config import CHECKPOINT_FILE, NonFiniteLossError, TrainConfig, TrainEvent
from .losses import dendrite_loss, lr_factor

logger = logging.getLogger(__name__)


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
    keep_best: Callable[[dict[str, float]], float] | None = None,
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
        Scores the networks (a :class:`~napari_dendrite_panoptic.models.LoadedModels` in eval
        mode) on held-out data, e.g. :func:`napari_dendrite_panoptic.training.fine_tuning.volume_scorer`;
        run every ``validate_every`` steps (0: only at the end) and at the end, each time as a
        "validation" event. The last scores go into the card's metrics as ``validation``.
    keep_best
        With a validator: one number from its scores, higher is better. The starting weights are
        scored first (a "validation" event at the start step; the card's ``validation_base``),
        the final weights are always scored (also when stopped), and the model folder gets the
        weights of the best-scored step after the start; the last event's ``best_step`` names
        that step, its ``metrics`` are that step's scores and ``base_metrics`` the start's.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if (Path(cfg.output_model) / "card.json").exists():
        raise OutputExistsError(
            f"model folder '{cfg.output_model}' exists already; choose a new output name"
        )
    ckpt_path = Path(cfg.work_dir) / CHECKPOINT_FILE
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    card, spines, dendrites = _build(cfg)
    state = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if state is not None:
        _check_resumable(state, ckpt_path)
    start = int(state["step"]) if state else 0
    clock = _Clock(float(state.get("elapsed_s", 0.0)) if state else 0.0)
    device = resolve_device(cfg.device)
    source = source or _generator_source(cfg, card)
    batches = step_batches(source, cfg, start, card.input_planes)  # workers fork before CUDA
    nets = _Networks(cfg, card, spines, dendrites, device, state)
    yield TrainEvent("start", start, cfg.steps)
    step = saved_step = start
    stopped, last_validation = False, {}
    best = _Best(keep_best if validator is not None else None)
    if best.active:
        best.base = nets.validate(validator)
        yield TrainEvent("validation", start, cfg.steps, metrics=best.base)
    while step < cfg.steps:
        if should_stop():
            stopped = True
            break
        spent = clock.elapsed()
        if cfg.max_seconds is not None and spent >= cfg.max_seconds:
            break
        batch = clock.wait_for(batches, device)
        time_fraction = spent / cfg.max_seconds if cfg.max_seconds else 0.0
        lr = cfg.lr * lr_factor(step, cfg.warmup_steps, cfg.steps, time_fraction)
        losses = nets.train_step(batch, step, lr)
        step += 1
        elapsed = clock.elapsed()
        share = clock.wait_share()
        yield TrainEvent("step", step, cfg.steps, losses, lr, elapsed, data_wait_fraction=share)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt_path, nets.checkpoint(step, clock.elapsed()))
            saved_step = step
            yield TrainEvent("checkpoint", step, cfg.steps, losses, lr, elapsed)
        if validator is not None and validate_every and step % validate_every == 0:
            last_validation = nets.validate(validator)
            best.offer(step, last_validation, nets)
            yield TrainEvent(
                "validation", step, cfg.steps, elapsed_s=elapsed, metrics=last_validation
            )
    if step > saved_step:  # stopped, or out of time, between two checkpoints
        save_checkpoint(ckpt_path, nets.checkpoint(step, clock.elapsed()))
    scored_last = validate_every and step % validate_every == 0
    if validator is not None and (not stopped or best.active) and not scored_last:
        last_validation = nets.validate(validator)
        best.offer(step, last_validation, nets)
        yield TrainEvent("validation", step, cfg.steps, metrics=last_validation)
    elapsed = clock.elapsed()
    del batches  # a run that ends early leaves no data-loader workers behind
    kept_step, last_validation = best.restore(nets, step, last_validation)
    nets.save(kept_step, elapsed, stopped, last_validation, provenance, best.base)
    yield TrainEvent(
        "stopped" if stopped else "done",
        step,
        cfg.steps,
        elapsed_s=elapsed,
        model_folder=str(cfg.output_model),
        metrics=dict(last_validation),
        best_step=kept_step if best.active else None,
        base_metrics=dict(best.base),
    )


class _Best:
    """The best-scored weights of a run after its start (CPU copies), by ``score``."""

    def __init__(self, score: Callable[[dict[str, float]], float] | None) -> None:
        self.score, self.active = score, score is not None
        self.base: dict[str, float] = {}
        self.step: int | None = None
        self.value = -np.inf
        self.metrics: dict[str, float] = {}
        self.state: dict[str, Any] | None = None

    def offer(self, step: int, metrics: dict[str, float], nets: _Networks) -> None:
        if not self.active or step == self.step:
            return
        value = float(self.score(metrics))
        value = -np.inf if np.isnan(value) else value  # an undefined score never beats a number
        if self.step is None or value > self.value:
            self.step, self.value, self.metrics = step, value, dict(metrics)
            self.state = {  # copies: on the CPU, .cpu() would share the training tensors
                name: {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
                for name, net in (("spines", nets.spines), ("dendrites", nets.dendrites))
            }

    def restore(
        self, nets: _Networks, step: int, metrics: dict[str, float]
    ) -> tuple[int, dict[str, float]]:
        """Load the best weights when they are not the last; (the kept step, its scores)."""
        if not self.active or self.step is None:
            return step, metrics
        if self.step != step and self.state is not None:
            nets.spines.load_state_dict(self.state["spines"])
            nets.dendrites.load_state_dict(self.state["dendrites"])
            logger.info("kept the weights of step %d (best held-out score)", self.step)
        return self.step, self.metrics


def _generator_source(cfg: TrainConfig, card: ModelCard) -> SampleSource:
    """The default sample source: generated crops at the run's pixel size (with neighbouring
    planes for a 3-plane model)."""
    px, crop, around = cfg.pixel_size_um, cfg.crop_size, card.input_planes > 1

    def source(rng: np.random.Generator) -> TrainingSample:
        return generator_sample(rng, crop, px, neighbours=around)

    return source


class _Clock:
    """Training time of the run (including earlier runs of a resumed one) and the time spent
    waiting for batches."""

    def __init__(self, elapsed_before: float) -> None:
        self.before = elapsed_before
        self.t0 = time.perf_counter()
        self.waited = 0.0

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def wait_for(self, batches: Iterator, device: torch.device) -> tuple:
        asked = time.perf_counter()
        batch = to_device(next(batches), device)
        self.waited += time.perf_counter() - asked
        return batch

    def wait_share(self) -> float:
        """The share of this run's wall time (not earlier runs') spent waiting for batches."""
        return self.waited / max(time.perf_counter() - self.t0, 1e-9)


_RESUME_KEYS = ("step", "spines", "dendrites", "opt_spines", "opt_dendrites")


def _check_resumable(state: Any, path: Path) -> None:
    """Refuse a checkpoint that lacks what resuming needs (e.g. one without optimiser state)."""
    missing = [k for k in _RESUME_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise InputError(
            f"cannot resume from '{path}': it holds no {', '.join(missing)} (not a complete "
            "training checkpoint); train without resuming (--no-resume) or in a new --work folder"
        )


class _Networks:
    """The two networks of a run with their optimisers, on the run's device: one training
    step, the checkpoint's state, validation, and the model folder at the end."""

    def __init__(
        self,
        cfg: TrainConfig,
        card: ModelCard,
        spines: torch.nn.Module,
        dendrites: torch.nn.Module,
        device: torch.device,
        state: dict[str, Any] | None,
    ) -> None:
        self.cfg, self.card, self.device = cfg, card, device
        self.spines, self.dendrites = spines, dendrites
        self.precision = training_precision(cfg.precision, device)
        self.train_s = cfg.which in ("both", "spines")
        self.train_d = cfg.which in ("both", "dendrites")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: the fastest convolutions
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if state:
            self._load_weights(state)
        self.frozen = _frozen_trunks(cfg.layers, spines, dendrites)
        spines.to(device)
        dendrites.to(device)
        # optimisers over the parameters on their device: a resumed state is cast to it on loading
        self.params_s = [p for p in spines.parameters() if p.requires_grad]
        self.params_d = [p for p in dendrites.parameters() if p.requires_grad]
        self.opt_s = torch.optim.AdamW(self.params_s, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.AdamW(self.params_d, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if state:
            self.opt_s.load_state_dict(state["opt_spines"])
            self.opt_d.load_state_dict(state["opt_dendrites"])
            logger.info("resumed from %s at step %d", cfg.work_dir, int(state["step"]))
        self.train_mode()

    def _load_weights(self, state: dict[str, Any]) -> None:
        try:
            self.spines.load_state_dict(state["spines"])
            self.dendrites.load_state_dict(state["dendrites"])
        except KeyError as exc:
            raise InputError(
                f"cannot resume from the checkpoint in '{Path(self.cfg.work_dir)}': it holds no "
                f"{exc} weights; train without resuming (--no-resume) or in a new --work folder"
            ) from None
        except RuntimeError as exc:  # other shapes, e.g. another number of input planes
            first = str(exc).strip().splitlines()[-1].strip()
            raise InputError(
                f"the checkpoint in '{Path(self.cfg.work_dir)}' belongs to networks of another "
                f"shape ({first}); resume with the settings it was started with, or start in a "
                "new --work folder"
            ) from None

    def train_mode(self) -> None:
        set_training_mode(self.spines, self.train_s, self.cfg.freeze_norm)
        set_training_mode(self.dendrites, self.train_d, self.cfg.freeze_norm)
        for module in self.frozen:  # its statistics stay the base model's too
            module.eval()

    def train_step(self, batch: tuple, step: int, lr: float) -> dict[str, float]:
        """One optimiser step of each trained network on ``batch``; returns the losses."""
        images, dendrite_t, targets = batch
        losses: dict[str, float] = {}
        if self.train_s:
            with self._autocast():
                loss_dict = self.spines(list(images), targets)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"spine loss is not finite at step {step}: "
                    + ", ".join(f"{k}={v.item():.4g}" for k, v in loss_dict.items())
                )
            _descend(self.opt_s, self.params_s, loss, lr)
            losses.update({k: v.item() for k, v in loss_dict.items()})
            losses["spines"] = loss.item()
        if self.train_d:
            with self._autocast():
                logits = self.dendrites(images)["out"]
            loss_d = dendrite_loss(logits.float(), dendrite_t)
            if not torch.isfinite(loss_d):
                raise NonFiniteLossError(f"dendrite loss is not finite at step {step}")
            _descend(self.opt_d, self.params_d, loss_d, lr)
            losses["dendrites"] = loss_d.item()
        return losses

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision)

    def checkpoint(self, step: int, elapsed_s: float) -> dict[str, Any]:
        """Everything a resumed run needs, as CPU tensors (loads on any device)."""
        return {
            "step": step,
            "spines": _cpu_copy(self.spines.state_dict()),
            "dendrites": _cpu_copy(self.dendrites.state_dict()),
            "opt_spines": _cpu_copy(self.opt_s.state_dict()),
            "opt_dendrites": _cpu_copy(self.opt_d.state_dict()),
            "config": asdict(self.cfg),
            "elapsed_s": elapsed_s,
        }

    def validate(self, validator: Callable[[Any], dict[str, float]]) -> dict[str, float]:
        """``validator``'s scores of the networks in evaluation mode; training mode after."""
        from ..models import LoadedModels

        self.spines.eval()
        self.dendrites.eval()
        try:
            folder = Path(self.cfg.output_model)
            held_out = LoadedModels(self.card, folder, self.spines, self.dendrites, self.device)
            with torch.inference_mode():
                return validator(held_out)
        finally:
            self.train_mode()

    def save(
        self,
        step: int,
        elapsed: float,
        stopped: bool,
        last_validation: dict[str, float],
        provenance: dict[str, Any] | None,
        base_validation: dict[str, float] | None = None,
    ) -> None:
        """Write the model folder: the networks (on the CPU) and a card with the run's
        provenance and scores (``validation``: those of the weights saved, at ``step``)."""
        cfg, card = self.cfg, self.card
        self.spines.eval().cpu()
        self.dendrites.eval().cpu()
        prov = _provenance(cfg, card, step, elapsed, self.device, provenance)
        metrics: dict[str, Any] = {}  # a base model's scores do not describe the new weights
        if cfg.validate_images > 0 and not stopped:
            metrics = {"validation_generator_2d": _validate(cfg, card, self.spines, self.dendrites)}
        if last_validation:
            metrics["validation"] = {"step": step, **last_validation}
        if base_validation:
            metrics["validation_base"] = dict(base_validation)
        out_card = replace(
            card, name=cfg.model_name, version=cfg.model_version, provenance=prov, metrics=metrics
        )
        save_models(Path(cfg.output_model), out_card, self.spines, self.dendrites)


def _frozen_trunks(layers: str, *nets: torch.nn.Module) -> list[torch.nn.Module]:
    """With ``layers`` "heads", the networks' trunks, their weights set not to learn."""
    if layers != "heads":
        return []
    trunks = [m for net in nets for m in trunk_modules(net)]
    for module in trunks:
        module.requires_grad_(False)
    return trunks


def training_precision(precision: str, device: torch.device) -> torch.dtype:
    """The forward arithmetic of a run: torch.bfloat16 or torch.float32 for ``precision``
    ("auto", "float32", "bfloat16") on ``device``; "auto" picks bfloat16 only where the device
    computes it natively (elsewhere it is emulated and slower than float32)."""
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    has = any(getattr(torch.cpu, name, lambda: False)() for name in native)
    return torch.bfloat16 if has else torch.float32


def _descend(opt: torch.optim.Optimizer, params: list, loss: torch.Tensor, lr: float) -> None:
    """One AdamW step at learning rate ``lr`` with gradients clipped at norm 10."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 10.0)
    opt.step()


def _provenance(
    cfg: TrainConfig,
    card: ModelCard,
    step: int,
    elapsed: float,
    device: torch.device,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """The new card's provenance: base model, networks trained, steps, time, device, data."""
    # the base model's record describes the base, not this run: keep it, nested, not merged
    prov: dict[str, Any] = (
        {"base_model_provenance": dict(card.provenance)} if cfg.base_model else {}
    )
    identity = {
        "name": card.name,
        "version": card.version,
        "weights_sha256": {"spines": card.spines.sha256, "dendrites": card.dendrites.sha256},
    }
    prov.update(
        {
            "base_model": cfg.base_model,
            "base_model_identity": identity if cfg.base_model else None,
            "trained_networks": cfg.which,
            "steps": step,
            "train_seconds": round(elapsed, 1),
            "train_device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "train_precision": str(training_precision(cfg.precision, device)).split(".")[-1],
            "data": cfg.data_description,
            "config": asdict(cfg),
            "torch": torch.__version__,
            **(extra or {}),
        }
    )
    return prov


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
