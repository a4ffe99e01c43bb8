"""A fine-tuning run on user corrections, as the "Train on corrections" dock starts it: save the
corrections into the new model folder, train on random crops of them (validating on the held-out
volumes now and then), and drop the resumable checkpoint once the run has finished.

GUI-free: the dock runs :func:`iter_fine_tune` in a worker thread and only shows its events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .corrections import CorrectedVolume, correction_source, save_corrections, volume_scorer
from .training import CHECKPOINT_FILE, TrainConfig, TrainEvent, iter_fit, run_input_planes

logger = logging.getLogger(__name__)


def iter_fine_tune(
    config: TrainConfig,
    volumes: Sequence[CorrectedVolume],
    held_out: Sequence[CorrectedVolume],
    raw: Sequence[dict[str, Any]],
    should_stop: Callable[[], bool],
) -> Generator[Any, None, TrainEvent | None]:
    """Save the corrections, then fine-tune.

    Parameters
    ----------
    config : TrainConfig
        The run (:func:`~napari_dendrite_panoptic.corrections.fine_tune_config`); the corrections
        go to ``<config.output_model>/corrections``.
    volumes, held_out : sequence of CorrectedVolume
        Volumes to train on; volumes whose mean held-out scores are reported as validation
        events (every fifth of the steps, at least every 10; every 25 steps for a time budget).
    raw : sequence of dict
        The arrays saved with the model, as for
        :func:`~napari_dendrite_panoptic.corrections.save_corrections`.
    should_stop : callable
        Polled between batches; True ends the run after the current one (the model reached so
        far is saved).

    Yields
    ------
    ``("saved", [path, ...])`` once the corrections are written, then every
    :class:`~napari_dendrite_panoptic.training.TrainEvent` of :func:`iter_fit`.

    Returns
    -------
    TrainEvent or None
        The last event (``done`` or ``stopped``, with the model folder).
    """
    folder = Path(config.output_model)
    saved = save_corrections(folder / "corrections", raw)
    yield ("saved", [str(p) for p in saved])
    planes = run_input_planes(config.input_planes, config.base_model)
    source = correction_source(
        volumes, config.crop_size, config.pixel_size_um, neighbours=planes > 1
    )
    scorers = [volume_scorer(v) for v in held_out]

    def validator(models: Any) -> dict[str, float]:
        scores = [s(models) for s in scorers]
        return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}

    last = None
    every = max(10, config.steps // 5) if config.max_seconds is None else 25
    for event in iter_fit(
        config,
        source=source,
        should_stop=should_stop,
        resume=False,
        validator=validator if scorers else None,
        validate_every=every,
    ):
        last = event
        yield event
    return last


def drop_checkpoint(work: str | Path) -> None:
    """A finished run's model folder holds the final weights: its resumable checkpoint
    (optimiser state, ~100 MB) in ``work`` is no longer needed, nor ``work`` when that leaves
    it empty. A stopped run keeps it. Failures are only logged."""
    work = Path(work)
    try:
        (work / CHECKPOINT_FILE).unlink(missing_ok=True)
        work.rmdir()
    except OSError as exc:
        logger.debug("kept %s: %s", work, exc)
