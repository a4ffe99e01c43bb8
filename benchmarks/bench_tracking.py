"""Benchmark of spine tracking over sessions (docs/tracking.md): id accuracy and gained/lost F1 on
generated series (held-out seeds) with the true spines and with the bundled model's spines, the
registration error against the known deformation, and the time to track a pair of 30 x 1024 x
1024 stacks (segmentation not counted).

    python benchmarks/bench_tracking.py [--series 10] [--model-series 3] [--no-large]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_dendrite_panoptic.core import ratio
from napari_dendrite_panoptic.data.synthetic import SeriesConfig, generate_series
from napari_dendrite_panoptic.tracking import (
    Session,
    registration_error_um,
    score_tracking,
    track,
)

SEED0 = 9000  # held out: the tests use seeds below 10
SHAPE = (12, 256, 256)


def _pool(scores):
    tp = sum(s["events_tp"] for s in scores)
    fp = sum(s["events_fp"] for s in scores)
    fn = sum(s["events_fn"] for s in scores)
    return ratio(2 * tp, 2 * tp + fp + fn), tp, fp, fn


def _true_spines(n_series: int):
    scores, errors, pairs = [], [], 0
    for k in range(n_series):
        series = generate_series(SEED0 + k, SeriesConfig(shape=SHAPE, n_sessions=3))
        sessions = [
            Session(s.dendrite, s.spines, s.voxel_size_um, image=s.image, day=s.day)
            for s in series.sessions
        ]
        result = track(sessions)
        scores.append(score_tracking(result, [s.spines for s in series.sessions]))
        truths = [s.truth for s in series.sessions]
        errors.append(registration_error_um(result, series.base_um, truths))
        pairs += len(sessions) - 1
    return scores, np.concatenate(errors), pairs


def _model_spines(n_series: int):
    from napari_dendrite_panoptic.inference import InferenceConfig, predict
    from napari_dendrite_panoptic.models import load_models

    models = load_models(None, "cpu")
    cfg = InferenceConfig(device="cpu")
    scores, pairs = [], 0
    for k in range(n_series):
        series = generate_series(SEED0 + 500 + k, SeriesConfig(shape=SHAPE, n_sessions=3))
        sessions = []
        for s in series.sessions:
            r = predict(s.image, s.voxel_size_um, cfg, models=models)
            table = r.table
            scores_by_id = {
                int(i): float(v) for i, v in zip(table["id"], table["score"], strict=True)
            }
            sessions.append(
                Session(
                    r.dendrite,
                    r.spines,
                    s.voxel_size_um,
                    image=s.image,
                    day=s.day,
                    scores=scores_by_id,
                )
            )
        result = track(sessions)
        scores.append(score_tracking(result, [s.spines for s in series.sessions]))
        pairs += len(sessions) - 1
    return scores, pairs


def _large_pair() -> float:
    cfg = SeriesConfig(shape=(30, 1024, 1024), n_sessions=2, n_dendrites=2)
    series = generate_series(SEED0 + 999, cfg)
    sessions = [
        Session(s.dendrite, s.spines, s.voxel_size_um, image=s.image, day=s.day)
        for s in series.sessions
    ]
    t0 = time.perf_counter()
    track(sessions)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=10, help="series of 3 sessions, true spines")
    ap.add_argument("--model-series", type=int, default=3, help="series with the model's spines")
    ap.add_argument("--no-large", action="store_true", help="skip the 30 x 1024^2 timing")
    args = ap.parse_args()
    rows = []
    scores, errors, pairs = _true_spines(args.series)
    acc = float(np.mean([s["id_accuracy"] for s in scores]))
    f1, tp, fp, fn = _pool(scores)
    rows.append(("id accuracy, true spines", f"{acc:.3f}", ">= 0.97", f"{pairs} pairs"))
    rows.append(("gained/lost F1, true spines", f"{f1:.3f}", ">= 0.95", f"TP {tp} FP {fp} FN {fn}"))
    rows.append(
        (
            "registration error, median (µm)",
            f"{np.median(errors):.3f}",
            "<= 0.3",
            f"{len(errors)} points, 90th pct {np.percentile(errors, 90):.2f}",
        )
    )
    if args.model_series:
        mscores, mpairs = _model_spines(args.model_series)
        f1, tp, fp, fn = _pool(mscores)
        rows.append(
            (
                "gained/lost F1, model spines",
                f"{f1:.3f}",
                ">= 0.80",
                f"{mpairs} pairs, TP {tp} FP {fp} FN {fn}",
            )
        )
    if not args.no_large:
        rows.append(
            ("track a 30x1024² pair (s)", f"{_large_pair():.1f}", "<= 30", "without segmentation")
        )
    print("| measure | value | target | note |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
