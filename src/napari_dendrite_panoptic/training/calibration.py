"""The spine score and dendrite thresholds chosen on a lab's own corrected planes.

A model's scores do not mean the same in every lab: the bundled thresholds are chosen on the
training sets (``docs/models.md``), and on a new lab's images the best threshold can lie far from
them. The planes a user corrected say which scores are spines and which pixels are shaft there:
:func:`choose_thresholds` segments each corrected plane once, at the lowest spine threshold of
the sweep and keeping the dendrite probability, then

- keeps the spines by score for each spine threshold of :data:`THRESHOLDS`, matches their
  centroids to the corrected spines' and picks the threshold with the best pooled spine F1 (a
  corrected stack, every plane of it, is segmented whole, by the stack path that will use the
  threshold, its centroids matched by the stack rule of
  :func:`~napari_dendrite_panoptic.evaluation.match_stack_centres`);
- cuts the dendrite probability at each dendrite threshold of :data:`DENDRITE_THRESHOLDS` and
  picks the threshold with the best pooled IoU with the corrected dendrite (on the pixels no
  spine, corrected or found, covers: the spine threshold does not move the shaft's outline).

:func:`write_threshold` records a choice in a model folder's card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import CorrectedVolume
from ..evaluation import instance_centres, match_points, match_stack_centres, table_centres
from ..inference import InferenceConfig, predict
from ..models import ModelCard

THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.30, 0.951, 0.05))
"""The sweep of spine score thresholds."""
DENDRITE_THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.20, 0.801, 0.05))
"""The sweep of dendrite probability thresholds."""
MATCH_RADIUS_UM = 0.5
"""A kept spine matches a corrected spine when their centroids lie this close (µm)."""
MIN_SPINES = 10
"""Fewer corrected spines than this say too little to move the spine threshold."""
MIN_DENDRITE_UM2 = 10.0
"""Less corrected dendrite than this (µm², about a 10 µm stretch of thin shaft) says too little
to move the dendrite threshold."""


_CARD_KEYS = {"spine": "spine_score_threshold", "dendrite": "dendrite_threshold"}
"""The card's ``inference`` key of each kind of threshold."""


@dataclass(frozen=True)
class ThresholdChoice:
    """The outcome of one threshold sweep on corrected planes.

    ``kind``: ``"spine"`` (score threshold, judged by spine F1 with centroids within
    :data:`MATCH_RADIUS_UM`) or ``"dendrite"`` (probability threshold, judged by dendrite IoU);
    ``threshold``: the chosen one (``base_threshold``, the model's, when the planes held too
    little to choose); ``score`` and ``base_score``: the F1 or IoU at the chosen and at the
    model's threshold; ``amount``: corrected spines, or corrected dendrite in µm²;
    ``enough``: whether ``amount`` sufficed to choose; ``planes``: planes scored; ``sweep``: the
    thresholds tried and ``curve`` the score at each; ``kept``: for spines, how many the
    model keeps on the planes at each threshold of the sweep (the fine-tuned model's, with
    ``counted``); ``note``: why it was chosen so (a sentence, or ""); ``counted``: set by
    :func:`match_corrected_count`, the threshold was chosen by how many spines the model keeps
    on planes it trained on, not by its F1 there (``score`` and ``curve`` are that F1, which
    such planes inflate)."""

    kind: str
    threshold: float
    score: float
    base_threshold: float
    base_score: float
    amount: float
    enough: bool
    planes: int
    sweep: tuple[float, ...]
    curve: tuple[float, ...]
    kept: tuple[int, ...] = ()
    note: str = ""
    counted: bool = False

    @property
    def changed(self) -> bool:
        return self.threshold != self.base_threshold

    @property
    def kept_at_threshold(self) -> int:
        """Spines the model keeps on the planes at ``threshold`` (a spine choice of the
        sweep)."""
        return self.kept[self.sweep.index(self.threshold)]

    def describe(self) -> str:
        """One line for the dock and the log."""
        if self.kind == "spine":
            what, measure, amount = "Spine", "spine F1", f"{self.amount:.0f} spines"
            short = f"{self.amount:.0f} spine(s), fewer than the {MIN_SPINES} needed"
        else:
            what, measure, amount = "Dendrite", "dendrite IoU", f"{self.amount:.0f} µm² dendrite"
            short = f"{self.amount:.1f} µm² of dendrite, less than the {MIN_DENDRITE_UM2:g} needed"
        if not self.enough:
            return (
                f"{what} threshold kept at {self.base_threshold:.2f}: the corrected planes hold "
                f"{short} to choose one"
            )
        if self.counted:
            return (
                f"{what} threshold {self.base_threshold:.2f} → {self.threshold:.2f}: there the "
                f"new model keeps {self.kept_at_threshold} spines on the {self.planes} "
                f"corrected plane(s), about as many as they hold corrected ({amount})"
            )
        return (
            f"{what} threshold {self.base_threshold:.2f} → {self.threshold:.2f} ({measure} on "
            f"{self.planes} corrected plane(s), {amount}: {self.base_score:.3f} → "
            f"{self.score:.3f})"
        )


