"""``dendrite-panoptic sample``: write a generated stack or plane (and its ground truth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OutputExistsError


def cmd_sample(args: argparse.Namespace) -> int:
    from ..data import synthetic
    from ..io import write_labels_tiff, write_tiff_atomic

    out = Path(args.path)
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out} exists already; pass --overwrite to replace it")
    sample = synthetic.sample_plane() if args.plane else synthetic.sample_stack()
    squeeze = 0 if args.plane else slice(None)
    write_tiff_atomic(out, sample.image[squeeze], sample.voxel_size_um)
    if args.ground_truth:
        stem = out.with_suffix("")
        write_labels_tiff(f"{stem}_gt_dendrite.tif", sample.dendrite[squeeze], sample.voxel_size_um)
        write_labels_tiff(f"{stem}_gt_spines.tif", sample.spines[squeeze], sample.voxel_size_um)
    print(out)
    return 0
