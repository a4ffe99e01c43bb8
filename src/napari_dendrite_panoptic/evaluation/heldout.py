"""Evaluate a model on held-out data: generator images, real point sets and real mask sets.

Each function predicts with :func:`napari_dendrite_panoptic.inference.predict` and scores with
:mod:`.metrics`, so the CLI,
training validation and the docs share one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import ratio
from ..data import synthetic
from .metrics import match_instances, match_points, pixel_scores, pool_instance_scores

if TYPE_CHECKING:  # at run time imported by each function: comparing arrays needs no torch
    from ..inference import InferenceConfig
    from ..models import LoadedModels

Progress = Callable[[int, int], None]

#: first seed and shape of the held-out generated planes (``evaluate --generator N``)
HELD_OUT_2D_SEED, HELD_OUT_2D_SHAPE = 10_000, (1, 256, 256)
#: first seed and shape of the held-out generated stacks (``evaluate --generator-3d N``)
HELD_OUT_3D_SEED, HELD_OUT_3D_SHAPE = 20_000, (8, 192, 192)
#: first seed of the generated stacks that tuning scripts may look at (never the held-out ones)
TUNING_3D_SEED = 40_000
#: first seed, number and shape of the held-out two-photon-like stacks
#: (:func:`~napari_dendrite_panoptic.data.synthetic.twophoton_stack`, ``benchmarks/bench_stacks.py``)
HELD_OUT_2P_SEED, HELD_OUT_2P_STACKS, HELD_OUT_2P_SHAPE = 30_000, 6, (16, 384, 384)


def _noop(done: int, total: int) -> None:
    return None


def evaluate_generator(
    models: LoadedModels,
    n_images: int = 8,
    seed: int = HELD_OUT_2D_SEED,
    shape: tuple[int, int, int] = HELD_OUT_2D_SHAPE,
    config: InferenceConfig | None = None,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Scores on ``n_images`` generator images drawn with seeds ``seed, seed+1, ...``.

    The images come from :func:`synthetic.random_config` (a different seed range than training
    uses), at their own pixel size, so resampling is part of what is measured. Returns dendrite
    pixel scores (pooled), spine pixel scores, spine instance scores at IoU 0.5 (micro-averaged,
    with PQ) and the number of images.
    """
    from ..inference import InferenceConfig, predict

    cfg = config or InferenceConfig()
    rng = np.random.default_rng(seed)
    dend_tp = dend_fp = dend_fn = sp_tp = sp_fp = sp_fn = 0
    parts = []
    for i in range(n_images):
        sample = synthetic.generate(seed + i, synthetic.random_config(rng, shape=shape))
        result = predict(sample.image, sample.voxel_size_um, cfg, models=models)
        d = pixel_scores(result.dendrite, sample.dendrite)
        s = pixel_scores(result.spines, sample.spines)
        dend_tp, dend_fp, dend_fn = dend_tp + d.tp, dend_fp + d.fp, dend_fn + d.fn
        sp_tp, sp_fp, sp_fn = sp_tp + s.tp, sp_fp + s.fp, sp_fn + s.fn
        parts.append(match_instances(result.spines, sample.spines, 0.5)[0])
        progress(i + 1, n_images)
    inst = pool_instance_scores(parts)
    return {
        "images": n_images,
        "shape": list(shape),
        "dendrite_iou": ratio(dend_tp, dend_tp + dend_fp + dend_fn),
        "dendrite_precision": ratio(dend_tp, dend_tp + dend_fp),
        "dendrite_recall": ratio(dend_tp, dend_tp + dend_fn),
        "spine_pixel_iou": ratio(sp_tp, sp_tp + sp_fp + sp_fn),
        "spine_f1_iou50": inst.f1,
        "spine_precision_iou50": inst.precision,
        "spine_recall_iou50": inst.recall,
        "spine_pq": inst.pq,
        "spine_sq": inst.sq,
        "spine_rq": inst.rq,
    }


def point_counts(
    table: dict[str, np.ndarray], item: Any, thresholds: Sequence[float] = (0.0,)
) -> np.ndarray:
    """(len(thresholds), 3) float (tp, fp, fn) of one image's predicted spines against its
    annotated centres (:class:`~napari_dendrite_panoptic.data.real.PointAnnotatedImage`), keeping for each threshold the spines
    whose ``score`` is at least it. A spine's centroid matches a centre within the item's
    ``match_radius_px`` (Hungarian matching)."""
    pred = np.stack([table["centroid_y_px"], table["centroid_x_px"]], axis=1)
    scores = np.asarray(table["score"])
    counts = np.zeros((len(thresholds), 3))
    for k, threshold in enumerate(thresholds):
        s, _ = match_points(
            pred[scores >= threshold], np.asarray(item.centres_px), float(item.match_radius_px)
        )
        counts[k] = (s.tp, s.fp, s.fn)
    return counts


def evaluate_points(
    models: LoadedModels,
    items: Sequence[Any],
    config: InferenceConfig | None = None,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Spine detection on centre-annotated 2D images (:class:`~napari_dendrite_panoptic.data.real.PointAnnotatedImage`).

    A predicted spine matches an annotated centre when its centroid lies within the item's
    ``match_radius_px`` (Hungarian matching per image); counts are pooled over images.
    """
    from ..inference import InferenceConfig, predict

    cfg = config or InferenceConfig()
    tp = fp = fn = 0
    for i, item in enumerate(items):
        px = float(item.pixel_size_um)
        result = predict(item.image, (1.0, px, px), replace(cfg, pixel_size_um=None), models=models)
        # the result's table already holds each spine's centroid in px
        ((a, b, c),) = point_counts(result.table, item).astype(int).tolist()
        tp, fp, fn = tp + a, fp + b, fn + c
        progress(i + 1, len(items))
    return {
        "images": len(items),
        "spines": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def evaluate_masks(
    models: LoadedModels,
    items: Sequence[Any],
    config: InferenceConfig | None = None,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Spine instances and neuron foreground on mask-annotated images
    (:class:`~napari_dendrite_panoptic.data.real.MaskAnnotatedImage`): spine F1 at IoU 0.25 and 0.5, PQ, and the IoU of
    (dendrite ∪ spines) with the annotated foreground."""
    from ..inference import InferenceConfig, predict

    cfg = config or InferenceConfig()
    p25, p50 = [], []
    fg_tp = fg_union = 0
    for i, item in enumerate(items):
        px = float(item.pixel_size_um)
        result = predict(item.image, (1.0, px, px), replace(cfg, pixel_size_um=None), models=models)
        spines = result.spines[0]
        p25.append(match_instances(spines, item.spines, 0.25)[0])
        p50.append(match_instances(spines, item.spines, 0.5)[0])
        fg_pred = (result.dendrite[0] > 0) | (spines > 0)
        fg_true = np.asarray(item.foreground, dtype=bool)
        fg_tp += int(np.count_nonzero(fg_pred & fg_true))
        fg_union += int(np.count_nonzero(fg_pred | fg_true))
        progress(i + 1, len(items))
    s25, s50 = pool_instance_scores(p25), pool_instance_scores(p50)
    return {
        "images": len(items),
        "spine_f1_iou25": s25.f1,
        "spine_precision_iou25": s25.precision,
        "spine_recall_iou25": s25.recall,
        "spine_f1_iou50": s50.f1,
        "spine_pq_iou50": s50.pq,
        "foreground_iou": ratio(fg_tp, fg_union),
    }
