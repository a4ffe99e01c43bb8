"""Side-by-side figure of the stack modes on the real DeepD3 stack: its maximum-intensity
projection, then the spines of the plane-by-plane path (v0.5 and earlier) and of the slab path
(the default from v0.6), each spine's outline in its own colour, projected.

    .venv/bin/python scripts/figure_stack_modes.py [OUT.png]

Needs ../shared/data (the DeepD3 crop; voxel size 0.5 µm in z, 0.094 µm in y and x, from the
benchmark's publication). A spine the plane path finds again in the next plane shows as
several outlines on one spot.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

from napari_dendrite_panoptic.inference import InferenceConfig, predict  # noqa: E402
from napari_dendrite_panoptic.io import read_tiff, stack_zyx  # noqa: E402
from napari_dendrite_panoptic.models import load_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT.parent / "shared" / "data" / "deepd3-benchmark-crop" / "dendrite.tif"
VOXEL_UM = (0.5, 0.094, 0.094)


def _outlines(ax, spines: np.ndarray, title: str) -> None:
    """Each spine's projected outline in its own colour."""
    rng = np.random.default_rng(0)
    ids = np.unique(spines[spines > 0])
    overlay = np.zeros((*spines.shape[1:], 4))
    for i in ids:
        edge = find_boundaries((spines == i).any(0), mode="inner")
        overlay[edge] = (*rng.uniform(0.3, 1.0, 3), 1.0)
    ax.imshow(overlay, interpolation="nearest")
    depth = np.mean([len(np.unique(np.nonzero(spines == i)[0])) for i in ids]) if len(ids) else 0
    ax.set_title(f"{title}\n{len(ids)} spine objects, {depth:.1f} planes each", fontsize=9)


def main(out: str) -> None:
    if not CROP.is_file():
        raise SystemExit(f"{CROP} is absent: this figure needs ../shared/data")
    image = np.asarray(stack_zyx(read_tiff(CROP)))
    models = load_models(None, "cpu")
    mip = image.max(0)
    lo, hi = np.percentile(mip, [1, 99.8])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), dpi=130)
    for ax in axes:
        ax.imshow(mip, cmap="gray", vmin=lo, vmax=hi)
        ax.set_axis_off()
    axes[0].set_title(f"DeepD3 stack, projection of {image.shape[0]} planes", fontsize=9)
    for ax, mode, title in (
        (axes[1], "planes", "every plane, linked (v0.5)"),
        (axes[2], "auto", "slab projections, lifted (v0.6 default)"),
    ):
        result = predict(image, VOXEL_UM, InferenceConfig(device="cpu", stack_mode=mode), models)
        _outlines(ax, result.spines, title)
    fig.tight_layout()
    fig.savefig(out)
    print(out)


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else str(ROOT / "docs" / "images" / "stack_modes_deepd3.png")
    )
