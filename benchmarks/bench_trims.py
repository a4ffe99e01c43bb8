"""Cost of the passes after the networks on a stack: the dendrite depth trim and the spine focus trim.

    .venv/bin/python benchmarks/bench_trims.py [--planes 16] [--size 1024] [--runs 3]

Generates a (planes, size, size) synthetic stack (a generated 8-plane stack tiled 2 × 2 and
repeated along z) with its exact dendrite mask and spine labels widened to every plane (the
worst case: every column holds dendrite or spine in every plane its blur reaches), then times
``dendrite_depth.trim_dendrite_depth`` and ``zlink.trim_out_of_focus`` on in-memory arrays.
Prints a table: seconds per run (best and median) and per plane.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import ndimage as ndi

from napari_dendrite_panoptic.data import synthetic
from napari_dendrite_panoptic.inference.dendrite_depth import trim_dendrite_depth
from napari_dendrite_panoptic.inference.zlink import trim_out_of_focus


def make_stack(planes: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image float32, dendrite uint8, spines uint32), each (planes, size, size)."""
    cfg = synthetic.SyntheticConfig(shape=(8, size // 2, size // 2), pixel_size_um=0.08)
    sample = synthetic.generate(1, cfg)
    reps = (int(np.ceil(planes / 8)), 2, 2)
    image = np.tile(sample.image.astype(np.float32), reps)[:planes]
    dendrite = np.tile(sample.dendrite > 0, reps)[:planes]
    dendrite = ndi.binary_dilation(dendrite, np.ones((5, 1, 1), bool)).astype(np.uint8)
    spines = np.tile(sample.spines.max(axis=0), (2, 2)).astype(np.uint32)
    return image, dendrite, np.repeat(spines[None], planes, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    image, dendrite, spines = make_stack(args.planes, args.size)
    lo = float(np.percentile(image, 1))

    def plane(z: int) -> np.ndarray:
        return image[z] - lo

    jobs = {
        "trim_dendrite_depth": lambda: trim_dendrite_depth(
            dendrite.copy(), plane, (0.5, 0.08, 0.08)
        ),
        "trim_out_of_focus": lambda: trim_out_of_focus(spines.copy(), plane, 0.9),
    }
    print(f"stack {args.planes} x {args.size} x {args.size}, {args.runs} runs each")
    print(f"{'pass':<22} {'best s':>8} {'median s':>9} {'ms/plane':>9}")
    for name, job in jobs.items():
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            job()
            times.append(time.perf_counter() - start)
        best = min(times)
        print(
            f"{name:<22} {best:>8.2f} {statistics.median(times):>9.2f} "
            f"{1000 * best / args.planes:>9.1f}"
        )


if __name__ == "__main__":
    main()
