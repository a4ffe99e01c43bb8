"""Where spine detection in stacks goes wrong: in the plane (x, y) or in depth (z).

    .venv/bin/python benchmarks/diagnose_3d.py MODEL_FOLDER [MODEL_FOLDER ...] [--stacks 6]
        [--focus-fraction 0.9] [--score-threshold T] [--link-iou 0.2] [--json OUT.json]

Segments generated stacks of 8x192x192 voxels drawn with seeds 40000, 40001, ... (tuning seeds:
``evaluate --generator-3d`` scores seeds 20000 onwards, training draws other seeds) and prints
one table per model:

- spine F1 at IoU 0.5 in 3D (what ``evaluate`` reports) and on footprints (each spine's union
  over z; overlapping footprints keep the larger spine), so the gap between the two rows is
  what depth costs;
- for true spines whose footprint a prediction matches (IoU >= 0.5 between the footprints as
  drawn for the row above): the share that also reach 3D IoU >= 0.5, the planes of each
  (mean), the share whose planes agree exactly, the z-Jaccard of their plane sets, and the mean
  pixels per plane of each (a predicted mask larger than the true cross-section lowers IoU even
  on the right planes).

Two more rows bound what post-processing in depth could gain: the 3D F1 when every prediction
whose footprint matches a true spine is moved onto exactly that spine's planes (keeping its own
mask in each plane it has, its footprint in the others: "right planes"), and when it also takes
the true spine's mask in each plane ("right planes and masks", which equals the footprint F1
up to spines whose footprints overlap).

Each stack's pixel size, z step, true and predicted spine counts and both F1s are listed too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_dendrite_panoptic.core import atomic_write_text
from napari_dendrite_panoptic.data import synthetic
from napari_dendrite_panoptic.evaluation import heldout as evaluation
from napari_dendrite_panoptic.evaluation import match_instances
from napari_dendrite_panoptic.evaluation.metrics import iou_matrix, pool_instance_scores
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import load_models

SEED = evaluation.TUNING_3D_SEED
SHAPE = evaluation.HELD_OUT_3D_SHAPE


def footprints(labels: np.ndarray) -> np.ndarray:
    """(Z, Y, X) spine ids → (Y, X) int32: each spine's union over z, larger spines first."""
    out = np.zeros(labels.shape[1:], dtype=np.int32)
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    for k in ids[np.argsort(-sizes)]:
        out[(labels == k).any(0) & (out == 0)] = k
    return out


def footprint_matches(pred: np.ndarray, truth: np.ndarray) -> list[tuple[int, int]]:
    """(true id, predicted id) for each true spine and the prediction with the best footprint
    IoU (on :func:`footprints`), when that is >= 0.5."""
    foot_iou, foot_t, foot_p = iou_matrix(footprints(pred), footprints(truth))
    if not foot_p.size:
        return []
    best = foot_iou.argmax(1)
    return [
        (int(t), int(foot_p[best[row]]))
        for row, t in enumerate(foot_t)
        if foot_iou[row, best[row]] >= 0.5
    ]


def depth_pairs(pred: np.ndarray, truth: np.ndarray) -> list[dict[str, float]]:
    """For each pair of :func:`footprint_matches`: their 3D IoU, planes and pixels per plane."""
    vol_iou, vol_t, vol_p = iou_matrix(pred, truth)
    pairs = []
    for t, p in footprint_matches(pred, truth):
        t_mask, p_mask = truth == t, pred == p
        tz = set(np.flatnonzero(t_mask.any((1, 2))).tolist())
        pz = set(np.flatnonzero(p_mask.any((1, 2))).tolist())
        pairs.append(
            {
                "iou_3d": float(vol_iou[np.searchsorted(vol_t, t), np.searchsorted(vol_p, p)]),
                "z_jaccard": len(tz & pz) / len(tz | pz),
                "truth_planes": len(tz),
                "pred_planes": len(pz),
                "truth_px_per_plane": float(t_mask.sum() / len(tz)),
                "pred_px_per_plane": float(p_mask.sum() / len(pz)),
            }
        )
    return pairs


def with_true_depth(pred: np.ndarray, truth: np.ndarray, true_masks: bool) -> np.ndarray:
    """``pred`` (Z, Y, X) with each prediction whose footprint matches a true spine's (IoU >=
    0.5) moved onto that spine's planes: in each of them it keeps its own mask, or its footprint
    where it has none, or (``true_masks``) takes the true spine's mask."""
    out = pred.copy()
    for t, p in footprint_matches(pred, truth):
        t_mask, p_mask = truth == t, pred == p
        footprint = p_mask.any(0)
        out[p_mask] = 0
        for z in np.flatnonzero(t_mask.any((1, 2))):
            source = t_mask[z] if true_masks else (p_mask[z] if p_mask[z].any() else footprint)
            out[z][source & (out[z] == 0)] = p
    return out


