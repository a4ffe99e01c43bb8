"""Spine density on the real DeepD3 stack: each stack path against the stack's projection.

    .venv/bin/python benchmarks/deepd3_density.py [--model FOLDER] [--paths projection2d,planes,auto]

The crop (``../shared/data/deepd3-benchmark-crop/dendrite.tif``, 23 × 178 × 308, voxel 0.5 ×
0.094 × 0.094 µm from the benchmark's publication) has no annotations. What can be checked is
consistency: a stack path should count about the spines per µm of dendrite that the same model
counts on the stack's maximum-intensity projection segmented as a 2D image. Prints, per path,
the spines, the skeleton length (µm), spines per µm, the change against the projection and the
seconds of ``predict`` (model loaded, on the CPU).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tifffile
from compare_deepd3 import CROP  # the one place the benchmarks name the crop

from napari_dendrite_panoptic.analysis import analyse
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import load_models

VOXEL = (0.5, 0.094, 0.094)


def density(image: np.ndarray, voxel: tuple, config: InferenceConfig, models) -> tuple:
    """(spines, skeleton µm, spines per µm, seconds) of one path on ``image``."""
    start = time.perf_counter()
    result = predict(image, voxel, config, models)
    seconds = time.perf_counter() - start
    analysis = analyse(result.dendrite, result.spines, voxel, image)
    count = len(analysis.spines["id"])
    return count, analysis.skeleton.length_um, analysis.density_per_um, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the bundled one)")
    parser.add_argument("--paths", default="projection2d,planes,auto")
    args = parser.parse_args()
    if not CROP.is_file():
        raise SystemExit(f"{CROP} is absent: this benchmark needs ../shared/data")
    stack = tifffile.imread(CROP)
    models = load_models(args.model, "cpu")
    print(f"# model {models.card.name} {models.card.version}, {stack.shape} stack, CPU")
    print("path          spines  skeleton_um  per_um  vs_projection  seconds")
    reference = None
    for path in args.paths.split(","):
        if path == "projection2d":
            image, voxel, mode = stack.max(axis=0)[None], VOXEL, "auto"
        else:
            image, voxel, mode = stack, VOXEL, path
        config = InferenceConfig(device="cpu", stack_mode=mode)
        count, length, per_um, seconds = density(image, voxel, config, models)
        if path == "projection2d":
            reference = per_um
        change = (
            "" if reference is None or path == "projection2d" else f"{per_um / reference - 1:+.0%}"
        )
        print(f"{path:12s} {count:7d} {length:12.1f} {per_um:7.3f} {change:>14s} {seconds:8.1f}")


if __name__ == "__main__":
    main()
