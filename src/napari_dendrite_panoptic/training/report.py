"""What a fine-tuning run on corrections says about itself, as text: the step and held-out
lines while it trains, the thresholds chosen on the corrections, and the verdict on the model
saved. The "Train on corrections" dock shows these lines and ``dendrite-panoptic fine-tune``
prints them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .fine_tuning import (
    ENOUGH_PASSES,
    HELD_OUT_MIN_SPINES,
    NO_HELD_OUT_PLANES,
    held_out_keys,
    held_out_score,
)

SCORE_NAMES = {
    "spine_f1_best": "spine F1 at its best threshold",
    "spine_f1": "spine F1",
    "spine_pq": "spine PQ",
    "dendrite_iou": "dendrite IoU",
}
"""How the held-out scores are named in the status line and the live plot."""


def progress_text(event: Any) -> str:
    """The status line of a training event: a step's losses, or the held-out scores ("" for
    other kinds)."""
    if event.kind == "step":
        loss = ", ".join(
            f"{k} {event.losses[k]:.3f}" for k in ("spines", "dendrites") if k in event.losses
        )
        return f"Step {event.step}: loss {loss}"
    if event.kind == "validation":
        scores = ", ".join(f"{SCORE_NAMES.get(k, k)} {v:.3f}" for k, v in event.metrics.items())
        if event.step == 0:
            return f"Base model on the held-out images: {scores}; training…"
        return f"Held-out scores at step {event.step}: {scores}"
    return ""


def calibration_text(calibration: Any) -> str:
    """The thresholds chosen on the corrections, one sentence each (after how it was chosen,
    where it was by count), or why they were kept ("" when the box was unticked:
    ``calibration`` None)."""
    if calibration is None:
        return ""
    if not calibration:
        return f"{NO_HELD_OUT_PLANES}."
    return " ".join((f"{c.note}. " if c.note else "") + f"{c.describe()}." for c in calibration)


def saved_text(outcome: Any) -> str:
    """How the run ended, after how many steps, and where its model folder is."""
    how = "stopped" if outcome.kind == "stopped" else "finished"
    return (
        f"Training {how} after {outcome.step} steps ({outcome.elapsed_s / 60:.1f} min): "
        f"model '{Path(outcome.model_folder).name}' saved in {outcome.model_folder}."
    )


def passes_text(steps: int, steps_per_epoch: int) -> str:
    """How many passes over the corrected planes ``steps`` steps made (``steps_per_epoch``
    steps each), and, below :data:`~napari_dendrite_panoptic.training.ENOUGH_PASSES`, the
    advice to train longer."""
    passes = round(steps / max(1, steps_per_epoch))
    text = f"That is about {passes} pass{'' if passes == 1 else 'es'} over the corrected planes."
    if passes < ENOUGH_PASSES:
        text += (
            f" On a lab's real fields about {ENOUGH_PASSES} did better than fewer: with this "
            f"many corrected images, give the next run more minutes or epochs."
        )
    return text


def held_out_verdict(outcome: Any, which: str) -> tuple[str, str]:
    """(which step's weights the model folder holds, a warning when that model still scores
    below its base on the held-out images); "" for each that does not apply. ``which``: the
    models trained ("both", "spines", "dendrites"). A run that kept its last weights because
    the held-out images hold too few spines gets no warning, only the advice to compare: on one
    held-out field of about 40 spines, a model that gained +0.041 spine F1 on the lab's 45
    other fields scored below its base model (``docs/fine_tuning_measurements.md``)."""
    if outcome.best_step is None or not outcome.base_metrics:
        return "", ""
    new = held_out_score(outcome.metrics, which)
    base = held_out_score(outcome.base_metrics, which)
    scores = f"{_score_name(outcome.metrics, which)} {new:.3f}; base model {base:.3f}"
    kept = (
        f"It holds the weights of step {outcome.best_step}, the best on the held-out images "
        f"({scores})."
    )
    if outcome.kept_last:
        kept = (
            f"It holds the last weights (step {outcome.best_step}): the held-out images hold "
            f"fewer than {HELD_OUT_MIN_SPINES} corrected spines, too few to choose a step "
            f"({scores})."
        )
        if new < base:  # a few spines either way: not evidence enough for a warning
            kept += (
                " So few spines cannot tell the two models apart: compare them on an image "
                "you did not train on."
            )
        return kept, ""
    if new < base:
        return kept, (
            "The new model scores below its base model on the held-out images: keep using "
            "the base model, or correct more images and train again."
        )
    return kept, ""


def _score_name(metrics: dict[str, float], which: str) -> str:
    """What :func:`~napari_dendrite_panoptic.training.held_out_score` measured, in words."""
    # the verdict compares two models, each at its own best threshold
    keys = held_out_keys(metrics, which)
    found = [SCORE_NAMES[k].replace(" its ", " each model's ") for k in keys]
    if len(found) == 2:
        return f"mean of {found[0]} and {found[1]}"
    return found[0] if found else "score"
