"""How many seconds does one training step take on this CPU, by data-loader plan?

``dendrite-panoptic train`` draws its batches either in the training loop or in forked
data-loader workers (``--workers``), and gives torch ``--threads`` threads. On a small CPU the
two compete for the same cores. This runs the bundled model's training (``--which``: the
dendrite network, as in the CPU runs of docs/models.md, the spine network, or both) on batches
of 4 crops of 256² from the mix generator 0.3, generator3d 0.4, YOLO11 0.3 (YOLO11 is left out
when ``../shared/data`` is absent) for ``--steps`` steps under each plan, each in a fresh
process, and prints the seconds per step after ``--skip`` warm-up steps, with the share of the
time spent waiting for batches.

    python benchmarks/bench_training_steps.py --steps 60 [--which both]
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

PLANS = ((0, None), (0, 1), (1, 1), (1, None))
"""(workers, threads) pairs; None threads is torch's default (all cores)."""

MIX = "generator:0.3,generator3d:0.4,yolo11:0.3"


def one_plan(
    workers: int, threads: int | None, steps: int, skip: int, which: str = "dendrites"
) -> dict[str, float]:
    """Train ``steps`` steps of ``which`` network(s) in this process; seconds per step after
    ``skip``."""
    from napari_dendrite_panoptic.data import training_source
    from napari_dendrite_panoptic.errors import DendritePanopticError
    from napari_dendrite_panoptic.models import bundled_model_dir
    from napari_dendrite_panoptic.training import TrainConfig, iter_fit

    try:
        source, _ = training_source(MIX, 256, 0.08, planes=3)
    except DendritePanopticError:
        source, _ = training_source("generator:0.3,generator3d:0.4", 256, 0.08, planes=3)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            work_dir=str(Path(tmp) / "work"),
            output_model=str(Path(tmp) / "model"),
            steps=steps,
            batch_size=4,
            lr=2e-4,
            warmup_steps=10,
            which=which,
            base_model=str(bundled_model_dir()),
            checkpoint_every=10 * steps,
            validate_images=0,
            device="cpu",
            workers=workers,
            threads=threads,
            seed=5,
        )
        times: dict[int, float] = {}
        wait = 0.0
        for event in iter_fit(cfg, source=source, resume=False):
            if event.kind == "step":
                times[event.step] = event.elapsed_s
                wait = event.data_wait_fraction
    last = max(times)
    return {
        "s_per_step": (times[last] - times[skip]) / (last - skip),
        "data_wait": wait,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip", type=int, default=10, help="warm-up steps not timed")
    parser.add_argument("--which", default="dendrites", choices=["dendrites", "spines", "both"])
    parser.add_argument("--plan", help=argparse.SUPPRESS)  # "workers,threads": one child run
    args = parser.parse_args()
    if args.plan:
        workers, threads = (int(v) if v != "-" else None for v in args.plan.split(","))
        print(json.dumps(one_plan(workers, threads, args.steps, args.skip, args.which)))
        return
    cpus = os.cpu_count()
    print(f"{platform.processor() or platform.machine()}, {cpus} CPUs; {args.which}; mix {MIX}")
    print(f"{'workers':>7} {'threads':>8} {'s/step':>7} {'data wait':>9}")
    for workers, threads in PLANS:
        plan = f"{workers},{'-' if threads is None else threads}"
        child = [sys.executable, __file__, "--plan", plan, "--steps", str(args.steps)]
        child += ["--skip", str(args.skip), "--which", args.which]
        out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        shown = "default" if threads is None else str(threads)
        print(f"{workers:>7} {shown:>8} {row['s_per_step']:>7.2f} {row['data_wait']:>9.0%}")


if __name__ == "__main__":
    main()
