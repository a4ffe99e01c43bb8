"""Evaluation metrics: pixel scores, instance matching (F1, PQ) and point detection.

One implementation of each metric, used by the CLI, training validation, benchmarks and widgets.
All functions take (Z, Y, X) or (Y, X) arrays of the same shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from ..core import ratio
from ..errors import InputError


def _check_shapes(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{what}: prediction shape {a.shape} differs from ground truth {b.shape}")


def detection_scores(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (NaN where a ratio has no denominator)."""
    return ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn)


@dataclass(frozen=True)
class PixelScores:
    """Pixel-wise IoU, precision and recall of a binary mask (NaN where undefined)."""

    iou: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def pixel_scores(pred: np.ndarray, truth: np.ndarray) -> PixelScores:
    """IoU, precision, recall of ``pred > 0`` against ``truth > 0``."""
    pred = np.asarray(pred) > 0
    truth = np.asarray(truth) > 0
    _check_shapes(pred, truth, "pixel scores")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return PixelScores(ratio(tp, tp + fp + fn), ratio(tp, tp + fp), ratio(tp, tp + fn), tp, fp, fn)


def iou_matrix(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every (truth id, pred id) pair; returns (iou (T, P), truth ids, pred ids).

    Only labelled pixels are visited (ids need not be consecutive or small).
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    _check_shapes(pred, truth, "instance matching")
    t_mask = truth > 0
    p_mask = pred > 0
    t_ids, t_size = np.unique(truth[t_mask].astype(np.int64, copy=False), return_counts=True)
    p_ids, p_size = np.unique(pred[p_mask].astype(np.int64, copy=False), return_counts=True)
    iou = np.zeros((t_ids.size, p_ids.size))
    if not t_ids.size or not p_ids.size:
        return iou, t_ids, p_ids
    both = t_mask & p_mask
    t_index = np.searchsorted(t_ids, truth[both].astype(np.int64, copy=False))
    p_index = np.searchsorted(p_ids, pred[both].astype(np.int64, copy=False))
    pairs = t_index * p_ids.size + p_index
    inter = np.bincount(pairs, minlength=t_ids.size * p_ids.size).reshape(t_ids.size, p_ids.size)
    union = t_size[:, None] + p_size[None, :] - inter
    iou = inter / np.maximum(union, 1)
    return iou, t_ids, p_ids


@dataclass(frozen=True)
class InstanceScores:
    """Instance detection at an IoU threshold, with panoptic quality (PQ = SQ x RQ)."""

    threshold: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    sq: float
    rq: float
    pq: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class InstanceMatch:
    """Which ids matched: pairs (truth id, pred id, IoU) and the unmatched ids of each side."""

    pairs: list[tuple[int, int, float]]
    false_positives: list[int]
    false_negatives: list[int]


def match_instances(
    pred: np.ndarray,
    truth: np.ndarray,
    threshold: float = 0.5,
    ious: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[InstanceScores, InstanceMatch]:
    """One-to-one matching of instances by IoU; a pair counts when IoU > ``threshold``.

    The matching first maximises the number of pairs above the threshold, then their summed IoU
    (as stardist's ``matching`` does): maximising the summed IoU alone and dropping the pairs
    under the threshold afterwards can miss matches below 0.5. The comparison is strict, as in
    the definition of PQ (a pair at exactly 0.5 is no match at 0.5); for ``threshold >= 0.5`` the
    matching is unique whatever the algorithm, since two masks cannot both overlap a third by
    more than half.
    ``ious``: the :func:`iou_matrix` of ``pred`` and ``truth`` when the caller has it already.
    """
    iou, t_ids, p_ids = ious if ious is not None else iou_matrix(pred, truth)
    pairs: list[tuple[int, int, float]] = []
    if iou.size:
        above = (iou > threshold) & (iou > 0)
        # each pair above the threshold is worth 1, plus its IoU / (2 n): the IoU terms of a whole
        # matching sum to at most 1/2, so no gain in IoU can outweigh one more pair
        n = min(iou.shape)
        rows, cols = linear_sum_assignment(-(above * (1.0 + iou / (2 * n))))
        for r, c in zip(rows, cols, strict=True):
            if above[r, c]:
                pairs.append((int(t_ids[r]), int(p_ids[c]), float(iou[r, c])))
    matched_t = {p[0] for p in pairs}
    matched_p = {p[1] for p in pairs}
    fns = [int(i) for i in t_ids if int(i) not in matched_t]
    fps = [int(i) for i in p_ids if int(i) not in matched_p]
    tp, fp, fn = len(pairs), len(fps), len(fns)
    precision, recall, f1 = detection_scores(tp, fp, fn)
    iou_sum = float(sum(p[2] for p in pairs))
    sq, pq = ratio(iou_sum, tp), ratio(iou_sum, tp + 0.5 * fp + 0.5 * fn)  # PQ = SQ x RQ
    scores = InstanceScores(threshold, tp, fp, fn, precision, recall, f1, sq, f1, pq)
    return scores, InstanceMatch(pairs, fps, fns)


@dataclass(frozen=True)
class PointScores:
    """Detection of annotated points: a prediction matches a point within ``max_distance``."""

    max_distance: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def match_points(
    pred_points: np.ndarray, true_points: np.ndarray, max_distance: float
) -> tuple[PointScores, list[tuple[int, int, float]]]:
    """Hungarian matching of predicted to true points (N, D) within ``max_distance``.

    Coordinates and distance share one unit (px or µm; scale them first for anisotropic data).
    Returns the scores and the matched (true index, pred index, distance) pairs.
    """
    pred_points = np.asarray(pred_points, dtype=float)
    true_points = np.asarray(true_points, dtype=float)
    if pred_points.ndim == 2 and pred_points.size:
        dim = pred_points.shape[1]
    elif true_points.ndim == 2 and true_points.size:
        dim = true_points.shape[1]
    else:
        dim = 2
    pred_points = pred_points.reshape(-1, dim)
    true_points = true_points.reshape(-1, dim)
    pairs: list[tuple[int, int, float]] = []
    if len(pred_points) and len(true_points):
        d = np.linalg.norm(true_points[:, None, :] - pred_points[None, :, :], axis=-1)
        cost = np.where(d <= max_distance, d, 1e9)
        rows, cols = linear_sum_assignment(cost)
        pairs = [
            (int(r), int(c), float(d[r, c]))
            for r, c in zip(rows, cols, strict=True)
            if d[r, c] <= max_distance
        ]
    tp = len(pairs)
    fp = len(pred_points) - tp
    fn = len(true_points) - tp
    precision, recall, f1 = detection_scores(tp, fp, fn)
    return PointScores(max_distance, tp, fp, fn, precision, recall, f1), pairs


def instance_centres(labels: np.ndarray) -> np.ndarray:
    """(N, D) float centroids in px ((y, x) of a plane, (z, y, x) of a stack) of the instances
    of an integer label array, in increasing id order."""
    labels = np.asarray(labels)
    ids = np.unique(labels[labels > 0])
    if not ids.size:
        return np.zeros((0, labels.ndim))
    centres = ndi.center_of_mass(labels > 0, labels, ids)
    return np.asarray(centres, dtype=float).reshape(-1, labels.ndim)


def table_centres(table: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 3) float (z, y, x) px centroids of the spines of a per-spine table (its
    ``centroid_z_px``, ``centroid_y_px`` and ``centroid_x_px`` columns)."""
    columns = [np.asarray(table[f"centroid_{a}_px"], dtype=float) for a in "zyx"]
    return np.stack(columns, axis=1).reshape(-1, 3)


STACK_LATERAL_UM = 1.0
"""Largest (y, x) distance in µm between matched spine centres in a stack."""
STACK_PLANES = 2.0
"""Largest z distance in planes between matched spine centres in a stack (the axial blur
spreads a spine over several planes, so its centroid's plane is uncertain)."""


def match_stack_centres(
    pred_zyx: np.ndarray,
    true_zyx: np.ndarray,
    pixel_um: float,
    lateral_um: float = STACK_LATERAL_UM,
    planes: float = STACK_PLANES,
) -> PointScores:
    """Spine centres of a stack matched one to one: ``pred_zyx`` and ``true_zyx`` (N, 3)
    float (z plane, y px, x px); a pair may match when its (y, x) distance is at most
    ``lateral_um`` µm (``pixel_um`` per px) and its z distance at most ``planes`` planes;
    Hungarian matching on the lateral distance."""
    pred = np.asarray(pred_zyx, float).reshape(-1, 3)
    true = np.asarray(true_zyx, float).reshape(-1, 3)
    tp = 0
    if len(pred) and len(true):
        diff = true[:, None, :] - pred[None, :, :]
        lateral = np.hypot(diff[..., 1], diff[..., 2]) * pixel_um
        ok = (lateral <= lateral_um) & (np.abs(diff[..., 0]) <= planes)
        rows, cols = linear_sum_assignment(np.where(ok, lateral, 1e6))
        tp = int(np.count_nonzero(ok[rows, cols]))
    fp, fn = len(pred) - tp, len(true) - tp
    return PointScores(lateral_um, tp, fp, fn, *detection_scores(tp, fp, fn))


def pool_instance_scores(parts: list[InstanceScores]) -> InstanceScores:
    """Micro-average several images' instance scores (sums of tp/fp/fn; SQ weighted by tp)."""
    tp = sum(p.tp for p in parts)
    fp = sum(p.fp for p in parts)
    fn = sum(p.fn for p in parts)
    iou_sum = sum(p.sq * p.tp for p in parts if p.tp)
    sq, pq = ratio(iou_sum, tp), ratio(iou_sum, tp + 0.5 * fp + 0.5 * fn)  # PQ = SQ x RQ
    precision, recall, f1 = detection_scores(tp, fp, fn)
    threshold = parts[0].threshold if parts else 0.5
    return InstanceScores(threshold, tp, fp, fn, precision, recall, f1, sq, f1, pq)
