"""The spine score threshold chosen on a lab's own corrected planes.

A model's score does not mean the same in every lab: the bundled threshold is chosen on the
training sets (``docs/models.md``), and on a new lab's images the best threshold can lie far from
it. The planes a user corrected say which scores are spines there: :func:`choose_spine_threshold`
segments them once at the lowest threshold, keeps the spines by score for each threshold of a
sweep, matches their centroids to the corrected spines' and picks the threshold with the best
pooled F1. :func:`write_spine_threshold` records it in a model folder's card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..data import CorrectedVolume
from ..evaluation import match_points
from ..inference import InferenceConfig, predict
from ..models import ModelCard

THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.30, 0.951, 0.05))
"""The sweep of spine score thresholds."""
MATCH_RADIUS_UM = 0.5
"""A kept spine matches a corrected spine when their centroids lie this close (µm)."""
MIN_SPINES = 10
"""Fewer corrected spines than this say too little to move the threshold."""


@dataclass(frozen=True)
class ThresholdChoice:
    """The outcome of a threshold sweep on corrected planes.

    ``threshold``: the chosen spine score threshold (``base_threshold`` when the planes held
    fewer than :data:`MIN_SPINES` spines); ``f1`` and ``base_f1``: spine F1 (centroids within
    :data:`MATCH_RADIUS_UM`) on those planes at the chosen and at the model's threshold;
    ``spines``: corrected spines; ``planes``: planes scored; ``curve``: F1 per
    :data:`THRESHOLDS`."""

    threshold: float
    f1: float
    base_threshold: float
    base_f1: float
    spines: int
    planes: int
    curve: tuple[float, ...]

    @property
    def changed(self) -> bool:
        return self.threshold != self.base_threshold

    def describe(self) -> str:
        """One line for the dock and the log."""
        if self.spines < MIN_SPINES:
            return (
                f"Spine threshold kept at {self.base_threshold:.2f}: the corrected planes hold "
                f"{self.spines} spine(s), fewer than the {MIN_SPINES} needed to choose one"
            )
        return (
            f"Spine threshold {self.base_threshold:.2f} → {self.threshold:.2f} (spine F1 on "
            f"{self.planes} corrected plane(s), {self.spines} spines: {self.base_f1:.3f} → "
            f"{self.f1:.3f})"
        )


def _centres(labels: np.ndarray) -> np.ndarray:
    """(N, 2) float centroids (y, x) px of the instances of a (Y, X) label plane."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not len(ids):
        return np.zeros((0, 2))
    return np.asarray(ndi.center_of_mass(labels > 0, labels, ids), dtype=float).reshape(-1, 2)


def _plane_counts(
    table: dict[str, np.ndarray], truth: np.ndarray, radius_px: float, thresholds: Sequence[float]
) -> np.ndarray:
    """(len(thresholds), 3) tp, fp, fn of one plane's spines kept by score."""
    pred = np.stack([table["centroid_y_px"], table["centroid_x_px"]], axis=1)
    scores = np.asarray(table["score"])
    counts = np.zeros((len(thresholds), 3))
    for k, threshold in enumerate(thresholds):
        s, _ = match_points(pred[scores >= threshold], truth, radius_px)
        counts[k] = (s.tp, s.fp, s.fn)
    return counts


def _f1(counts: np.ndarray) -> np.ndarray:
    tp, fp, fn = counts.T
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


def choose_spine_threshold(
    models: Any, volumes: Sequence[CorrectedVolume], device: str = "cpu"
) -> ThresholdChoice:
    """Sweep :data:`THRESHOLDS` on the corrected planes of ``volumes`` with ``models`` (a
    :class:`~napari_dendrite_panoptic.models.LoadedModels`); each plane is segmented once, as
    a 2D image at its volume's pixel size. Ties go to the threshold nearest the model's."""
    base = float(models.card.inference.get("spine_score_threshold", 0.5))
    cfg = InferenceConfig(
        model=str(models.folder), device=device, spine_score_threshold=THRESHOLDS[0]
    )
    counts = np.zeros((len(THRESHOLDS), 3))
    at_base = np.zeros(3)
    spines = planes = 0
    for volume in volumes:
        px = volume.pixel_size_um or models.card.pixel_size_um
        for z in volume.planes:
            truth = _centres(volume.spines[z])
            result = predict(volume.image[z], (1.0, px, px), cfg, models=models)
            radius = MATCH_RADIUS_UM / px
            counts += _plane_counts(result.table, truth, radius, THRESHOLDS)
            at_base += _plane_counts(result.table, truth, radius, (base,))[0]
            spines, planes = spines + len(truth), planes + 1
    curve = tuple(float(f) for f in _f1(counts))
    base_f1 = float(_f1(at_base[None])[0])
    if spines < MIN_SPINES:
        return ThresholdChoice(base, base_f1, base, base_f1, spines, planes, curve)
    best = [k for k, f in enumerate(curve) if f >= max(curve) - 1e-12]
    pick = min(best, key=lambda k: abs(THRESHOLDS[k] - base))
    return ThresholdChoice(THRESHOLDS[pick], curve[pick], base, base_f1, spines, planes, curve)


def write_spine_threshold(folder: str | Path, choice: ThresholdChoice) -> ModelCard:
    """Record ``choice`` in the card of model folder ``folder`` (atomically; weights untouched):
    ``inference.spine_score_threshold`` and, under ``metrics``, how it was chosen."""
    card = ModelCard.load(Path(folder))
    metrics = dict(card.metrics)
    metrics["spine_threshold_calibration"] = {
        "on": "the corrected planes (centroids within 0.5 µm)",
        "threshold": choice.threshold,
        "f1": choice.f1,
        "previous_threshold": choice.base_threshold,
        "previous_f1": choice.base_f1,
        "spines": choice.spines,
        "planes": choice.planes,
    }
    inference = {**card.inference, "spine_score_threshold": choice.threshold}
    new = replace(card, inference=inference, metrics=metrics)
    new.save(Path(folder))
    return new
