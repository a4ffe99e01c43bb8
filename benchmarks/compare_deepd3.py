"""Compare two model folders on the real DeepD3 crop, which has no annotations.

The ship rules in docs/models.md ask that a new model "shows no new dendrite in the background"
of this crop. This script makes that check repeatable: it segments the crop with both models
(CPU, the card's thresholds, the benchmark's published 0.094 µm/px typed in as in the docs) and
prints, for each model, the dendrite's footprint (pixels of its maximum projection over z), the
number of spines, and for the second model the footprint pixels and spines farther than
``--distance-px`` from anything the first model found.

    .venv/bin/python benchmarks/compare_deepd3.py BASE_MODEL NEW_MODEL [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.io import read_tiff, stack_zyx

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT.parent / "shared" / "data" / "deepd3-benchmark-crop" / "dendrite.tif"
PIXEL_SIZE_UM = 0.094


def _segment(model: str, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the dendrite footprint (Y, X) bool and the spine centres (N, 2) in px."""
    config = InferenceConfig(model=model, device="cpu", pixel_size_um=PIXEL_SIZE_UM)
    result = predict(image, None, config)
    footprint = np.asarray(result.dendrite).reshape(-1, *image.shape[-2:]).max(axis=0) > 0
    spines = np.asarray(result.spines).reshape(-1, *image.shape[-2:])
    ids = [i for i in np.unique(spines) if i]
    centres = np.array(ndimage.center_of_mass(spines > 0, spines, ids)).reshape(-1, 3)[:, 1:]
    return footprint, centres


def compare(base: str, new: str, distance_px: float) -> dict[str, float | int]:
    """Segment the crop with both models and count what ``new`` adds far from ``base``."""
    image = np.asarray(stack_zyx(read_tiff(CROP)))
    base_fp, base_centres = _segment(base, image)
    new_fp, new_centres = _segment(new, image)
    far_from_base = ndimage.distance_transform_edt(~base_fp) > distance_px
    if len(base_centres) and len(new_centres):
        gaps = np.linalg.norm(new_centres[:, None] - base_centres[None], axis=-1).min(axis=1)
        new_far_spines = int((gaps > distance_px).sum())
    else:
        new_far_spines = len(new_centres)
    return {
        "base_footprint_px": int(base_fp.sum()),
        "new_footprint_px": int(new_fp.sum()),
        "new_footprint_px_far_from_base": int((new_fp & far_from_base).sum()),
        "base_spines": len(base_centres),
        "new_spines": len(new_centres),
        "new_spines_far_from_base": new_far_spines,
        "distance_px": distance_px,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="model folder to compare against (e.g. the bundled one)")
    parser.add_argument("new", help="candidate model folder")
    parser.add_argument("--distance-px", type=float, default=10.0)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    if not CROP.is_file():
        raise SystemExit(f"{CROP} is absent: this script needs ../shared/data")
    numbers = compare(args.base, args.new, args.distance_px)
    for key, value in numbers.items():
        print(f"{key:32s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1) + "\n")


if __name__ == "__main__":
    main()
