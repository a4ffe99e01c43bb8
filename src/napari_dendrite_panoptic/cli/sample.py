"""``dendrite-panoptic sample``: write a generated stack or plane (and its ground truth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError, OutputExistsError
from .options import command_parser


def cmd_sample(args: argparse.Namespace) -> int:
    from ..data import synthetic
    from ..io import write_labels_tiff, write_tiff_atomic

    out = Path(args.path)
    if out.is_dir():
        raise InputError(f"'{out}' is a folder; name the .tif file to write")
    stem = out.with_suffix("")
    truth = (
        [Path(f"{stem}_gt_{k}.tif") for k in ("dendrite", "spines")] if args.ground_truth else []
    )
    existing = [p for p in (out, *truth) if p.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(f"{existing[0]} exists already; pass --overwrite to replace it")
    sample = synthetic.sample_plane() if args.plane else synthetic.sample_stack()
    squeeze = 0 if args.plane else slice(None)
    write_tiff_atomic(out, sample.image[squeeze], sample.voxel_size_um, overwrite=args.overwrite)
    for path, labels in zip(truth, (sample.dendrite, sample.spines), strict=False):
        write_labels_tiff(path, labels[squeeze], sample.voxel_size_um, overwrite=args.overwrite)
    print(out)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``sample`` command and its options."""
    smp = command_parser(
        sub,
        "sample",
        "write the bundled synthetic sample stack as a TIFF",
        "Write the bundled synthetic sample (a 3D stack, or one 2D plane with --plane) as a TIFF "
        "with its voxel size, to try the other commands on; --ground-truth also writes its exact "
        "labels as <stem>_gt_dendrite.tif and <stem>_gt_spines.tif.",
        "  dendrite-panoptic sample sample.tif --ground-truth\n"
        "  dendrite-panoptic segment sample.tif --out results",
    )
    smp.add_argument("path", help="output TIFF path")
    smp.add_argument("--plane", action="store_true", help="a 2D plane instead of a 3D stack")
    smp.add_argument("--ground-truth", action="store_true", help="also write the exact labels")
    smp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (the TIFF and its ground truth)",
    )
    smp.set_defaults(func=cmd_sample)
