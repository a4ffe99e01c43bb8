"""Does the spine score rank real spines above the false ones?

For each centre-annotated held-out split (Smirnov ``test``, the FindSpines validation groups)
the model segments every image once at score 0.30; its spines are then kept by score. Printed
per split:

- true and false spines per score band (matched to the clicks as ``dendrite-panoptic evaluate
  --real`` does: centroid within the item's radius, Hungarian matching per image);
- spine F1 at the card's threshold, and the best F1 over thresholds 0.30-0.95 with the
  threshold chosen by looking at the answers: no threshold rule can do better with this score;
- the same best F1 for the score times the square root of the spine's mask confidence (the mean
  mask probability over its pasted pixels), a rescoring that ranks better on COCO-style data
  when the class score alone is overconfident;
- where the false spines at the card's threshold lie: distance to the nearest click in match
  radii, and to the predicted dendrite in µm (the same for the true ones).

    PYTHONPATH=src python benchmarks/score_ranking.py --json docs/results/score_ranking_v08.json

Needs ``../shared/data`` (or ``$DENDRITE_PANOPTIC_DATA``); about a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from napari_dendrite_panoptic.core import atomic_path
from napari_dendrite_panoptic.data import real as rd
from napari_dendrite_panoptic.evaluation.heldout import point_counts
from napari_dendrite_panoptic.evaluation.metrics import match_points
from napari_dendrite_panoptic.inference import InferenceConfig, predict, tile_passes
from napari_dendrite_panoptic.models import load_models

FLOOR = 0.30
THRESHOLDS = [round(t, 3) for t in np.arange(FLOOR, 0.9501, 0.025)]
BANDS = [round(t, 2) for t in np.arange(FLOOR, 1.0001, 0.1)]


@contextlib.contextmanager
def mask_confidences() -> Iterator[dict[float, float]]:
    """While open, record each pasted detection's mask confidence (mean mask probability over
    the pixels at or above the mask threshold), keyed by its score rounded to 7 digits."""
    seen: dict[float, float] = {}
    original = tile_passes._paste_instances

    def paste(labels, scores, detections, mask_threshold, min_px):
        for _, score, mask in detections:
            inside = mask >= mask_threshold
            seen[round(float(score), 7)] = float(mask[inside].mean()) if inside.any() else 0.0
        return original(labels, scores, detections, mask_threshold, min_px)

    tile_passes._paste_instances = paste
    try:
        yield seen
    finally:
        tile_passes._paste_instances = original


def spines_of(models, items) -> list[dict[str, Any]]:
    """Per image: each predicted spine's centroid (px), score, mask confidence and distance to
    the predicted dendrite (µm), with the item (its clicks and match radius)."""
    cfg = replace(InferenceConfig(spine_score_threshold=FLOOR), pixel_size_um=None)
    rows = []
    with mask_confidences() as seen:
        for item in items:
            px = float(item.pixel_size_um)
            seen.clear()
            result = predict(item.image, (1.0, px, px), cfg, models=models)
            table, dendrite = result.table, np.asarray(result.dendrite).reshape(item.image.shape)
            far = ndi.distance_transform_edt(dendrite == 0) * px if dendrite.any() else None
            yx = np.stack([table["centroid_y_px"], table["centroid_x_px"]], axis=1).reshape(-1, 2)
            at = np.clip(np.round(yx).astype(int), 0, np.array(dendrite.shape) - 1)
            rows.append(
                {
                    "yx": yx,
                    "score": np.asarray(table["score"], dtype=float),
                    "mask": np.array(
                        [seen.get(round(float(s), 7), np.nan) for s in table["score"]]
                    ),
                    "dendrite_um": far[at[:, 0], at[:, 1]]
                    if far is not None
                    else np.full(len(yx), np.inf),
                    "item": item,
                }
            )
    return rows


def matched(row: dict[str, Any], keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the kept spines of one image: which match a click (bool per kept spine), and each kept
    spine's distance to its nearest click in match radii."""
    yx = row["yx"][keep]
    clicks = np.asarray(row["item"].centres_px, dtype=float).reshape(-1, 2)
    radius = float(row["item"].match_radius_px)
    _, pairs = match_points(yx, clicks, radius)
    hit = np.zeros(len(yx), dtype=bool)
    hit[[p for _, p, _ in pairs]] = True
    if len(clicks) and len(yx):
        d = np.linalg.norm(yx[:, None] - clicks[None], axis=-1).min(1) / radius
    else:
        d = np.full(len(yx), np.inf)
    return hit, d


