"""Spine analysis of the real DeepD3 crop with the bundled model: tables and a figure for
docs/spine_analysis.md.

    PYTHONPATH=src python scripts/spine_analysis_deepd3.py

Segments ``../shared/data/deepd3-benchmark-crop/dendrite.tif`` (voxel 0.5 × 0.094 × 0.094 µm, the
benchmark's published size; the file stores none) with the bundled model on the CPU, analyses
the result, writes ``docs/results/deepd3_spines.csv``, ``docs/results/deepd3_dendrites.csv`` and
``docs/images/spine_analysis_deepd3.png``, and prints the branch table.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tifffile

from napari_dendrite_panoptic.analysis import analyse
from napari_dendrite_panoptic.analysis.exports import merged_spine_table
from napari_dendrite_panoptic.core import SPINE_TYPES
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.io import write_table_csv

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT.parent / "shared" / "data" / "deepd3-benchmark-crop" / "dendrite.tif"
VOXEL = (0.5, 0.094, 0.094)
COLOURS = {
    "mushroom": "#e6194b",
    "stubby": "#3cb44b",
    "branched": "#ffe119",
    "thin": "#4363d8",
    "filopodium": "#f58231",
}


def main() -> None:
    if not CROP.is_file():
        raise SystemExit(f"{CROP} is absent: this script needs ../shared/data")
    image = tifffile.imread(CROP)
    t0 = time.perf_counter()
    result = predict(image, VOXEL, InferenceConfig(device="cpu"))
    t1 = time.perf_counter()
    analysis = analyse(result.dendrite, result.spines, VOXEL, image)
    t2 = time.perf_counter()
    print(f"segmentation {t1 - t0:.1f} s, analysis {t2 - t1:.1f} s ({analysis.type_method} types)")
    write_table_csv(
        ROOT / "docs/results/deepd3_spines.csv", merged_spine_table(result.table, analysis)
    )
    write_table_csv(ROOT / "docs/results/deepd3_dendrites.csv", analysis.branches)
    sp, br = analysis.spines, analysis.branches
    print(
        f"{len(sp['id'])} spines, dendrite {analysis.skeleton.length_um:.1f} µm, "
        f"{analysis.density_per_um:.2f} spines/µm"
    )
    print("branch  length_um  spines  per_um  " + "  ".join(t[:5] for t in SPINE_TYPES))
    for i in range(len(br["branch_id"])):
        fr = "  ".join(f"{br[f'fraction_{t}'][i]:5.2f}" for t in SPINE_TYPES)
        print(
            f"{br['branch_id'][i]:6d} {br['length_um'][i]:10.1f} {br['spine_count'][i]:7d} "
            f"{br['density_per_um'][i]:7.2f}  {fr}"
        )
    print("first spines:")
    cols = [
        "id",
        "type",
        "volume_um3",
        "length_um",
        "head_diameter_um",
        "neck_width_um",
        "branch_id",
        "distance_along_branch_um",
    ]
    print("  ".join(cols))
    for i in range(min(8, len(sp["id"]))):
        print(
            "  ".join(
                str(sp[c][i]) if sp[c].dtype.kind in "iUb" else f"{sp[c][i]:.2f}" for c in cols
            )
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1.6, 1]})
    mip = image.max(0).astype(float)
    lo, hi = np.percentile(mip, [1, 99.8])
    ext = (0, mip.shape[1] * VOXEL[2], mip.shape[0] * VOXEL[1], 0)
    ax0.imshow(np.clip((mip - lo) / (hi - lo), 0, 1), cmap="gray", extent=ext)
    for b in analysis.skeleton.branches:
        ax0.plot(b.points_um[:, 2], b.points_um[:, 1], "c-", lw=1)
    for t in SPINE_TYPES:
        on = sp["type"] == t
        if on.any():
            ax0.scatter(sp["tip_x_um"][on], sp["tip_y_um"][on], s=12, c=COLOURS[t], label=t)
    ax0.legend(fontsize=6, loc="lower right", markerscale=0.8)
    ax0.set_xlabel("x (µm)")
    ax0.set_ylabel("y (µm)")
    ax0.set_title("DeepD3 crop: skeleton and spine tips by type", fontsize=8)
    # density along the dendrite: spines per µm in 2 µm windows of each branch
    for b in analysis.skeleton.branches:
        if b.length_um < 4:
            continue
        d = sp["distance_along_branch_um"][sp["branch_id"] == b.id]
        edges = np.arange(0, b.length_um + 2, 2.0)
        counts, _ = np.histogram(d, edges)
        ax1.step(edges[:-1], counts / 2.0, where="post", label=f"branch {b.id}")
    ax1.set_xlabel("distance along branch (µm)")
    ax1.set_ylabel("spines per µm (2 µm bins)")
    ax1.set_title(f"overall {analysis.density_per_um:.2f} spines/µm", fontsize=8)
    ax1.legend(fontsize=6)
    fig.tight_layout()
    out = ROOT / "docs/images/spine_analysis_deepd3.png"
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
