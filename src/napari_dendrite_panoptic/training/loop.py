"""Training engine: fit the spine Mask R-CNN and the dendrite FCN, resumably.

In the spirit of torchvision's detection references: AdamW, linear warm-up then cosine decay, a
finite-loss check that raises, and a full checkpoint (networks, optimisers, step, config) written
atomically every ``checkpoint_every`` steps. :func:`iter_fit` is a generator of
:class:`TrainEvent` that ends by saving a model folder; it stops cleanly between batches when
``should_stop()`` turns true. :func:`fit` runs it to the end.

:func:`iter_fit` reads as torchvision's ``train_one_epoch``: prepare the networks
(:class:`~.networks.RunNetworks`: weights from a checkpoint, optimisers), then per step a batch, the learning
rate, one optimiser step per network, and the hooks: a checkpoint every ``checkpoint_every``
steps (:mod:`.checkpoints`), validation every ``validate_every`` steps; at the end the model
folder with its card. Batches (seeded per step, in the loop or by forked workers) come from
:mod:`.batches`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import SampleSource, TrainingSample, generator_sample
from ..errors import InputError, OutputExistsError
from ..models import ModelCard, resolve_device
from .batches import step_batches, to_device
from .checkpoints import load_checkpoint, save_checkpoint
from .config import CHECKPOINT_FILE, TrainConfig, TrainEvent
from .losses import lr_factor
from .networks import RunNetworks, build_networks

logger = logging.getLogger(__name__)


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
    card, spines, dendrites = build_networks(cfg)
    state = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if state is not None:
        _check_resumable(state, ckpt_path)
    start = int(state["step"]) if state else 0
    clock = _Clock(float(state.get("elapsed_s", 0.0)) if state else 0.0)
    device = resolve_device(cfg.device)
    source = source or _generator_source(cfg, card)
    batches = step_batches(source, cfg, start, card.input_planes)  # workers fork before CUDA
    nets = RunNetworks(cfg, card, spines, dendrites, device, state)
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

    def offer(self, step: int, metrics: dict[str, float], nets: RunNetworks) -> None:
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
        self, nets: RunNetworks, step: int, metrics: dict[str, float]
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


def fit(cfg: TrainConfig, **kwargs: Any) -> Sequence[TrainEvent]:
    """Run :func:`iter_fit` to the end; returns the list of non-step events."""
    return [e for e in iter_fit(cfg, **kwargs) if e.kind != "step"]