RANKS = {
    "score": lambda row: row["score"],
    "score x sqrt(mask confidence)": lambda row: row["score"] * np.sqrt(np.nan_to_num(row["mask"])),
}


def f1_curve(rows, rank: str, thresholds) -> list[float]:
    """Spine F1 pooled over images at each threshold, spines kept by the ranking
    ``RANKS[rank]`` and matched as ``evaluate --real`` matches them (``point_counts``)."""
    counts = np.zeros((len(thresholds), 3))
    for row in rows:
        yx = row["yx"]
        table = {"centroid_y_px": yx[:, 0], "centroid_x_px": yx[:, 1], "score": RANKS[rank](row)}
        counts += point_counts(table, row["item"], thresholds)
    return [float(2 * tp / max(2 * tp + fp + fn, 1)) for tp, fp, fn in counts]


def summary(rows, threshold: float) -> dict[str, Any]:
    """Bands, curves and where the spines at ``threshold`` lie, for one split's rows."""
    true_bands, false_bands = np.zeros(len(BANDS) - 1, int), np.zeros(len(BANDS) - 1, int)
    where: dict[str, list[np.ndarray]] = {"true": [], "false": [], "false_click": []}
    for row in rows:
        hit, _ = matched(row, np.ones(len(row["yx"]), dtype=bool))
        true_bands += np.histogram(row["score"][hit], BANDS)[0]
        false_bands += np.histogram(row["score"][~hit], BANDS)[0]
        keep = row["score"] >= threshold
        hit, click = matched(row, keep)
        where["true"].append(row["dendrite_um"][keep][hit])
        where["false"].append(row["dendrite_um"][keep][~hit])
        where["false_click"].append(click[~hit])
    out: dict[str, Any] = {
        "bands": BANDS,
        "true": true_bands.tolist(),
        "false": false_bands.tolist(),
    }
    for rank in RANKS:
        curve = f1_curve(rows, rank, THRESHOLDS)
        best = int(np.argmax(curve))
        out[rank] = {"curve": curve, "best_f1": curve[best], "best_threshold": THRESHOLDS[best]}
    out["f1_at_card"] = f1_curve(rows, "score", [threshold])[0]
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in where.items()}
    out["false_click_radii_quartiles"] = np.percentile(cat["false_click"], [25, 50, 75]).tolist()
    for k in ("true", "false"):
        out[f"{k}_over_2um_from_dendrite"] = float((cat[k] > 2).mean()) if len(cat[k]) else 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the bundled one)")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    models = load_models(args.model, device="cpu")
    threshold = models.card.threshold("spine_score_threshold")
    splits = {
        "smirnov test": rd.load_smirnov("test"),
        "findspines validation groups": rd.findspines_split(rd.load_findspines())[1],
    }
    report: dict[str, Any] = {"model": models.card.version, "card_threshold": threshold}
    for name, items in splits.items():
        s = summary(spines_of(models, items), threshold)
        report[name] = s
        print(f"== {name} (v{models.card.version}, card threshold {threshold})")
        print("   score band      " + " ".join(f"{b:>5.1f}" for b in BANDS[:-1]))
        print("   true spines     " + " ".join(f"{n:>5d}" for n in s["true"]))
        print("   false spines    " + " ".join(f"{n:>5d}" for n in s["false"]))
        print(f"   F1 at the card's threshold          {s['f1_at_card']:.3f}")
        for rank in RANKS:
            print(
                f"   best F1, {rank:<29s} {s[rank]['best_f1']:.3f} at {s[rank]['best_threshold']}"
            )
        q = ", ".join(f"{v:.1f}" for v in s["false_click_radii_quartiles"])
        print(f"   false spines: nearest click at {q} match radii (quartiles)")
        print(
            f"   more than 2 µm from the predicted dendrite: true {s['true_over_2um_from_dendrite']:.2f}, "
            f"false {s['false_over_2um_from_dendrite']:.2f}"
        )
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
