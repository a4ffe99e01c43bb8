"""How visible are the held-out generated spines, and which of them does a model find?

For each true spine of the held-out generator sets (`evaluate --generator` / `--generator-3d`
seeds and shapes), the photons it adds are known exactly: the generator's mean counts before
noise (``SyntheticSample.expected_counts``) with the spines' light, minus the same seed and
geometry rendered without it (``spine_brightness=0``). Its visibility is the peak of (added
photons) / (noise σ) over the voxels around it, σ = sqrt(expected photons + read noise²). The
model segments the noisy image as `evaluate` does; a spine counts as found when a prediction matches it at IoU ≥ 0.5 in 3D, and on the
footprint (each spine's union over z), and there at IoU ≥ 0.1 (found, however poorly
outlined). Prints recall per visibility bin.

    .venv/bin/python benchmarks/spine_visibility.py MODEL [--stacks 12] [--planes 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from napari_dendrite_panoptic.data import synthetic
from napari_dendrite_panoptic.evaluation import heldout as evaluation
from napari_dendrite_panoptic.evaluation import match_instances
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import load_models

BINS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, np.inf)
PAD_PX = 6


def _without_spines(seed: int, cfg: synthetic.SyntheticConfig) -> np.ndarray:
    """(Z, Y, X) float64 mean photon counts before noise of the image without the spines' light."""
    dark = dataclasses.replace(cfg, spine_brightness=0.0)
    return synthetic.generate(seed, dark).expected_counts.astype(np.float64)


def spine_rows(model: str, n: int, shape: tuple[int, int, int], seed0: int) -> list[dict]:
    """One row per true spine: peak visibility (σ), and found in 3D / on the footprint."""
    models = load_models(model, device="cpu")
    rng = np.random.default_rng(seed0)
    rows = []
    for i in range(n):
        seed = seed0 + i
        cfg = synthetic.random_config(rng, shape=shape)
        sample = synthetic.generate(seed, cfg)
        with_spines = sample.expected_counts.astype(np.float64)
        added = with_spines - _without_spines(seed, cfg)
        visibility = added / np.sqrt(np.clip(with_spines, 0, None) + cfg.read_noise**2)
        result = predict(sample.image, sample.voxel_size_um, InferenceConfig(device="cpu"), models)
        found_3d = {p[0] for p in match_instances(result.spines, sample.spines, 0.5)[1].pairs}
        footprints = (result.spines.max(axis=0)[None], sample.spines.max(axis=0)[None])
        found_fp = {p[0] for p in match_instances(*footprints, 0.5)[1].pairs}
        touched = {p[0] for p in match_instances(*footprints, 0.1)[1].pairs}
        for sid in np.unique(sample.spines[sample.spines > 0]):
            zz, yy, xx = np.nonzero(sample.spines == sid)
            outline = _footprint_outline(footprints[0][0], footprints[1][0], int(sid))
            box = (
                slice(max(zz.min() - 2, 0), zz.max() + 3),
                slice(max(yy.min() - PAD_PX, 0), yy.max() + PAD_PX + 1),
                slice(max(xx.min() - PAD_PX, 0), xx.max() + PAD_PX + 1),
            )
            rows.append(
                {
                    "seed": seed,
                    "id": int(sid),
                    "type": sample.spine_types.get(int(sid), ""),
                    "visibility": float(visibility[box].max()),
                    "found_3d": int(sid) in found_3d,
                    "found_footprint": int(sid) in found_fp,
                    "found_footprint_iou10": int(sid) in touched,
                    **outline,
                }
            )
        print(f"seed {seed}: {len(rows)} spines so far", flush=True)
    return rows