def _spine_counts(
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


def _dendrite_counts(
    prob: np.ndarray, truth: np.ndarray, outside: np.ndarray, thresholds: Sequence[float]
) -> np.ndarray:
    """(len(thresholds), 2) intersection and union px of ``prob >= t`` with the (Y, X)
    ``truth`` dendrite, counted where ``outside`` (no spine) holds."""
    p, t = prob[outside], truth[outside] > 0
    counts = np.zeros((len(thresholds), 2))
    for k, threshold in enumerate(thresholds):
        found = p >= threshold
        counts[k] = (np.count_nonzero(found & t), np.count_nonzero(found | t))
    return counts


def _segment(plane: np.ndarray, px: float, cfg: InferenceConfig, models: Any) -> tuple[Any, Any]:
    """The :class:`PanopticResult` of a (Y, X) plane at ``px`` µm and its (Y, X) float32
    dendrite probability."""
    kept: list[np.ndarray] = []
    sink = lambda _, prob: kept.append(prob)  # noqa: E731
    result = predict(plane, (1.0, px, px), cfg, models=models, probability_sink=sink)
    return result, kept[0]


def _stack_spine_counts(
    volume: CorrectedVolume,
    px: float,
    cfg: InferenceConfig,
    models: Any,
    thresholds: Sequence[float],
) -> np.ndarray:
    """(len(thresholds), 3) tp, fp, fn of a corrected stack's spines as the stack path finds
    them (at its z-step, or in 4-plane slabs when unknown), centroids matched by the stack rule
    (:func:`~napari_dendrite_panoptic.evaluation.match_stack_centres`)."""
    voxel = (volume.z_step_um, px, px) if volume.z_step_um else None
    if voxel is None:
        cfg = replace(cfg, pixel_size_um=px)
    table = predict(volume.image, voxel, cfg, models=models).table
    pred = table_centres(table)
    truth = instance_centres(volume.spines)
    scores = np.asarray(table["score"])
    counts = np.zeros((len(thresholds), 3))
    for k, threshold in enumerate(thresholds):
        s = match_stack_centres(pred[scores >= threshold], truth, px)
        counts[k] = (s.tp, s.fp, s.fn)
    return counts


def _f1(counts: np.ndarray) -> np.ndarray:
    tp, fp, fn = counts.T
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


def _iou(counts: np.ndarray) -> np.ndarray:
    inter, union = counts.T
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _choose(
    kind: str,
    sweep: Sequence[float],
    curve: np.ndarray,
    base: float,
    base_score: float,
    amount: float,
    enough: bool,
    planes: int,
    kept: tuple[int, ...] = (),
) -> ThresholdChoice:
    """The best threshold of the sweep (ties: the one nearest ``base``), or ``base``."""
    pick, score = base, base_score
    if enough:
        best = [k for k, f in enumerate(curve) if f >= curve.max() - 1e-12]
        k = min(best, key=lambda k: abs(sweep[k] - base))
        pick, score = sweep[k], float(curve[k])
    values = tuple(float(f) for f in curve)
    return ThresholdChoice(
        kind, pick, score, base, base_score, amount, enough, planes, tuple(sweep), values, kept
    )


def _whole_stack(volume: CorrectedVolume) -> bool:
    """Whether every plane of a stack is corrected: its spines are then scored as the stack
    path finds them, once each, not once per plane they cross."""
    return volume.image.shape[0] > 1 and len(volume.planes) == volume.image.shape[0]


def corrected_spines(volumes: Sequence[CorrectedVolume]) -> int:
    """The corrected spines of ``volumes`` as the sweeps and held-out scores count them: a
    whole corrected stack's once each, a plane's in each chosen plane."""
    count = 0
    for v in volumes:
        chosen = [v.spines] if _whole_stack(v) else [v.spines[z] for z in v.planes]
        count += sum(len(np.unique(labels[labels > 0])) for labels in chosen)
    return count


@dataclass(frozen=True)
class SweepCounts:
    """What the threshold sweeps count on corrected volumes; counts of several volumes add up.

    ``spines``: (len(:data:`THRESHOLDS`) + 1, 3) tp, fp, fn of the kept spines at each
    threshold, the last row at the model's own; ``shaft``: (len(:data:`DENDRITE_THRESHOLDS`)
    + 1, 2) intersection and union px with the corrected dendrite, the same way; ``planes``:
    corrected planes; ``corrected``: corrected spines; ``dendrite_um2``: corrected dendrite
    outside spines (µm²)."""

    spines: np.ndarray
    shaft: np.ndarray
    planes: int = 0
    corrected: int = 0
    dendrite_um2: float = 0.0

    @classmethod
    def zero(cls) -> SweepCounts:
        """Nothing counted yet."""
        rows_spines, rows_shaft = len(THRESHOLDS) + 1, len(DENDRITE_THRESHOLDS) + 1
        return cls(np.zeros((rows_spines, 3)), np.zeros((rows_shaft, 2)))

    def __add__(self, other: SweepCounts) -> SweepCounts:
        return SweepCounts(
            self.spines + other.spines, self.shaft + other.shaft, self.planes + other.planes,
            self.corrected + other.corrected, self.dendrite_um2 + other.dendrite_um2,
        )  # fmt: skip


def sweep_counts(
    models: Any, volume: CorrectedVolume, device: str = "cpu", dendrite: bool = True
) -> SweepCounts:
    """Segment the corrected planes of ``volume`` once with ``models`` (a
    :class:`~napari_dendrite_panoptic.models.LoadedModels`), each as a 2D image at its
    volume's pixel size (a whole corrected stack's spines by the stack path), and count what
    every threshold of the sweeps keeps there. ``dendrite`` False counts the spines only (the
    shaft rows stay zero; a whole stack's planes are then not segmented one by one)."""
    sweeps = _sweeps(models.card)
    cfg = InferenceConfig(
        model=str(models.folder), device=device, spine_score_threshold=THRESHOLDS[0]
    )
    px = volume.pixel_size_um or models.card.pixel_size_um
    whole_stack = _whole_stack(volume)
    counts = replace(SweepCounts.zero(), corrected=corrected_spines([volume]))
    if whole_stack:  # the spines as the stack path finds them, once for the stack
        counts = replace(counts, spines=_stack_spine_counts(volume, px, cfg, models, sweeps[0]))
        if not dendrite:
            return replace(counts, planes=len(volume.planes))
    for z in volume.planes:
        plane = (volume, z, px)
        counts = counts + _plane_counts(plane, cfg, models, sweeps, not whole_stack, dendrite)
    return counts


def _sweeps(card: ModelCard) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The spine and dendrite thresholds a sweep counts at: the sweep's, then the card's."""
    return (
        (*THRESHOLDS, card.threshold(_CARD_KEYS["spine"])),
        (*DENDRITE_THRESHOLDS, card.threshold(_CARD_KEYS["dendrite"])),
    )


def _plane_counts(
    plane: tuple[CorrectedVolume, int, float],
    cfg: InferenceConfig,
    models: Any,
    sweeps: tuple[tuple[float, ...], tuple[float, ...]],
    spines: bool,
    dendrite: bool,
) -> SweepCounts:
    """What the ``sweeps`` count on one plane (``plane``: the volume, the plane's index and its
    pixel size in µm): its spines with ``spines``, its dendrite with ``dendrite``."""
    volume, z, px = plane
    counts = replace(SweepCounts.zero(), planes=1)
    if dendrite:
        result, prob = _segment(volume.image[z], px, cfg, models)
    else:
        result = predict(volume.image[z], (1.0, px, px), cfg, models=models)
    if spines:
        truth = instance_centres(volume.spines[z])
        found = _spine_counts(result.table, truth, MATCH_RADIUS_UM / px, sweeps[0])
        counts = replace(counts, spines=found)
    if dendrite:
        outside = (volume.spines[z] == 0) & (result.spines[0] == 0)
        shaft = volume.dendrite[z]
        area = float(np.count_nonzero(shaft & outside)) * px * px
        found = _dendrite_counts(prob, shaft, outside, sweeps[1])
        counts = replace(counts, shaft=found, dendrite_um2=area)
    return counts


def choose_from_counts(
    card: ModelCard, counts: Sequence[SweepCounts]
) -> tuple[ThresholdChoice, ThresholdChoice]:
    """The (spine, dendrite) thresholds best on the pooled ``counts`` of a model whose card
    is ``card`` (:func:`sweep_counts` of each corrected volume)."""
    total = sum(counts, SweepCounts.zero())
    spines, planes = total.corrected, total.planes
    kept = tuple(int(tp + fp) for tp, fp, _ in total.spines[:-1])
    spine_f1, shaft_iou = _f1(total.spines), _iou(total.shaft)
    spine = _choose(
        "spine", THRESHOLDS, spine_f1[:-1], card.threshold(_CARD_KEYS["spine"]),
        float(spine_f1[-1]), spines, spines >= MIN_SPINES, planes, kept,
    )  # fmt: skip
    dendrite = _choose(
        "dendrite", DENDRITE_THRESHOLDS, shaft_iou[:-1], card.threshold(_CARD_KEYS["dendrite"]),
        float(shaft_iou[-1]), total.dendrite_um2, total.dendrite_um2 >= MIN_DENDRITE_UM2, planes,
    )  # fmt: skip
    return spine, dendrite


def choose_thresholds(
    models: Any, volumes: Sequence[CorrectedVolume], device: str = "cpu"
) -> tuple[ThresholdChoice, ThresholdChoice]:
    """The spine score and dendrite thresholds best on the corrected planes of ``volumes``,
    with ``models`` (a :class:`~napari_dendrite_panoptic.models.LoadedModels`); each plane is
    segmented once, as a 2D image at its volume's pixel size. Returns (spine, dendrite)."""
    return choose_from_counts(models.card, [sweep_counts(models, v, device) for v in volumes])


def best_spine_f1(models: Any, volume: CorrectedVolume) -> float:
    """Spine F1 of ``models`` on the corrected planes of ``volume`` at whichever threshold of
    :data:`THRESHOLDS` suits it best there, the spines matched as :func:`choose_thresholds`
    matches them (centroids within :data:`MATCH_RADIUS_UM`; a whole corrected stack by the
    stack path and the stack rule). It says how well a model tells a lab's spines from the rest
    whatever its threshold, so a fine-tuned model, which scores the lab's spines higher than
    its base model, is compared with it fairly."""
    counts = sweep_counts(models, volume, str(models.device), dendrite=False)
    return float(_f1(counts.spines[:-1]).max())


def match_corrected_count(own: ThresholdChoice) -> ThresholdChoice:
    """The spine threshold at which a fine-tuned model keeps as many spines on corrected
    planes it trained on as those planes hold corrected (``own``: :func:`choose_thresholds` of
    the fine-tuned model on them). Ties: the threshold nearest the model's.

    The model scores its training planes too well for their F1 to choose its threshold, but
    how many spines it keeps there needs no F1: a threshold that keeps about as many as the
    user corrected balances missed and false spines, where F1 is best. The rule before it
    (as many as the base model keeps at its own best threshold there) chose the same on one
    lab the model never saw and far too low a threshold on another, whose spines the
    fine-tuned model ranks much better than its base did (``docs/fine_tuning_measurements.md``, "As many
    spines as you corrected"). With too few corrected spines the model's threshold stays."""
    if not own.enough or not own.kept:
        return own  # too few corrected spines: :func:`choose_thresholds` kept the threshold
    k = min(
        range(len(own.sweep)),
        key=lambda k: (abs(own.kept[k] - own.amount), abs(own.sweep[k] - own.base_threshold)),
    )
    return replace(own, threshold=own.sweep[k], score=own.curve[k], counted=True)


_ON = {
    "spine": "the corrected planes' spines (F1, centroids within 0.5 µm; in a whole corrected "
    "stack 1 µm in (y, x) and 2 planes)",
    "dendrite": "the corrected planes' dendrite (IoU, outside spines)",
}


def write_threshold(folder: str | Path, choice: ThresholdChoice) -> ModelCard:
    """Record ``choice`` in the card of model folder ``folder`` (atomically; weights untouched):
    ``inference.spine_score_threshold`` or ``inference.dendrite_threshold`` and, under
    ``metrics``, how it was chosen (``spine_threshold_calibration`` or
    ``dendrite_threshold_calibration``)."""
    card = ModelCard.load(Path(folder))
    metrics = dict(card.metrics)
    on = _ON[choice.kind]
    metrics[f"{choice.kind}_threshold_calibration"] = {
        "on": on,
        "threshold": choice.threshold,
        "score": choice.score,
        "previous_threshold": choice.base_threshold,
        "previous_score": choice.base_score,
        "amount": choice.amount,
        "planes": choice.planes,
    }
    if choice.counted:
        chosen = metrics[f"{choice.kind}_threshold_calibration"]
        chosen["on"] += (
            f"; chosen by count, on planes this model trained on: it keeps "
            f"{choice.kept_at_threshold} spines there at its threshold, about as many as they "
            f"hold corrected (score: its F1 there, which training on them inflates)"
        )
        chosen["kept"] = choice.kept_at_threshold
    inference = {**card.inference, _CARD_KEYS[choice.kind]: choice.threshold}
    new = replace(card, inference=inference, metrics=metrics)
    new.save(Path(folder))
    return new
