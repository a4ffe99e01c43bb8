"""Spine type accuracy on the YOLO11 set's real labels: rules vs the learned classifier.

Spines are measured on their ground-truth outlines (each spine is its own match, IoU 1), with the
dendrite mask = image > 0 minus the spine outlines and the set's pixel-size rule. Prints accuracy,
per-class recall and the confusion matrix on ``val`` for: always "stubby", the rules with their
defaults, the rules with thresholds tuned on ``train`` (coordinate search), and the learned
classifier (trained on ``train`` only). ``--tune`` prints the tuned thresholds to put in
``TypeRules``.

    PYTHONPATH=src python scripts/eval_spine_types.py [--tune] [--predicted [--model M | --predicted-cache F]]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import numpy as np

from napari_dendrite_panoptic.analysis import TypeRules, classify_rules, measure_spines
from napari_dendrite_panoptic.analysis.spine_types import classify_learned, load_learned
from napari_dendrite_panoptic.core import SPINE_TYPES
from napari_dendrite_panoptic.data import real as rd


def measured(split: str, learned=None):
    """Concatenated measurement table, truth and learned predictions of a split."""
    tables, truth, learned_pred = [], [], []
    for item in rd.load_yolo11(split):
        voxel = (1.0, item.pixel_size_um, item.pixel_size_um)
        t = measure_spines(item.dendrite, item.spines, voxel, item.image)
        keep = [i for i, s in enumerate(t["id"]) if item.spine_types[int(s)] in SPINE_TYPES]
        t = {k: v[keep] for k, v in t.items()}
        tables.append(t)
        truth += [item.spine_types[int(s)] for s in t["id"]]
        if learned is not None:
            got = classify_learned(item.image, item.dendrite, item.spines, t, voxel, learned)
            learned_pred += list(got[0])
    table = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
    return table, np.asarray(truth), np.asarray(learned_pred)


def report(name: str, truth: np.ndarray, pred: np.ndarray) -> float:
    acc = float(np.mean(truth == pred))
    print(f"\n== {name}: accuracy {acc:.3f} ({int(np.sum(truth == pred))}/{len(truth)})")
    print("truth \\ predicted " + " ".join(f"{t[:10]:>10}" for t in SPINE_TYPES) + "   recall")
    for t in SPINE_TYPES:
        row = [int(np.sum((truth == t) & (pred == p))) for p in SPINE_TYPES]
        n = int(np.sum(truth == t))
        rec = f"{row[SPINE_TYPES.index(t)] / n:.2f}" if n else "  - "
        print(f"{t:>17} " + " ".join(f"{v:>10}" for v in row) + f"   {rec} (n={n})")
    return acc


def predicted(split: str, cache: str | None = None, model: str | None = None):
    """Types of a model's spines (``model``: a model folder; the bundled one by default) on a
    split, matched to the truth at IoU >= 0.25.

    The prediction's own dendrite and spines are analysed (learned types); returns the truth and
    predicted type of every matched pair, and the number of true spines. ``cache``: an npz of the
    model's predictions (``scripts/cache_predicted_spines.py``) read instead of running it."""
    from napari_dendrite_panoptic.analysis import analyse
    from napari_dendrite_panoptic.evaluation import match_instances
    from napari_dendrite_panoptic.inference import InferenceConfig, predict
    from napari_dendrite_panoptic.models import load_models

    cached = np.load(cache) if cache else None
    models = None if cached is not None else load_models(model, "cpu")
    truth, pred, n_true = [], [], 0
    for item in rd.load_yolo11(split):
        px = item.pixel_size_um
        voxel = (1.0, px, px)
        if cached is not None:
            dendrite = cached[f"{item.name}.dendrite"].astype(np.uint8)
            spines = cached[f"{item.name}.spines"].astype(np.int32)
        else:
            result = predict(item.image, voxel, InferenceConfig(device="cpu"), models=models)
            dendrite, spines = result.dendrite[0], result.spines[0]
        analysis = analyse(dendrite, spines, voxel, item.image)
        types = dict(zip(analysis.spines["id"].tolist(), analysis.spines["type"], strict=True))
        _, match = match_instances(spines, item.spines, 0.25)
        n_true += len(item.spine_types)
        for t_id, p_id, _iou in match.pairs:
            if item.spine_types[t_id] in SPINE_TYPES:
                truth.append(item.spine_types[t_id])
                pred.append(types[p_id])
    return np.asarray(truth), np.asarray(pred), n_true


def tune(table, truth) -> TypeRules:
    """Coordinate search over the thresholds, maximising training accuracy."""
    grids = {
        "branched_min_tips": [2, 3, 4, 99],
        "filopodium_min_length_um": [1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 99.0],
        "filopodium_max_head_neck": [1.0, 1.1, 1.2, 1.3, 1.5, 2.0],
        "thin_min_length_head": [1.0, 1.2, 1.5, 1.8, 2.0, 2.5, 99.0],
        "thin_max_head_um": [0.4, 0.5, 0.6, 0.7, 0.8, 1.0],
        "mushroom_min_head_neck": [1.1, 1.2, 1.3, 1.5, 1.8, 2.0, 99.0],
        "mushroom_min_head_um": [0.6, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 99.0],
    }
    rules = TypeRules()
    best = np.mean(classify_rules(table, rules) == truth)
    for _ in range(3):
        for key, values in itertools.chain(grids.items()):
            for v in values:
                cand = dataclasses.replace(rules, **{key: v})
                acc = np.mean(classify_rules(table, cand) == truth)
                if acc > best:
                    best, rules = acc, cand
    print(f"tuned on train: accuracy {best:.3f}: {rules}")
    return rules


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", action="store_true", help="tune the rule thresholds on train")
    ap.add_argument(
        "--predicted", action="store_true", help="also on the bundled model's predicted spines"
    )
    ap.add_argument(
        "--predicted-cache",
        default=None,
        help="npz of the model's predictions on val (cache_predicted_spines.py --split val)",
    )
    ap.add_argument("--model", default=None, help="model folder for --predicted (default: bundled)")
    args = ap.parse_args()
    learned = load_learned()
    val, val_truth, val_learned = measured("val", learned)
    print(f"val: {len(val_truth)} spines on ground-truth outlines")
    report("always 'stubby'", val_truth, np.full(len(val_truth), "stubby"))
    report("rules (TypeRules defaults)", val_truth, classify_rules(val))
    if args.tune:
        train, train_truth, _ = measured("train")
        rules = tune(train, train_truth)
        report("rules tuned on train", val_truth, classify_rules(val, rules))
    if learned is not None:
        report("learned classifier", val_truth, val_learned)
    else:
        print("learned classifier: weights absent")
    if args.predicted:
        truth, pred, n_true = predicted("val", args.predicted_cache, args.model)
        whose = args.model or "bundled model"
        print(
            f"\n{whose}'s spines on val: {len(truth)} of {n_true} true spines matched (IoU >= 0.25)"
        )
        report("learned classifier on predicted spines (matched pairs)", truth, pred)


if __name__ == "__main__":
    main()
