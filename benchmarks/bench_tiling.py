"""Speed and accuracy of inference settings, A/B in one process (so both see the same machine).

    .venv/bin/python benchmarks/bench_tiling.py [--runs 3] [--real] [--findspines N]

For each setting: seconds per 1024x1024 plane (median of ``--runs`` after a warm-up, runs of the
settings interleaved), and with ``--real`` the held-out scores of ``docs/models.md`` that tiling
can change (YOLO11 ``val`` spine F1 at IoU 0.25/0.5 and foreground IoU; FindSpines validation
fields spine F1; images larger than one tile), and the mean seconds per YOLO11 image (real
dendrites on a black background, 512² and 1024²). Settings:

- ``512 tiles, all boxes``: the pipeline before the change (tile_size 512, mask head on every box
  scoring ≥ 0.05);
- ``balanced ≤1024 tiles``: :func:`tiling.tile_layout`, limits scaled with the tile area,
  mask head only on boxes above the spine score threshold;
- ``… + skip tiles without dendrite``: the current default, no spine network on tiles whose
  dendrite probability stays under ``tile_passes.EMPTY_TILE_PROB``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from napari_dendrite_panoptic.data import synthetic
from napari_dendrite_panoptic.inference import InferenceConfig, predict, tile_passes
from napari_dendrite_panoptic.models import load_models


def _old_detector(model, tile_area, score_threshold):  # the behaviour before the change
    model.rpn._pre_nms_top_n["testing"] = 1000
    model.rpn._post_nms_top_n["testing"] = 400
    model.roi_heads.detections_per_img = 200
    model.roi_heads.score_thresh = 0.05


SETTINGS = {
    "512 tiles, all boxes": (InferenceConfig(device="cpu", tile_size=512), _old_detector, 0.0),
    "balanced ≤1024 tiles": (InferenceConfig(device="cpu"), tile_passes.configure_detector, 0.0),
    "… + skip tiles without dendrite": (
        InferenceConfig(device="cpu"),
        tile_passes.configure_detector,
        tile_passes.EMPTY_TILE_PROB,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--findspines", type=int, default=20, help="validation fields scored")
    args = parser.parse_args()
    models = load_models(None, "cpu")
    cfg0 = synthetic.SyntheticConfig(shape=(1, 1024, 1024), pixel_size_um=0.08, n_dendrites=3)
    image = synthetic.generate(0, cfg0).image
    original = tile_passes.configure_detector, tile_passes.EMPTY_TILE_PROB
    times: dict[str, list[float]] = {k: [] for k in SETTINGS}
    spines: dict[str, int] = {}
    try:
        for run in range(args.runs + 1):
            for name, (cfg, detector, empty) in SETTINGS.items():
                tile_passes.configure_detector, tile_passes.EMPTY_TILE_PROB = detector, empty
                t0 = time.perf_counter()
                result = predict(image, (1.0, 0.08, 0.08), cfg, models)
                if run:  # the first round is the warm-up
                    times[name].append(time.perf_counter() - t0)
                spines[name] = len(result.table["id"])
        scores: dict[str, dict[str, float]] = {}
        if args.real:
            from napari_dendrite_panoptic.data import real as rd
            from napari_dendrite_panoptic.evaluation.heldout import evaluate_masks, evaluate_points

            yolo = rd.load_yolo11("val")
            _, fs_val = rd.findspines_split(rd.load_findspines())
            fs_val = fs_val[: args.findspines]
            for name, (cfg, detector, empty) in SETTINGS.items():
                tile_passes.configure_detector, tile_passes.EMPTY_TILE_PROB = detector, empty
                t0 = time.perf_counter()
                masks = evaluate_masks(models, yolo, cfg)
                t_yolo = (time.perf_counter() - t0) / len(yolo)
                points = evaluate_points(models, fs_val, cfg)
                scores[name] = {
                    "s per YOLO11 image": t_yolo,
                    "yolo11 F1@0.25": masks["spine_f1_iou25"],
                    "yolo11 F1@0.5": masks["spine_f1_iou50"],
                    "yolo11 fg IoU": masks["foreground_iou"],
                    f"findspines F1 ({len(fs_val)})": points["f1"],
                }
    finally:
        tile_passes.configure_detector, tile_passes.EMPTY_TILE_PROB = original
    print(
        "| setting | s per 1024² plane | spines found |"
        + "".join(f" {k} |" for k in next(iter(scores.values()), {}))
    )
    print("|---|---|---|" + "---|" * len(next(iter(scores.values()), {})))
    for name in SETTINGS:
        row = f"| {name} | {statistics.median(times[name]):.2f} | {spines[name]} |"
        row += "".join(f" {v:.3f} |" for v in scores.get(name, {}).values())
        print(row)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