def diagnose(
    model: str,
    n_stacks: int,
    focus_fraction: float,
    score_threshold: float | None = None,
    link_iou: float = 0.2,
) -> dict:
    """Scores and depth statistics of one model on ``n_stacks`` tuning stacks."""
    models = load_models(model, "cpu")
    cfg = InferenceConfig(
        spine_focus_fraction=focus_fraction,
        spine_score_threshold=score_threshold,
        link_iou=link_iou,
    )
    rng = np.random.default_rng(SEED)
    in_3d, on_foot, pairs, stacks = [], [], [], []
    right_planes, right_masks = [], []
    for i in range(n_stacks):
        sample = synthetic.generate(SEED + i, synthetic.random_config(rng, shape=SHAPE))
        result = predict(sample.image, sample.voxel_size_um, cfg, models=models)
        in_3d.append(match_instances(result.spines, sample.spines, 0.5)[0])
        on_foot.append(
            match_instances(footprints(result.spines), footprints(sample.spines), 0.5)[0]
        )
        pairs += depth_pairs(result.spines, sample.spines)
        for parts, true_masks in ((right_planes, False), (right_masks, True)):
            moved = with_true_depth(result.spines, sample.spines, true_masks)
            parts.append(match_instances(moved, sample.spines, 0.5)[0])
        stacks.append(
            {
                "seed": SEED + i,
                "z_step_um": round(float(sample.voxel_size_um[0]), 3),
                "pixel_um": round(float(sample.voxel_size_um[1]), 3),
                "true_spines": int(len(np.unique(sample.spines)) - 1),
                "predicted_spines": int(len(np.unique(result.spines)) - 1),
                "f1_3d": round(in_3d[-1].f1, 3),
                "f1_footprint": round(on_foot[-1].f1, 3),
            }
        )
    out = {
        "model": model,
        "stacks": stacks,
        "focus_fraction": focus_fraction,
        "score_threshold": score_threshold,  # None: the card's
        "link_iou": link_iou,
    }
    rows = (
        ("3d", in_3d),
        ("footprint", on_foot),
        ("3d_right_planes", right_planes),
        ("3d_right_planes_and_masks", right_masks),
    )
    for name, parts in rows:
        s = pool_instance_scores(parts)
        out[name] = {"f1": s.f1, "precision": s.precision, "recall": s.recall, "pq": s.pq}
    if pairs:
        mean = {k: float(np.mean([p[k] for p in pairs])) for k in pairs[0]}
        mean["pairs"] = len(pairs)
        mean["share_iou_3d_050"] = float(np.mean([p["iou_3d"] >= 0.5 for p in pairs]))
        mean["share_same_planes"] = float(np.mean([p["z_jaccard"] == 1 for p in pairs]))
        out["footprint_matches"] = mean
    return out


def print_report(r: dict) -> None:
    threshold = r["score_threshold"] or "the card's"
    print(
        f"\n{r['model']} (focus fraction {r['focus_fraction']}, score threshold {threshold}, "
        f"link IoU {r['link_iou']})"
    )
    print("seed   z µm  px µm  true  pred  F1 3D  F1 footprint")
    for s in r["stacks"]:
        print(
            f"{s['seed']}  {s['z_step_um']:.2f}  {s['pixel_um']:.3f}  {s['true_spines']:4d}  "
            f"{s['predicted_spines']:4d}  {s['f1_3d']:.3f}  {s['f1_footprint']:.3f}"
        )
    for name in ("3d", "footprint", "3d_right_planes", "3d_right_planes_and_masks"):
        s = r[name]
        print(
            f"{name:25s}: F1 {s['f1']:.3f}  P {s['precision']:.3f}  R {s['recall']:.3f}  "
            f"PQ {s['pq']:.3f}"
        )
    m = r.get("footprint_matches")
    if m:
        print(
            f"{m['pairs']} footprint matches: 3D IoU >= 0.5 for {m['share_iou_3d_050']:.2f}, "
            f"same planes for {m['share_same_planes']:.2f}, z-Jaccard {m['z_jaccard']:.2f}, "
            f"planes true {m['truth_planes']:.2f} / predicted {m['pred_planes']:.2f}, "
            f"px per plane true {m['truth_px_per_plane']:.1f} / "
            f"predicted {m['pred_px_per_plane']:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model folders")
    parser.add_argument("--stacks", type=int, default=6)
    parser.add_argument("--focus-fraction", type=float, default=0.9)
    parser.add_argument("--score-threshold", type=float, help="default: the model card's")
    parser.add_argument("--link-iou", type=float, default=0.2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reports = [
        diagnose(m, args.stacks, args.focus_fraction, args.score_threshold, args.link_iou)
        for m in args.models
    ]
    for r in reports:
        print_report(r)
    if args.json:
        atomic_write_text(args.json, json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
