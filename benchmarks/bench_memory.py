"""Peak memory of `dendrite-panoptic segment` on a stack far larger than its planes.

    .venv/bin/python benchmarks/bench_memory.py [--planes 64] [--size 2048] [--pixel 0.04]
        [--stack-mode planes] [--segment-args '--spine-focus-fraction 0']

Writes a (planes, size, size) uint16 TIFF (64 × 2048 × 2048 = 512 MB by default; synthetic
dendrites, a generated 8-plane 1024² stack tiled 2 × 2 and repeated along z) and segments it with
the bundled model in a child process (CPU), which reads planes lazily and writes its outputs
plane by plane (results above 1 GiB switch to that mode by themselves). Prints the child's
wall time and peak resident memory (its ``ru_maxrss``: model, libraries and arrays included).
At ``--pixel`` 0.04 µm each plane is resampled to one 1024² tile at the model's 0.08 µm.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_dendrite_panoptic.data import synthetic


def write_stack(path: Path, planes: int, size: int, pixel_um: float) -> None:
    """A (planes, size, size) uint16 ImageJ TIFF, written plane by plane."""
    cfg = synthetic.SyntheticConfig(
        shape=(8, size // 2, size // 2), pixel_size_um=0.08, n_dendrites=2
    )
    block = synthetic.generate(1, cfg).image

    def gen():
        for z in range(planes):
            yield np.tile(block[z % block.shape[0]], (2, 2))

    tifffile.imwrite(
        path,
        gen(),
        shape=(planes, size, size),
        dtype=np.uint16,
        imagej=True,
        resolution=(1 / pixel_um, 1 / pixel_um),
        metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=64)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--pixel", type=float, default=0.04, help="pixel size in µm")
    parser.add_argument("--low-memory", action="store_true", help="force it for small stacks")
    parser.add_argument(
        "--stack-mode", default=None, help="segment's --stack-mode (default: segment's default)"
    )
    parser.add_argument(
        "--segment-args",
        default="",
        help="more options for segment, e.g. '--spine-focus-fraction 0'",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp) / "big.tif"
        write_stack(stack, args.planes, args.size, args.pixel)
        mb = stack.stat().st_size / 2**20
        cmd = [sys.executable, "-m", "napari_dendrite_panoptic.cli", "segment", str(stack)]
        cmd += ["--out", str(Path(tmp) / "out"), "--device", "cpu"]
        cmd += ["--low-memory"] if args.low_memory else []
        cmd += ["--stack-mode", args.stack_mode] if args.stack_mode else []
        cmd += shlex.split(args.segment_args)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        outputs = sorted(p.name for p in (Path(tmp) / "out").iterdir())
    print(
        f"stack: {args.planes} x {args.size} x {args.size} uint16, {mb:.0f} MiB on disk, "
        f"{args.pixel} µm pixels"
    )
    print(f"segment exit code {done.returncode}; {wall:.0f} s; peak resident memory {peak:.0f} MiB")
    print("outputs: " + ", ".join(outputs))
    if done.returncode:
        print(done.stderr[-2000:])


if __name__ == "__main__":
    main()
