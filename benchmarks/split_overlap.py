"""How close each held-out image of the real sets is to a training image.

For every image of a held-out split (Smirnov ``test``, the FindSpines validation groups, YOLO11
``val``) this finds the most similar image of the training side: the correlation of 32 × 32
thumbnails (each made zero-mean and unit-norm; 1.0 means the same picture up to brightness and
contrast). For the centre-annotated sets it also scores a "detector" that predicts nothing at
all: it copies the centres annotated on that nearest training image (same shape only) and is
matched like the models (Hungarian, the set's radius). A high score there means the split
measures recall of training fields more than detection.

    PYTHONPATH=src python benchmarks/split_overlap.py --json docs/results/split_overlap.json

Needs ``../shared/data`` (or ``$DENDRITE_PANOPTIC_DATA``); about a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage.transform import resize

from napari_dendrite_panoptic.core import atomic_path
from napari_dendrite_panoptic.data import real as rd
from napari_dendrite_panoptic.evaluation.metrics import match_points

THUMB = 32


def thumbnails(images: Sequence[np.ndarray]) -> np.ndarray:
    """(N, THUMB²) float64 zero-mean, unit-norm thumbnails of (H, W) images."""
    rows = []
    for image in images:
        t = resize(np.asarray(image, dtype=float), (THUMB, THUMB), anti_aliasing=True)
        t = t - t.mean()
        rows.append(t.ravel() / (np.linalg.norm(t) + 1e-12))
    return np.stack(rows)


FIELD_CORRELATION = 0.9
"""Thumbnail correlation at or above which two crops count as frames of one field: Smirnov's
183 `test` crops fall into 38 such fields (34 at 0.8, 50 at 0.95; the median crop's nearest
other crop correlates 0.986)."""


def field_groups(images: Sequence[np.ndarray], min_corr: float = FIELD_CORRELATION) -> np.ndarray:
    """(N,) int field index of each (H, W) image: images joined (transitively) where their
    thumbnails correlate ≥ ``min_corr``, for sets that publish no field of each crop."""
    from scipy.sparse.csgraph import connected_components

    t = thumbnails(images)
    similar = t @ t.T >= min_corr
    return connected_components(similar, directed=False)[1]


def nearest(held_out: Sequence[Any], train: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``train`` of each held-out item's most similar image, and that correlation."""
    corr = thumbnails([it.image for it in held_out]) @ thumbnails([it.image for it in train]).T
    return corr.argmax(axis=1), corr.max(axis=1)


def copied_annotation_scores(held_out: Sequence[Any], train: Sequence[Any], index: np.ndarray):
    """Pooled (tp, fp, fn, f1) when each held-out image's spines are "predicted" as the centres
    annotated on its nearest training image (skipped where the shapes differ)."""
    tp = fp = fn = used = 0
    for item, k in zip(held_out, index, strict=True):
        source = train[int(k)]
        if source.image.shape != item.image.shape:
            continue
        s, _ = match_points(source.centres_px, item.centres_px, float(item.match_radius_px))
        tp, fp, fn, used = tp + s.tp, fp + s.fp, fn + s.fn, used + 1
    return {"images": used, "tp": tp, "fp": fp, "fn": fn, "f1": 2 * tp / max(2 * tp + fp + fn, 1)}


def summary(best: np.ndarray) -> dict[str, Any]:
    return {
        "images": int(best.size),
        "nearest_correlation_median": float(np.median(best)),
        "nearest_correlation_p10": float(np.percentile(best, 10)),
        "share_at_least_0.95": float(np.mean(best >= 0.95)),
        "share_at_least_0.90": float(np.mean(best >= 0.90)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    out: dict[str, Any] = {"thumbnail_px": THUMB}

    train, test = rd.load_smirnov("train"), rd.load_smirnov("test")
    index, best = nearest(test, train)
    out["smirnov test vs train"] = summary(best) | {
        "copy_nearest_train_annotations": copied_annotation_scores(test, train, index)
    }

    fs_train, fs_val = rd.findspines_split(rd.load_findspines())
    index, best = nearest(fs_val, fs_train)
    out["findspines validation groups vs training groups"] = summary(best) | {
        "copy_nearest_train_annotations": copied_annotation_scores(fs_val, fs_train, index)
    }

    _, best = nearest(rd.load_yolo11("val"), rd.load_yolo11("train"))
    out["yolo11 val vs train"] = summary(best)

    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
