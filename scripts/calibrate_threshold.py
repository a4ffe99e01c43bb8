"""Choose a model's spine score threshold on training images only, and record it in its card.

    .venv/bin/python scripts/calibrate_threshold.py MODEL_FOLDER --json docs/results/X.json \
        [--unseen-model LOSO_FOLDER] [--unseen-smirnov-model LOSO_FOLDER] \
        [--unseen-yolo11-model LOSO_FOLDER] [--unseen-curves EARLIER_SWEEP.json] \
        [--write-card] [--device cpu] [--flips]

Sweeps thresholds 0.30-0.95 (step 0.05) and scores spine detection on images the model was
trained on, never on the held-out splits that ``dendrite-panoptic evaluate --real`` reports:
every 40th Smirnov ``train`` crop (42 crops, centroid within 7.5 px), every 12th FindSpines
training field (20 fields, centroid within half the box) and 4 generator images (seeds
30000-30003, spine F1 at IoU 0.5). Without ``--unseen-model`` the chosen threshold is the argmax
of the mean of the three F1s.

A threshold tuned on the labs a model was trained on is too high for a lab it never saw (its
scores there are lower). ``--unseen-model`` names a model trained the same way without
FindSpines (``docs/models.md``, "Leave-one-set-out"); its F1 on every 6th FindSpines training
field (40 fields, a lab it never saw) is a second curve, and the chosen threshold is then the
argmax of the mean of the two curves (the seen-labs mean and the unseen lab).
``--unseen-smirnov-model`` names one trained without Smirnov; its F1 on every 10th Smirnov
``train`` crop (166 crops) joins the unseen side, and with both the chosen threshold is the
argmax of the mean of the seen-labs mean and the mean of the two unseen-lab curves.
``--unseen-yolo11-model`` names one trained without YOLO11; its spine F1 at mask IoU 0.25 (the
YOLO11 target's measure) on every 4th YOLO11 ``train`` image (50 images) joins the unseen side
the same way.

Each image is predicted once at 0.30 and its spines are then kept by score for each threshold.
``--write-card`` writes the choice into the model's ``card.json`` (atomically; weights
untouched). Needs ``../shared/data`` (or ``$DENDRITE_PANOPTIC_DATA``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_dendrite_panoptic.core import atomic_write_text
from napari_dendrite_panoptic.data import real as rd
from napari_dendrite_panoptic.data import synthetic
from napari_dendrite_panoptic.evaluation import match_instances
from napari_dendrite_panoptic.evaluation.heldout import point_counts
from napari_dendrite_panoptic.evaluation.metrics import pool_instance_scores
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import load_models

THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 0.951, 0.05)]


def _point_f1s(models, items, cfg) -> list[float]:
    """F1 per threshold: one prediction per image at the lowest threshold, spines kept by score."""
    counts = np.zeros((len(THRESHOLDS), 3))
    for item in items:
        px = float(item.pixel_size_um)
        table = predict(item.image, (1.0, px, px), cfg, models=models).table
        counts += point_counts(table, item, THRESHOLDS)
    return [2 * tp / max(2 * tp + fp + fn, 1) for tp, fp, fn in counts]


def _kept(result, threshold: float) -> np.ndarray:
    """``result.spines`` without the spines scored below ``threshold``."""
    drop = result.table["id"][result.table["score"] < threshold]
    return np.where(np.isin(result.spines, drop), 0, result.spines)


def _generator_f1s(models, n, seed, cfg) -> list[float]:
    """Spine F1 at IoU 0.5 per threshold on ``n`` generator images (labels kept by score)."""
    rng = np.random.default_rng(seed)
    parts: list[list] = [[] for _ in THRESHOLDS]
    for i in range(n):
        sample = synthetic.generate(seed + i, synthetic.random_config(rng, shape=(1, 256, 256)))
        result = predict(sample.image, sample.voxel_size_um, cfg, models=models)
        for k, t in enumerate(THRESHOLDS):
            parts[k].append(match_instances(_kept(result, t), sample.spines, 0.5)[0])
    return [pool_instance_scores(p).f1 for p in parts]


def _mask_f1s(models, items, cfg, iou: float = 0.25) -> list[float]:
    """Spine F1 at mask IoU ``iou`` per threshold on outline-annotated 2D images."""
    parts: list[list] = [[] for _ in THRESHOLDS]
    for item in items:
        px = float(item.pixel_size_um)
        result = predict(item.image, (1.0, px, px), cfg, models=models)
        for k, t in enumerate(THRESHOLDS):
            parts[k].append(match_instances(_kept(result, t)[0], item.spines, iou)[0])
    return [pool_instance_scores(p).f1 for p in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--json", required=True, help="where to write the sweep")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write-card", action="store_true")
    parser.add_argument(
        "--unseen-model", help="a model trained without FindSpines: its F1 there is a 2nd curve"
    )
    parser.add_argument(
        "--unseen-smirnov-model",
        help="a model trained without Smirnov: its F1 on Smirnov training crops is an unseen curve",
    )
    parser.add_argument(
        "--unseen-yolo11-model",
        help="a model trained without YOLO11: its F1 (IoU 0.25) on YOLO11 train is an unseen curve",
    )
    parser.add_argument(
        "--unseen-curves",
        help="an earlier sweep's JSON: its unseen-lab curves join this one (no model needed)",
    )
    parser.add_argument("--flips", action="store_true", help="four mirror views per plane")
    args = parser.parse_args()
    # every image predicted once at the lowest threshold; spines then kept by score
    cfg = InferenceConfig(
        device=args.device,
        spine_score_threshold=THRESHOLDS[0],
        pixel_size_um=None,
        test_time_flips=args.flips,
    )

    models = load_models(args.model, args.device)
    smirnov = rd.load_smirnov("train")[::40]
    fs_train, _ = rd.findspines_split(rd.load_findspines())
    findspines = fs_train[::12]
    columns = {
        "smirnov-train": _point_f1s(models, smirnov, cfg),
        "findspines-train": _point_f1s(models, findspines, cfg),
        "generator": _generator_f1s(models, 4, 30_000, cfg),
    }
    unseen_fields = fs_train[::6]
    unseen_crops = rd.load_smirnov("train")[::10]
    unseen_outlined = rd.load_yolo11("train")[::4] if args.unseen_yolo11_model else []
    if args.unseen_model:
        unseen = load_models(args.unseen_model, args.device)
        columns["unseen-findspines-train"] = _point_f1s(unseen, unseen_fields, cfg)
    if args.unseen_smirnov_model:
        unseen = load_models(args.unseen_smirnov_model, args.device)
        columns["unseen-smirnov-train"] = _point_f1s(unseen, unseen_crops, cfg)
    if args.unseen_yolo11_model:
        unseen = load_models(args.unseen_yolo11_model, args.device)
        columns["unseen-yolo11-train"] = _mask_f1s(unseen, unseen_outlined, cfg)
    earlier = json.loads(Path(args.unseen_curves).read_text()) if args.unseen_curves else None
    if earlier is not None:
        for name in next(iter(earlier["f1_by_threshold"].values())):
            if name.startswith("unseen-") and name not in columns:
                columns[name] = [earlier["f1_by_threshold"][str(t)][name] for t in THRESHOLDS]
    unseen_names = [name for name in columns if name.startswith("unseen-")]
    sweep: dict[str, dict[str, float]] = {}
    for k, t in enumerate(THRESHOLDS):
        row = {name: f1s[k] for name, f1s in columns.items()}
        seen = [row[name] for name in ("smirnov-train", "findspines-train", "generator")]
        row["mean"] = float(np.mean(seen))
        if unseen_names:
            row["combined"] = (row["mean"] + float(np.mean([row[n] for n in unseen_names]))) / 2
        sweep[str(t)] = row
        print(t, " ".join(f"{name} {v:.3f}" for name, v in row.items()), flush=True)
    key = "combined" if unseen_names else "mean"
    chosen = max(THRESHOLDS, key=lambda t: sweep[str(t)][key])
    rule = (
        "argmax of mean spine F1 over thresholds 0.30-0.95 on training images only "
        f"({len(smirnov)} Smirnov train crops, {len(findspines)} FindSpines training fields, "
        "4 generator images)"
    )
    unseen_parts = []
    if args.unseen_model:
        unseen_parts.append(
            f"the F1 of a model trained without FindSpines ({args.unseen_model}) on "
            f"{len(unseen_fields)} FindSpines training fields (a lab it never saw)"
        )
    if args.unseen_smirnov_model:
        unseen_parts.append(
            f"the F1 of a model trained without Smirnov ({args.unseen_smirnov_model}) on "
            f"{len(unseen_crops)} Smirnov train crops (a lab it never saw)"
        )
    if args.unseen_yolo11_model:
        unseen_parts.append(
            f"the spine F1 at mask IoU 0.25 of a model trained without YOLO11 "
            f"({args.unseen_yolo11_model}) on {len(unseen_outlined)} YOLO11 train images "
            "(a lab it never saw)"
        )
    if earlier is not None:
        unseen_parts.append(
            f"the unseen-lab curves {', '.join(n for n in unseen_names)} of the earlier sweep "
            f"{args.unseen_curves} (models {earlier.get('unseen_model')}, "
            f"{earlier.get('unseen_smirnov_model')})"
        )
    if unseen_parts:
        rule = (
            "argmax over thresholds 0.30-0.95 of the mean of two curves: the "
            + rule.removeprefix("argmax of ")
            + ", and "
            + (
                unseen_parts[0]
                if len(unseen_parts) == 1
                else "the mean of " + ", ".join(unseen_parts[:-1]) + " and " + unseen_parts[-1]
            )
        )
    report = {
        "model": str(args.model),
        "unseen_model": args.unseen_model,
        "unseen_smirnov_model": args.unseen_smirnov_model,
        "unseen_yolo11_model": args.unseen_yolo11_model,
        "unseen_curves": args.unseen_curves,
        "images": {
            "smirnov-train": len(smirnov),
            "findspines-train": len(findspines),
            "generator": 4,
            "unseen-findspines-train": len(unseen_fields) if args.unseen_model else 0,
            "unseen-smirnov-train": len(unseen_crops) if args.unseen_smirnov_model else 0,
            "unseen-yolo11-train": len(unseen_outlined),
        },
        "rule": rule,
        "test_time_flips": args.flips,
        "chosen": chosen,
        "f1_by_threshold": sweep,
    }
    if earlier is not None:  # the image counts behind the borrowed curves
        for name in unseen_names:
            report["images"][name] = report["images"].get(name) or earlier["images"].get(name, 0)
    atomic_write_text(Path(args.json), json.dumps(report, indent=1))
    print(f"chosen threshold {chosen} ({key} F1 {sweep[str(chosen)][key]:.3f})")
    if args.write_card:
        card_path = Path(args.model) / "card.json"
        card = json.loads(card_path.read_text())
        card.setdefault("inference", {})["spine_score_threshold"] = chosen
        card.setdefault("provenance", {})["spine_score_threshold_choice"] = (
            f"{rule}; scripts/calibrate_threshold.py"
        )
        atomic_write_text(card_path, json.dumps(card, indent=1, sort_keys=True))
        print(f"written into {card_path}")


if __name__ == "__main__":
    main()
