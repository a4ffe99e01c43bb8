"""Crops per second of ``dendrite-panoptic train`` on this machine, one training change at a time.

Each row trains the bundled model (``--which``: the spine network, the dendrite network or both)
on batches of 4 crops of 256² for ``--steps`` steps in a fresh process, with the loader plan
``train`` picks by itself (two batch workers on the CPU), and prints the crops per second after
``--skip`` warm-up steps and the share of the time spent waiting for batches. The rows add the
candidate changes one by one:

- ``v0.5 loop``: torchvision's region sampling (256 regions per crop for the box and mask heads,
  2000 proposals kept before and after NMS), float32;
- ``+ regions by spine count``: 4 regions per annotated spine (32-256) and 1000/500 proposals;
- ``+ bfloat16``: autocast to bfloat16 (on CPUs with AVX512-BF16 or AMX);
- ``+ channels-last``: the networks and batches in channels-last memory format;
- ``+ RoIAlign as a gather``: the box and mask heads' RoIAlign computed as one weighted gather
  per pyramid level while training on the CPU (``models/roi_align.py``) instead of
  torchvision's kernel, whose backward pass is a single-threaded loop (on ``+ bfloat16``);
- ``+ stem and first stage kept``: ``--layers upper``, no backward pass through each network's
  stem and first ResNet stage (an option of ``train``, not its default);
- ``float32: the loop of today``: the loop ``train`` runs on a CPU without native bfloat16
  (most laptops, AVX2 only: regions by spine count, RoIAlign as a gather), and that loop with
  ``--layers upper`` or in channels-last memory format.

The mix is generator 0.35, YOLO11 0.2, FindSpines 0.25, Smirnov 0.2 (the generator alone when
``$DENDRITE_PANOPTIC_DATA`` lacks the real sets); ``--mix`` times another (the teaching check
keeps this one).

``--teach N`` also checks that the faster loop teaches as much per crop: it fine-tunes the
bundled model on the same N crops (same seed, same learning rate) with the v0.5 loop and with
the loop ``train`` uses now (or the ``--teach-rows`` given), and scores each on held-out
generated planes (seeds never trained on) and, when the data are there, on the FindSpines
validation groups.

    python benchmarks/bench_training_steps.py --which both --steps 40
    python benchmarks/bench_training_steps.py --which both --steps 40 \
        --mix generator:0.3,generator3d:0.4,yolo11:0.3
    python benchmarks/bench_training_steps.py --which both --steps 0 --teach 800
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

MIX = "generator:0.35,yolo11:0.2,findspines:0.25,smirnov:0.2"
TV = {"roi_align": "torchvision"}
ROWS = {
    "v0.5 loop": {"regions": "torchvision", "precision": "float32", **TV},
    "+ regions by spine count": {"regions": "spines", "precision": "float32", **TV},
    "+ bfloat16": {"regions": "spines", "precision": "bfloat16", **TV},
    "+ channels-last": {"regions": "spines", "precision": "bfloat16", "channels_last": True, **TV},
    "+ RoIAlign as a gather": {"regions": "spines", "precision": "bfloat16"},
    "+ stem and first stage kept": {
        "regions": "spines",
        "precision": "bfloat16",
        "layers": "upper",
    },
    "float32: the loop of today": {
        "regions": "spines",
        "precision": "float32",
    },
    "float32: + stem and first stage kept": {
        "regions": "spines",
        "precision": "float32",
        "layers": "upper",
    },
    "float32: + channels-last": {
        "regions": "spines",
        "precision": "float32",
        "channels_last": True,
    },
}
NOW = "+ RoIAlign as a gather"
"""The row ``train`` runs today (the changes kept)."""


def _configure(row: dict) -> None:
    """Put the model builders back to torchvision's region sampling or RoIAlign for a "before"
    row (the builders read these module attributes when a spine network is built or trained)."""
    from torchvision.ops import MultiScaleRoIAlign

    from napari_dendrite_panoptic.models import builders

    if row.get("roi_align") == "torchvision":
        builders.CpuRoIAlign = MultiScaleRoIAlign
    if row.get("regions") == "torchvision":
        builders.RPN_TRAIN_TOP_N = (2000, 2000)
        builders.regions_for = lambda spines: builders.MAX_REGIONS
    if row.get("channels_last"):
        import torch

        convert = builders.build_spine_model, builders.build_dendrite_model

        def channels_last(build):
            return lambda *a, **k: build(*a, **k).to(memory_format=torch.channels_last)

        builders.build_spine_model, builders.build_dendrite_model = map(channels_last, convert)


def _source(mix: str = MIX):
    from napari_dendrite_panoptic.data import training_source
    from napari_dendrite_panoptic.errors import DendritePanopticError

    try:
        return training_source(mix, 256, 0.08, planes=3)
    except DendritePanopticError:
        return training_source("generator:1", 256, 0.08, planes=3)


def _config(
    tmp: str,
    row: dict,
    steps: int,
    which: str,
    lr: float,
    workers: int | None,
    threads: int | None = None,
):
    from napari_dendrite_panoptic.models import bundled_model_dir
    from napari_dendrite_panoptic.training import TrainConfig, loader_plan

    plan = loader_plan(workers, threads, False, os.cpu_count() or 1, which)
    return TrainConfig(
        work_dir=str(Path(tmp) / "work"),
        output_model=str(Path(tmp) / "model"),
        steps=steps,
        batch_size=4,
        lr=lr,
        warmup_steps=min(10, steps // 5),
        which=which,
        base_model=str(bundled_model_dir()),
        checkpoint_every=10 * steps,
        validate_images=0,
        device="cpu",
        workers=plan[0],
        threads=plan[1],
        seed=5,
        precision=row["precision"],
        layers=row.get("layers", "all"),
    )


def time_row(
    name: str,
    steps: int,
    skip: int,
    which: str,
    workers: int | None,
    threads: int | None,
    mix: str = MIX,
) -> dict[str, float]:
    """Train ``steps`` steps with row ``name``'s changes in this process; crops per second
    after ``skip`` steps and the share of time spent waiting for batches."""
    from napari_dendrite_panoptic.training import iter_fit

    row = ROWS[name]
    _configure(row)
    source, _ = _source(mix)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(tmp, row, steps, which, 2e-5, workers, threads)
        times, wait = {}, 0.0
        for event in iter_fit(cfg, source=source, resume=False):
            if event.kind == "step":
                times[event.step], wait = event.elapsed_s, event.data_wait_fraction
    last = max(times)
    per_step = (times[last] - times[skip]) / (last - skip)
    return {"crops_per_s": cfg.batch_size / per_step, "data_wait": wait}


def teach_row(name: str, crops: int, which: str) -> dict[str, float]:
    """Fine-tune the bundled model on ``crops`` crops with row ``name``'s loop; held-out scores."""
    from napari_dendrite_panoptic.evaluation import evaluate_generator
    from napari_dendrite_panoptic.models import load_models
    from napari_dendrite_panoptic.training import iter_fit

    row = ROWS[name]
    _configure(row)
    source, _ = _source()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(tmp, row, crops // 4, which, 2e-4, 0)
        for _ in iter_fit(cfg, source=source, resume=False):
            pass
        models = load_models(cfg.output_model, device="cpu")
        scores = evaluate_generator(models, 8)
        out = {
            "generated spine F1@0.5": scores["spine_f1_iou50"],
            "generated PQ": scores["spine_pq"],
            "generated dendrite IoU": scores["dendrite_iou"],
        }
        out.update(_findspines(models))
    return out


def _findspines(models) -> dict[str, float]:
    """Spine F1 on the FindSpines validation groups at the card's threshold (none without data)."""
    from napari_dendrite_panoptic.data import real
    from napari_dendrite_panoptic.errors import DataNotFoundError
    from napari_dendrite_panoptic.evaluation import evaluate_points
    from napari_dendrite_panoptic.inference import InferenceConfig

    try:
        _, groups = real.findspines_split(real.load_findspines())
    except DataNotFoundError:
        return {}
    cfg = InferenceConfig(model=str(models.folder), device="cpu")
    return {"FindSpines val spine F1": evaluate_points(models, groups, cfg)["f1"]}


def _child(args: argparse.Namespace, row: str, mode: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--row", row, "--mode", mode, "--which", args.which]
    cmd += ["--steps", str(args.steps), "--skip", str(args.skip), "--teach", str(args.teach)]
    cmd += [f"--workers={args.workers}", f"--threads={args.threads}", f"--mix={args.mix}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per row (0: none)")
    parser.add_argument("--skip", type=int, default=8, help="warm-up steps not timed")
    parser.add_argument("--which", default="both", choices=["dendrites", "spines", "both"])
    parser.add_argument("--rows", default=",".join(ROWS), help="rows to run, comma-separated")
    parser.add_argument("--teach", type=int, default=0, help="crops of the teaching check")
    parser.add_argument(
        "--teach-rows",
        default=f"v0.5 loop,{NOW}",
        help="rows of the teaching check, comma-separated",
    )
    parser.add_argument("--workers", default="auto", help="batch workers (default: as train)")
    parser.add_argument("--threads", default="auto", help="torch threads (default: as train)")
    parser.add_argument("--mix", default=MIX, help="the data mix of the timed rows")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one child run
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        if args.mode == "teach":
            print(json.dumps(teach_row(args.row, args.teach, args.which)))
            return
        plan = (None if v == "auto" else int(v) for v in (args.workers, args.threads))
        print(json.dumps(time_row(args.row, args.steps, args.skip, args.which, *plan, args.mix)))
        return
    cpus = os.cpu_count()
    print(
        f"{platform.processor() or platform.machine()}, {cpus} CPUs; {args.which}; crops 256²; "
        f"mix {args.mix}; "
        f"workers {args.workers}, threads {args.threads}"
    )
    if args.steps:
        print("| change | crops/s | data wait |\n|---|---|---|")
        for name in args.rows.split(","):
            r = _child(args, name, "time")
            print(f"| {name} | {r['crops_per_s']:.2f} | {r['data_wait']:.0%} |", flush=True)
    if args.teach:
        rows = {name: _child(args, name, "teach") for name in args.teach_rows.split(",")}
        keys = list(next(iter(rows.values())))
        print(f"\nafter {args.teach} crops | " + " | ".join(keys))
        print("|---" * (len(keys) + 1) + "|")
        for name, scores in rows.items():
            print(f"| {name} | " + " | ".join(f"{scores[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
