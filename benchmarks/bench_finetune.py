"""Does fine-tuning on corrections help on a style the bundled model has never seen?

The correct-and-retrain loop, measured as the training dock runs it: the bundled model segments
generator images of an unseen style (much dimmer spines, thicker dendrites, a finer pixel size);
the ground truth of ``--train-images`` of them plays the user's correction; fine-tuning runs for
``--minutes`` on this machine's CPU with the dock's settings
(:func:`napari_dendrite_panoptic.corrections.fine_tune_config`); before and after, spine F1 at
IoU 0.5, spine PQ and dendrite IoU are measured on ``--test-images`` other images of that style
(other seeds). Prints one table.

    python benchmarks/bench_finetune.py --minutes 5
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from napari_dendrite_panoptic.data import correction_source, prepare_volume, synthetic
from napari_dendrite_panoptic.evaluation import match_instances, pixel_scores
from napari_dendrite_panoptic.evaluation.metrics import pool_instance_scores
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import bundled_model_dir, load_models
from napari_dendrite_panoptic.training import fine_tune_config, iter_fit

UNSEEN_STYLE = synthetic.SyntheticConfig(
    shape=(1, 320, 320),
    pixel_size_um=0.06,
    dendrite_radius_um=(1.1, 1.5),  # training draws 0.3-1.2 µm
    spine_brightness=0.2,  # training draws 0.35-1.5 of the dendrite's brightness
    spine_density_per_um=2.0,
    peak_photons=40.0,
    n_axons=2,
)
"""The style: outside the generator's training ranges in spine brightness and dendrite width."""


def style_sample(seed: int) -> synthetic.SyntheticSample:
    """One image of the unseen style (each seed its own morphology and noise)."""
    return synthetic.generate(seed, UNSEEN_STYLE)


def score(models, samples) -> dict[str, float]:
    """Pooled spine F1/PQ at IoU 0.5 and dendrite IoU of ``models`` on ``samples``."""
    parts, inter, union = [], 0, 0
    for s in samples:
        cfg = InferenceConfig(model=str(models.folder), device="cpu")
        result = predict(s.image, s.voxel_size_um, cfg, models=models)
        parts.append(match_instances(result.spines, s.spines, 0.5)[0])
        pix = pixel_scores(result.dendrite > 0, s.dendrite > 0)
        inter += pix.tp
        union += pix.tp + pix.fp + pix.fn
    pooled = pool_instance_scores(parts)
    return {"spine_f1": pooled.f1, "spine_pq": pooled.pq, "dendrite_iou": inter / max(union, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning time budget")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="fine-tune for this many steps instead of --minutes (the same run however busy "
        "the machine is, for comparing settings)",
    )
    parser.add_argument(
        "--freeze-norm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the base model's BatchNorm statistics (default: as the dock does)",
    )
    parser.add_argument("--train-images", type=int, default=2, help="corrected images")
    parser.add_argument("--test-images", type=int, default=6, help="other images scored")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning batches")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = load_models(None, "cpu")
    train = [style_sample(100 + i) for i in range(args.train_images)]
    test = [style_sample(200 + i) for i in range(args.test_images)]
    before = score(base, test)
    volumes = [
        prepare_volume(f"corrected-{i}", s.image, s.dendrite, s.spines, s.voxel_size_um[1])[0]
        for i, s in enumerate(train)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "finetuned"
        cfg = fine_tune_config(
            str(bundled_model_dir()),
            out,
            volumes,
            base.card.pixel_size_um,
            lr=args.lr,
            minutes=args.minutes,
            name="bench-finetune",
        )
        cfg = replace(cfg, threads=args.threads, seed=args.seed)
        if args.freeze_norm is not None:
            cfg = replace(cfg, freeze_norm=args.freeze_norm)
        if args.steps:
            cfg = replace(cfg, steps=args.steps, max_seconds=None)
        t0 = time.perf_counter()
        events = list(iter_fit(cfg, source=correction_source(volumes, cfg.crop_size, 0.08)))
        train_s = time.perf_counter() - t0
        steps = events[-1].step
        after = score(load_models(out, "cpu"), test)

    print(
        f"# bench_finetune: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(
        f"# style: spine brightness {UNSEEN_STYLE.spine_brightness}, dendrite radius "
        f"{UNSEEN_STYLE.dendrite_radius_um} µm, pixel {UNSEEN_STYLE.pixel_size_um} µm; "
        f"{args.train_images} corrected image(s), {args.test_images} test image(s)"
    )
    print(
        f"# fine-tuning: {steps} steps in {train_s:.0f} s ("
        + (f"asked {args.steps}" if args.steps else f"budget {args.minutes:g} min")
        + f"), lr {args.lr:g}, batch {cfg.batch_size} × {cfg.crop_size}², BatchNorm "
        + ("frozen" if cfg.freeze_norm else "trained")
    )
    print(f"{'metric':<14}{'bundled':>10}{'fine-tuned':>12}{'change':>10}")
    for key in ("spine_f1", "spine_pq", "dendrite_iou"):
        b, a = before[key], after[key]
        print(f"{key:<14}{b:>10.3f}{a:>12.3f}{a - b:>+10.3f}")
    gain = after["spine_f1"] - before["spine_f1"]
    print(
        f"# target: spine F1 gain >= 0.15 -> {'met' if gain >= 0.15 else 'NOT met'} ({gain:+.3f})"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