def _footprint_outline(pred: np.ndarray, truth: np.ndarray, sid: int) -> dict:
    """How the prediction overlapping most of true spine ``sid``'s footprint (Y, X) relates to it:
    its area over the truth's, how many predictions overlap the truth, how many truths it covers."""
    mine = truth == sid
    overlapping, counts = np.unique(pred[mine & (pred > 0)], return_counts=True)
    if not len(overlapping):
        return {"area_ratio": 0.0, "preds_on_truth": 0, "truths_under_pred": 0}
    best = pred == overlapping[np.argmax(counts)]
    under = np.unique(truth[best & (truth > 0)])
    return {
        "area_ratio": float(best.sum() / mine.sum()),
        "preds_on_truth": len(overlapping),
        "truths_under_pred": len(under),
    }


def outline_faults(rows: list[dict]) -> list[str]:
    """For the spines touched on their footprint (IoU ≥ 0.1) but not matched there (< 0.5):
    how often the overlapping prediction is too large, too small, merged or split."""
    poor = [r for r in rows if r["found_footprint_iou10"] and not r["found_footprint"]]
    if not poor:
        return []
    ratio = np.array([r["area_ratio"] for r in poor])
    counts = {
        "prediction > 1.5 × the spine's area": int((ratio > 1.5).sum()),
        "prediction < 0.67 × the spine's area": int((ratio < 0.67).sum()),
        "prediction covers other true spines too": sum(r["truths_under_pred"] > 1 for r in poor),
        "spine split over several predictions": sum(r["preds_on_truth"] > 1 for r in poor),
    }
    lines = [
        f"footprints touched but not matched: {len(poor)} spines, area ratio median "
        f"{np.median(ratio):.2f} (quartiles {np.percentile(ratio, 25):.2f}-"
        f"{np.percentile(ratio, 75):.2f})"
    ]
    lines += [f"  {name}: {n}" for name, n in counts.items()]
    return lines


def table(rows: list[dict]) -> list[str]:
    """Recall per visibility bin, as printed lines."""
    vis = np.array([r["visibility"] for r in rows])
    f3 = np.array([r["found_3d"] for r in rows], dtype=float)
    ff = np.array([r["found_footprint"] for r in rows], dtype=float)
    ft = np.array([r["found_footprint_iou10"] for r in rows], dtype=float)
    head = (
        "| peak visibility (σ) | spines | recall, IoU ≥ 0.5 in 3D | on footprints | at IoU ≥ 0.1 |"
    )
    lines = [head, "|---|---|---|---|---|"]
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        m = (vis >= lo) & (vis < hi)
        if m.any():
            name = f"≥ {lo:g}" if np.isinf(hi) else f"{lo:g}-{hi:g}"
            cells = f"{f3[m].mean():.2f} | {ff[m].mean():.2f} | {ft[m].mean():.2f}"
            lines.append(f"| {name} | {m.sum()} | {cells} |")
    lines.append(f"| all | {len(rows)} | {f3.mean():.3f} | {ff.mean():.3f} | {ft.mean():.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder")
    parser.add_argument("--stacks", type=int, default=12, help="images (seeds from --seed)")
    parser.add_argument("--planes", type=int, default=8, help="1 for the 2D set (256 × 256)")
    parser.add_argument(
        "--seed",
        type=int,
        help=f"default: {evaluation.HELD_OUT_3D_SEED} for stacks, {evaluation.HELD_OUT_2D_SEED} for 2D",
    )
    parser.add_argument("--json", help="also write the per-spine rows here")
    args = parser.parse_args()
    if args.planes > 1:
        shape = (args.planes, *evaluation.HELD_OUT_3D_SHAPE[1:])
        default_seed = evaluation.HELD_OUT_3D_SEED
    else:
        shape = evaluation.HELD_OUT_2D_SHAPE
        default_seed = evaluation.HELD_OUT_2D_SEED
    seed0 = args.seed if args.seed is not None else default_seed
    rows = spine_rows(args.model, args.stacks, shape, seed0)
    print("\n".join(table(rows) + outline_faults(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=0) + "\n")


if __name__ == "__main__":
    main()
