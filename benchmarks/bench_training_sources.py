"""How fast does each training source make crops on one CPU core?

A GPU run's data-loader workers (``train --workers N``) draw crops from the sources in the mix;
when the slowest source takes most of their time, the GPU waits. This prints, for each source,
the CPU time per crop (one thread, as each worker runs with ``OMP_NUM_THREADS=1``) and, for a
mix, the crops per second that ``--workers`` such workers can make at most, which bounds
``--batch-size``-crop steps per second. The real sources are skipped with a note when
``../shared/data`` is absent.

    OMP_NUM_THREADS=1 python benchmarks/bench_training_sources.py --crops 8
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from napari_dendrite_panoptic.data import training_source
from napari_dendrite_panoptic.data.mix import parse_mix
from napari_dendrite_panoptic.errors import DendritePanopticError

SOURCES = ("generator", "generator3d", "generator-slabs", "yolo11", "findspines", "smirnov")
GPU_MIX = "generator:0.2,generator3d:0.3,yolo11:0.15,findspines:0.2,smirnov:0.15"


def seconds_per_crop(name: str, crops: int, crop: int, planes: int) -> float | None:
    """Mean CPU seconds per ``crop``² crop of source ``name``; None when its data is absent."""
    try:
        source, _ = training_source(f"{name}:1", crop, 0.08, planes=planes)
    except DendritePanopticError:
        return None
    rng = np.random.default_rng(0)
    source(rng)  # loads and caches the set's files
    start = time.process_time()
    for _ in range(crops):
        source(rng)
    return (time.process_time() - start) / crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=8, help="crops timed per source")
    parser.add_argument("--crop", type=int, default=256, help="crop side, px")
    parser.add_argument("--planes", type=int, default=3, help="input planes (1 or 3)")
    parser.add_argument("--mix", default=GPU_MIX, help="mix for the bound (default: the GPU run's)")
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    print(
        f"# {platform.processor() or platform.machine()}, one thread, {args.crop}² crops, "
        f"{args.planes} planes, {args.crops} crops per source"
    )
    print(f"{'source':<14}{'CPU ms per crop':>17}")
    timings = {}
    for name in SOURCES:
        s = seconds_per_crop(name, args.crops, args.crop, args.planes)
        timings[name] = s
        print(f"{name:<14}{'absent' if s is None else f'{1000 * s:.0f}':>17}")
    mix = parse_mix(args.mix)
    if all(timings.get(name) is not None for name, _ in mix):
        total = sum(weight for _, weight in mix)
        per_crop = sum(weight / total * timings[name] for name, weight in mix)
        crops_s = args.workers / per_crop
        print(
            f"\nmix {args.mix}: {1000 * per_crop:.0f} ms per crop on average; "
            f"{args.workers} workers make at most {crops_s:.0f} crops/s = "
            f"{crops_s / args.batch_size:.2f} steps/s of {args.batch_size}"
        )


if __name__ == "__main__":
    main()
