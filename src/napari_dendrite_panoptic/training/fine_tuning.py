"""A fine-tuning run on user corrections, as the "Train on corrections" dock starts it: save the
corrections into the new model folder, train on random crops of them (validating on the held-out
volumes now and then), and drop the resumable checkpoint once the run has finished.

GUI-free: the dock runs :func:`iter_fine_tune` in a worker thread and only shows its events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import CorrectedVolume, correction_source, save_corrections, steps_per_epoch
from ..errors import InputError
from .calibration import (
    SweepCounts,
    ThresholdChoice,
    best_spine_f1,
    choose_from_counts,
    corrected_spines,
    match_corrected_count,
    sweep_counts,
    write_threshold,
)
from .checkpoints import delete_checkpoint
from .config import CHECKPOINT_FILE, TrainConfig, TrainEvent
from .loop import iter_fit
from .networks import run_input_planes

logger = logging.getLogger(__name__)

NO_HELD_OUT_PLANES = (
    "Thresholds kept: no held-out image to choose them on (the new model scores the planes it "
    "trained on too well); mark a corrected image 'held out' to choose them"
)
"""Why thresholds stay when :func:`recalibrate_model` had no corrected volume at all (a run
always has training volumes, so it chooses the spine threshold by count at least)."""
CHOSEN_BY_COUNT = (
    "No held-out image: the spine threshold is the one at which the new model keeps about as "
    "many spines on the images it trained on as you corrected there; the dendrite threshold kept"
)
"""How a fine-tuning run without held-out volumes chooses its thresholds."""
SHAFTS_AS_DRAWN = "the dendrite threshold kept: the held-out dendrites are as the model drew them"
"""Why a fine-tuning run whose held-out dendrites nobody corrected keeps its dendrite
threshold."""
HELD_OUT_MIN_SPINES = 100
"""Held-out rows with fewer corrected spines than this choose the spine threshold by count on
every corrected row (:func:`recalibrate_model`) and keep the run's last weights
instead of its best-scored step: below about 100 spines one spine moves F1 by more than the
sweep's neighbouring thresholds, or two steps of a run, differ. On a lab's real fields the
new model's threshold choice on one held-out field of about 40 spines moved F1 on the other
fields by −0.001 to +0.051 over eight runs (mean +0.022), a count rule on all four corrected
fields by +0.042 to +0.048 over three; with that field held
out, the best-scored step gained +0.021 to +0.047 over six runs (mean +0.037), the last step
+0.034 to +0.052 over six (mean +0.044; ``docs/fine_tuning_measurements.md``)."""

ENOUGH_PASSES = 45
"""Passes over the corrected planes (epochs, see
:func:`~napari_dendrite_panoptic.data.steps_per_epoch`) that a fine-tuning run on a lab's real
fields needed: on a lab the model never saw, 22-24 passes over eight corrected fields gained
0.011-0.019 spine F1 less on the lab's other fields than 45-46, and 91 passes over four gained
no more than 47 (``docs/fine_tuning_measurements.md``)."""


def _few_held_out(spines: float) -> str:
    return (
        f"The held-out images hold {spines:.0f} corrected spines, fewer than the "
        f"{HELD_OUT_MIN_SPINES} needed to choose the spine threshold by spine F1: it is the one "
        f"at which the new model keeps about as many spines on every corrected image as you "
        f"corrected there"
    )


def iter_fine_tune(
    config: TrainConfig,
    volumes: Sequence[CorrectedVolume],
    held_out: Sequence[CorrectedVolume],
    raw: Sequence[dict[str, Any]],
    should_stop: Callable[[], bool],
    recalibrate: bool = True,
) -> Generator[Any, None, TrainEvent | None]:
    """Save the corrections, then fine-tune.

    Parameters
    ----------
    config : TrainConfig
        The run (:func:`~napari_dendrite_panoptic.training.fine_tune_config`); the corrections
        go to ``<config.output_model>/corrections``.
    volumes, held_out : sequence of CorrectedVolume
        Volumes to train on; volumes whose mean held-out scores are reported as validation
        events (every fifth of the steps, at least every 10; every 25 steps for a time budget).
    raw : sequence of dict
        The arrays saved with the model, as for
        :func:`~napari_dendrite_panoptic.data.save_corrections`.
    should_stop : callable
        Polled between batches; True ends the run after the current one (the model reached so
        far is saved).
    recalibrate : bool
        Once the model folder is written, choose its spine score and dendrite thresholds on the
        held-out volumes' corrected planes and record them in its card
        (:func:`recalibrate_model`). Never by the new model on the planes it trained on: it
        scores those too well to say which threshold suits the lab's other images. Without
        held-out volumes, or with too few held-out spines, the spine threshold is the one at
        which the new model keeps about as many spines on the corrected planes as they hold
        corrected (:data:`CHOSEN_BY_COUNT`).

    Yields
    ------
    ``("saved", [path, ...])`` once the corrections are written, then every
    :class:`~napari_dendrite_panoptic.training.TrainEvent` of :func:`iter_fit`, then (with
    ``recalibrate``) ``("calibrated", (spine ThresholdChoice, dendrite ThresholdChoice))``,
    ``("calibrated", (spine ThresholdChoice,))`` without held-out volumes, or
    ``("calibrated", ())`` without any volume. With held-out
    volumes the base model is scored first (a "validation" event at step 0) and the model folder
    keeps the weights of the step with the best :func:`held_out_score` (the last weights when
    the scored held-out spines are fewer than :data:`HELD_OUT_MIN_SPINES`: ``kept_last``); the
    last event names that step (``best_step``) and carries its scores and the base model's
    (``base_metrics``).

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
        keys = dict.fromkeys(k for s in scores for k in s)  # a volume may lack some
        return {k: float(np.mean([s[k] for s in scores if k in s])) for k in keys}

    last = None
    every = max(10, config.steps // 5) if config.max_seconds is None else 25
    judged = [v for v in held_out if "spines" not in v.unedited]
    few = config.which != "dendrites" and bool(judged)
    few = few and corrected_spines(judged) < HELD_OUT_MIN_SPINES
    for event in iter_fit(
        config,
        source=source,
        should_stop=should_stop,
        resume=False,
        validator=validator if scorers else None,
        validate_every=every,
        keep_best=(lambda m: held_out_score(m, config.which)) if scorers else None,
        keep_last=few,
    ):
        last = event
        yield event
    if recalibrate and last is not None and last.model_folder:
        choices = recalibrate_model(last.model_folder, held_out, volumes)
        if not choices:
            logger.info("%s", NO_HELD_OUT_PLANES)
        yield ("calibrated", choices)
    return last


def recalibrate_model(
    folder: str | Path,
    held_out: Sequence[CorrectedVolume],
    trained: Sequence[CorrectedVolume] = (),
) -> tuple[ThresholdChoice, ...]:
    """Choose the thresholds of model folder ``folder`` on corrected planes, write each into
    its card when it changes, and return the choices: (spine, dendrite), (spine,),
    (dendrite,) or ().

    The new model chooses both by score on the ``held_out`` volumes (never on the ``trained``
    ones: it scores those too well). When the held-out ones hold fewer than
    :data:`HELD_OUT_MIN_SPINES` spines, or there are none, the spine threshold is the one at
    which the new model keeps about as many spines on every corrected volume as they hold
    corrected (:func:`~napari_dendrite_panoptic.training.calibration.match_corrected_count`):
    counting needs no F1, which training on the planes inflates. The dendrite threshold is
    chosen on held-out volumes only (without them it stays). A held-out layer left as the
    model drew it (``unedited``) chooses nothing: the new model would only learn to copy its
    base model there (without a corrected held-out dendrite the dendrite threshold stays,
    :data:`SHAFTS_AS_DRAWN`; without a corrected held-out spine layer the spine threshold is
    chosen by count as above). Without any volume, nothing is chosen."""
    from ..models import load_models

    if not held_out and not trained:
        return ()
    new = load_models(folder, device="cpu")
    counted: dict[int, SweepCounts] = {}  # id(volume) → its counts: each volume segmented once

    def choose(volumes: Sequence[CorrectedVolume]) -> tuple[ThresholdChoice, ThresholdChoice]:
        for v in volumes:
            if id(v) not in counted:
                counted[id(v)] = sweep_counts(new, v)
        return choose_from_counts(new.card, [counted[id(v)] for v in volumes])

    spine, dendrite = _held_out_choices(choose, held_out)
    if spine is None or spine.amount < HELD_OUT_MIN_SPINES:
        own, _ = choose([*trained, *held_out])
        why = _few_held_out(spine.amount if spine else 0) if held_out else CHOSEN_BY_COUNT
        spine = replace(match_corrected_count(own), note=why)
    if held_out and dendrite is None and spine is not None:
        spine = replace(spine, note="; ".join(filter(None, (spine.note, SHAFTS_AS_DRAWN))))
    choices = [c for c in (spine, dendrite) if c is not None]
    for choice in choices:
        if choice.changed:
            write_threshold(folder, choice)
        logger.info("%s", choice.describe())
    return tuple(choices)


def _held_out_choices(
    choose: Callable[[Sequence[CorrectedVolume]], tuple[ThresholdChoice, ThresholdChoice]],
    held_out: Sequence[CorrectedVolume],
) -> tuple[ThresholdChoice | None, ThresholdChoice | None]:
    """The new model's (spine, dendrite) threshold choices (``choose``: its
    :func:`choose_thresholds` on some volumes) on the held-out volumes whose spines, and whose
    dendrite, the user corrected (None where there are none: a layer left as the model drew
    it would have the new model copy its base model)."""
    spine_rows = [v for v in held_out if "spines" not in v.unedited]
    shaft_rows = [v for v in held_out if "dendrites" not in v.unedited]
    spine = choose(spine_rows)[0] if spine_rows else None
    dendrite = choose(shaft_rows)[1] if shaft_rows else None
    return spine, dendrite


def held_out_keys(metrics: dict[str, float], which: str = "both") -> tuple[str, ...]:
    """The scores of ``metrics`` that :func:`held_out_score` averages for networks ``which``:
    ``spine_f1_best`` (``spine_f1`` in records without it) and ``dendrite_iou``, those present."""
    spine = "spine_f1_best" if "spine_f1_best" in metrics else "spine_f1"
    wanted = {"spines": (spine,), "dendrites": ("dendrite_iou",)}.get(
        which, (spine, "dendrite_iou")
    )
    return tuple(k for k in wanted if k in metrics)


def held_out_score(metrics: dict[str, float], which: str = "both") -> float:
    """The one number a fine-tuning run is judged by on its held-out volumes (higher is
    better): the spine F1 at the model's best threshold there (``spine_f1_best``; ``spine_f1``
    in records without it) when only the spine model trains, dendrite IoU when only the
    dendrite model does, the mean of those present for both (a held-out layer left as the
    model drew it is not scored: :func:`volume_scorer`). NaN when none is there or a score
    it needs is undefined."""
    found = [metrics[k] for k in held_out_keys(metrics, which)]
    return float(np.mean(found)) if found else float("nan")


def drop_checkpoint(work: str | Path) -> None:
    """A finished run's model folder holds the final weights: its resumable checkpoint
    (optimiser state, ~100 MB) in ``work`` is no longer needed, nor ``work`` when that leaves
    it empty. A stopped run keeps it. Failures are only logged."""
    work = Path(work)
    try:
        delete_checkpoint(work / CHECKPOINT_FILE)
        work.rmdir()
    except OSError as exc:
        logger.debug("kept %s: %s", work, exc)


def volume_scorer(
    volume: CorrectedVolume, iou_threshold: float = 0.5
) -> Callable[[Any], dict[str, float]]:
    """A function scoring a :class:`~napari_dendrite_panoptic.models.store.LoadedModels` on a
    held-out corrected volume: spine F1/PQ at ``iou_threshold`` and dendrite IoU over its
    planes, at the model's thresholds, and the spine F1 at the model's best threshold there
    (``spine_f1_best``, :func:`~napari_dendrite_panoptic.training.calibration.best_spine_f1`),
    which :func:`held_out_score` compares models by: a fine-tuned model scores the lab's
    spines higher than its base model did, so at the base model's threshold it keeps too many.

    The layers of ``volume.unedited`` are left out (the spine keys, or ``dendrite_iou``): they
    hold the base model's own answer, which it would match perfectly. A stack is segmented by
    the stack path at its z-step, and its spine F1 is of centres
    (:func:`~napari_dendrite_panoptic.evaluation.match_stack_centres`: 1 µm in (y, x), 2
    planes), which the stack path is judged by; PQ stays that of 3D masks."""
    from ..evaluation import (
        instance_centres,
        match_instances,
        match_stack_centres,
        pixel_scores,
        table_centres,
    )
    from ..inference import InferenceConfig, predict

    planes = list(volume.planes)
    image = volume.image[planes]
    px = volume.pixel_size_um
    contiguous = planes == list(range(planes[0], planes[-1] + 1))
    z_step = volume.z_step_um if contiguous else None  # gaps: the planes are farther apart
    truth = volume.spines[planes]
    centres = instance_centres(truth) if len(planes) > 1 else None

    def score(models: Any) -> dict[str, float]:
        voxel = (z_step or 1.0, px, px) if px else None
        cfg = InferenceConfig(model=str(models.folder), device=str(models.device))
        result = predict(image, voxel, cfg, models=models)
        inst, _ = match_instances(result.spines, truth, iou_threshold)
        pix = pixel_scores(result.dendrite > 0, volume.dendrite[planes] > 0)
        f1 = float(inst.f1)
        if centres is not None:
            found = table_centres(result.table)
            f1 = match_stack_centres(found, centres, px or models.card.pixel_size_um).f1
        scores = {}
        if "spines" not in volume.unedited:
            best = best_spine_f1(models, volume)
            scores = {"spine_f1": float(f1), "spine_pq": float(inst.pq), "spine_f1_best": best}
        if "dendrites" not in volume.unedited:
            scores["dendrite_iou"] = float(pix.iou)
        return scores

    return score


FINE_TUNE_CROP = 256
FINE_TUNE_BATCH = 2
FINE_TUNE_FREEZE_NORM = True


def fine_tune_config(
    base_model: str,
    output_model: str | Path,
    volumes: Sequence[CorrectedVolume],
    native_px_um: float,
    *,
    which: str = "both",
    lr: float = 3e-4,
    minutes: float | None = None,
    epochs: int | None = None,
    name: str = "finetune",
    held_out: Sequence[str] = (),
    freeze_norm: bool = FINE_TUNE_FREEZE_NORM,
    layers: str = "all",
) -> Any:
    """The :class:`~napari_dendrite_panoptic.training.TrainConfig` of a fine-tuning run on
    corrected volumes, as the training dock starts it: 256 px crops, batches of 2, a short
    warm-up, a checkpoint every 10 steps in ``<output_model>/training``.

    Exactly one of ``minutes`` (a time budget) and ``epochs`` (passes over the chosen planes,
    see :func:`steps_per_epoch`) sets the length. ``freeze_norm``: keep the base model's
    BatchNorm statistics; ``layers``: "all" or "heads" (the trunks kept; both as in
    :class:`~napari_dendrite_panoptic.training.TrainConfig`).
    """
    from .config import TrainConfig

    if (minutes is None) == (epochs is None):
        raise InputError("give the training length either in minutes or in epochs")
    if minutes is not None and not minutes > 0:
        raise InputError(f"fine-tuning minutes must be more than 0, not {minutes}")
    if epochs is not None and epochs < 1:
        raise InputError(f"fine-tuning epochs must be at least 1, not {epochs}")
    crop, batch = FINE_TUNE_CROP, FINE_TUNE_BATCH
    steps = (
        100_000
        if minutes is not None
        else int(epochs) * steps_per_epoch(volumes, crop, native_px_um, batch)
    )
    described = ", ".join(f"'{v.name}' ({len(v.planes)} plane(s))" for v in volumes)
    output = Path(output_model)
    return TrainConfig(
        work_dir=str(output / "training"),
        output_model=str(output),
        steps=steps,
        batch_size=batch,
        crop_size=crop,
        lr=lr,
        warmup_steps=min(20, max(1, steps // 10)),
        which=which,
        base_model=str(base_model),
        pixel_size_um=native_px_um,
        checkpoint_every=10,
        model_name=name,
        model_version="1",
        data_description=f"user corrections: {described}; held out: "
        + (", ".join(f"'{n}'" for n in held_out) or "none"),
        max_seconds=minutes * 60.0 if minutes is not None else None,
        freeze_norm=freeze_norm,
        layers=layers,
    )
