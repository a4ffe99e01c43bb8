"""Training engine: fit the spine Mask R-CNN and the dendrite FCN, resumably.

In the spirit of torchvision's detection references: AdamW, linear warm-up then cosine decay, a
finite-loss check that raises, and a full checkpoint (networks, optimisers, step, config) written
atomically every ``checkpoint_every`` steps. :func:`iter_fit` is a generator of
:class:`TrainEvent` that ends by saving a model folder; it stops cleanly between batches when
``should_stop()`` turns true. :func:`fit` runs it to the end.

:func:`iter_fit` reads as torchvision's ``train_one_epoch``, a short loop over the named steps
of a ``_Run``: ``open`` (the networks, from a checkpoint when resuming, with their optimisers:
:class:`~.networks.RunNetworks`; the batches), ``begin``, then per step ``train_one_step`` (a
batch, the learning rate, one optimiser step per network, and the hooks: a checkpoint every
``checkpoint_every`` steps (:mod:`.checkpoints`), validation every ``validate_every`` steps),
and ``end``: the model folder with its card. Batches (seeded per step, in the loop or by forked
workers) come from :mod:`.batches`.
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
    keep_last: bool = False,
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
    keep_last
        With ``keep_best``: score the start and every validation step as above, but keep the
        last weights (the held-out data say too little to choose a step); the last event's
        ``best_step`` is then the last step and ``kept_last`` is set.
    """
    run = _Run.open(cfg, source, resume, validator, validate_every, keep_best, keep_last)
    yield from run.begin()
    stopped = False
    while run.step < cfg.steps:
        if should_stop():
            stopped = True
            break
        if run.out_of_time():
            break
        yield from run.train_one_step()
    yield from run.end(stopped, provenance)


class _Run:
    """One run's state between the named steps of :func:`iter_fit`: the networks, the batches,
    the clock, the step and the last checkpointed step, the validation hooks."""

    def __init__(
        self,
        cfg: TrainConfig,
        nets: RunNetworks,
        batches: Iterator,
        start: int,
        clock: _Clock,
        ckpt_path: Path,
        validator: Callable[[Any], dict[str, float]] | None,
        validate_every: int,
        best: _Best,
    ) -> None:
        self.cfg, self.nets, self.batches, self.clock = cfg, nets, batches, clock
        self.step = self.saved_step = start
        self.ckpt_path = ckpt_path
        self.validator, self.validate_every, self.best = validator, validate_every, best
        self.last_validation: dict[str, float] = {}
        self.spent = 0.0

    @classmethod
    def open(
        cls,
        cfg: TrainConfig,
        source: SampleSource | None,
        resume: bool,
        validator: Callable[[Any], dict[str, float]] | None,
        validate_every: int,
        keep_best: Callable[[dict[str, float]], float] | None,
        keep_last: bool = False,
    ) -> _Run:
        """Build the networks (from the checkpoint when resuming) and start the batches."""
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
        best = _Best(keep_best if validator is not None else None, keep_last)
        return cls(cfg, nets, batches, start, clock, ckpt_path, validator, validate_every, best)

    def begin(self) -> Iterator[TrainEvent]:
        """The "start" event; with ``keep_best``, the starting weights' scores."""
        yield TrainEvent("start", self.step, self.cfg.steps)
        if self.best.active:
            self.best.base = self.nets.validate(self.validator)
            yield TrainEvent("validation", self.step, self.cfg.steps, metrics=self.best.base)

    def out_of_time(self) -> bool:
        """Whether the run's time budget (``max_seconds``) is spent."""
        self.spent = self.clock.elapsed()
        return self.cfg.max_seconds is not None and self.spent >= self.cfg.max_seconds

    def train_one_step(self) -> Iterator[TrainEvent]:
        """A batch, its learning rate, one step of each network; then the hooks."""
        cfg = self.cfg
        batch = self.clock.wait_for(self.batches, self.nets.device)
        time_fraction = self.spent / cfg.max_seconds if cfg.max_seconds else 0.0
        lr = cfg.lr * lr_factor(self.step, cfg.warmup_steps, cfg.steps, time_fraction)
        losses = self.nets.train_step(batch, self.step, lr)
        self.step += 1
        elapsed, share = self.clock.elapsed(), self.clock.wait_share()
        yield TrainEvent(
            "step", self.step, cfg.steps, losses, lr, elapsed, data_wait_fraction=share
        )
        if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
            self._checkpoint()
            yield TrainEvent("checkpoint", self.step, cfg.steps, losses, lr, elapsed)
        if self.validator is not None and self._validation_due():
            yield self._validation_event(elapsed)

    def end(self, stopped: bool, provenance: dict[str, Any] | None) -> Iterator[TrainEvent]:
        """The last checkpoint and validation, the model folder, the "done"/"stopped" event."""
        cfg, best = self.cfg, self.best
        if self.step > self.saved_step:  # stopped, or out of time, between two checkpoints
            self._checkpoint()
        wanted = not stopped or best.active
        if self.validator is not None and wanted and not self._validation_due():
            yield self._validation_event()
        elapsed = self.clock.elapsed()
        del self.batches  # a run that ends early leaves no data-loader workers behind
        kept, metrics = best.restore(self.nets, self.step, self.last_validation)
        self.nets.save(kept, elapsed, stopped, metrics, provenance, best.base)
        yield TrainEvent(
            "stopped" if stopped else "done",
            self.step,
            cfg.steps,
            elapsed_s=elapsed,
            model_folder=str(cfg.output_model),
            metrics=dict(metrics),
            best_step=kept if best.active else None,
            base_metrics=dict(best.base),
            kept_last=best.active and best.keep_last,
        )

    def _checkpoint(self) -> None:
        save_checkpoint(self.ckpt_path, self.nets.checkpoint(self.step, self.clock.elapsed()))
        self.saved_step = self.step

    def _validation_due(self) -> bool:
        return bool(self.validate_every) and self.step % self.validate_every == 0

    def _validation_event(self, elapsed: float = 0.0) -> TrainEvent:
        self.last_validation = self.nets.validate(self.validator)
        self.best.offer(self.step, self.last_validation, self.nets)
        return TrainEvent(
            "validation", self.step, self.cfg.steps, elapsed_s=elapsed, metrics=self.last_validation
        )


class _Best:
    """The best-scored weights of a run after its start (CPU copies), by ``score``; with
    ``keep_last``, only the start's scores (the last weights are kept)."""

    def __init__(
        self, score: Callable[[dict[str, float]], float] | None, keep_last: bool = False
    ) -> None:
        self.score, self.active, self.keep_last = score, score is not None, keep_last
        self.base: dict[str, float] = {}
        self.step: int | None = None
        self.value = -np.inf
        self.metrics: dict[str, float] = {}
        self.state: dict[str, Any] | None = None

    def offer(self, step: int, metrics: dict[str, float], nets: RunNetworks) -> None:
        if not self.active or self.keep_last or step == self.step:
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
        if not self.active or self.keep_last or self.step is None:
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
