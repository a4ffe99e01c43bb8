"""Error of the pixel size estimated from the dendrite width, on real and generated images.

    .venv/bin/python benchmarks/bench_pixel_size.py [--out docs/results/pixel_size_estimate.txt]

For each set: the images' reference pixel size (documented for DeepD3 and Smirnov et al.; the
data loaders' rule for YOLO11 and FindSpines, which is itself a guess from a ~1 µm wide dendrite),
and the ratio estimate / reference of ``inference.estimate_pixel_size`` (median, quartiles, and
the share of images within 25 %). Sets that are absent are skipped with a note.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_dendrite_panoptic.data.real import load_findspines, load_smirnov, load_yolo11
from napari_dendrite_panoptic.data.real.records import data_root
from napari_dendrite_panoptic.data.synthetic import SyntheticConfig, generate
from napari_dendrite_panoptic.errors import DataNotFoundError
from napari_dendrite_panoptic.inference import TYPICAL_SHAFT_WIDTH_UM, estimate_pixel_size


def _deepd3() -> list[tuple[np.ndarray, float]]:
    import tifffile

    path = data_root() / "deepd3-benchmark-crop" / "dendrite.tif"
    if not path.is_file():
        raise DataNotFoundError(f"{path} is absent")
    return [(tifffile.imread(path), 0.094)]


def _generated(radius: tuple[float, float]) -> list[tuple[np.ndarray, float]]:
    out = []
    for px in (0.06, 0.08, 0.1, 0.12, 0.14):
        n = int(round(24 / px))
        cfg = SyntheticConfig(shape=(1, n, n), pixel_size_um=px, dendrite_radius_um=radius)
        out += [(generate(seed, cfg).image, px) for seed in range(4)]
    return out


SETS = {
    "DeepD3 stack (0.094 µm documented)": _deepd3,
    "Smirnov test crops (15.36 px/µm documented)": lambda: [
        (r.image, r.pixel_size_um) for r in load_smirnov("test")
    ],
    "YOLO11 train+val (pixel size: loader's rule)": lambda: [
        (r.image, r.pixel_size_um) for s in ("train", "val") for r in load_yolo11(s)
    ],
    "FindSpines fields (pixel size: loader's rule)": lambda: [
        (r.image, r.pixel_size_um) for r in load_findspines(groups=False)
    ],
    "generated, shafts 0.6-0.7 µm": lambda: _generated((0.3, 0.35)),
    "generated, default shafts 0.9-1.6 µm": lambda: _generated((0.45, 0.8)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    lines = [
        f"typical shaft width {TYPICAL_SHAFT_WIDTH_UM} µm; ratio = estimate / reference",
        f"{'set':48s} {'n':>4s} {'median':>7s} {'q25':>6s} {'q75':>6s} {'within 25%':>10s}",
    ]
    for name, load in SETS.items():
        try:
            items = load()
        except DataNotFoundError as exc:
            lines.append(f"{name:48s} skipped: {exc}")
            continue
        ratio = np.array([estimate_pixel_size(img).pixel_size_um / px for img, px in items])
        within = float(np.mean(np.abs(ratio - 1) <= 0.25))
        q25, med, q75 = np.percentile(ratio, [25, 50, 75])
        lines.append(f"{name:48s} {len(ratio):4d} {med:7.2f} {q25:6.2f} {q75:6.2f} {within:10.0%}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
