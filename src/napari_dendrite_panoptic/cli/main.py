"""Command line: ``dendrite-panoptic segment | train | evaluate | sample`` over the same engine
as the dock widgets.

This module holds the argument parser (:func:`build_parser`), the entry point (:func:`main`) and
the ``train`` and ``sample`` commands. ``segment`` lives in :mod:`cli_segment` and ``evaluate``
in :mod:`cli_evaluate`; :func:`segment_file` and :func:`segment_config` are re-exported here
(``cli.segment_file`` is what :mod:`batch` runs per file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import DendritePanopticError
from .evaluate import cmd_evaluate
from .sample import cmd_sample
from .segment import cmd_segment
from .train import cmd_train

FLIPS_HELP = (
    "segment each plane in its four mirror views and keep the spines most of them find "
    "(4x the time; spine F1 +0.003 to +0.010 on the held-out real sets, docs/models.md)"
)
DENDRITE_THRESHOLD_HELP = (
    "dendrite probability (0-1) above which a pixel is dendrite (default 0.5; lower draws the "
    "shaft wider: docs/models.md)"
)


def _planes_or_off(text: str) -> float | None:
    """``--dendrite-depth-tolerance``: a number of planes >= 0, or "off"."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of planes or 'off', got '{text}'"
        ) from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of planes >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``dendrite-panoptic`` argument parser."""
    from ..data import DEFAULT_MIX

    parser = argparse.ArgumentParser(
        prog="dendrite-panoptic",
        description="Panoptic segmentation of dendrites and dendritic spines in TIFF stacks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment TIFF files with a model")
    seg.add_argument(
        "inputs", nargs="+", help="TIFF files (2D, 3D, or with channels), folders or globs"
    )
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    seg.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    seg.add_argument(
        "--pixel-size", type=float, default=None, help="(y, x) pixel size in µm, overrides metadata"
    )
    seg.add_argument("--channel", type=int, default=0, help="channel to segment (default 0)")
    seg.add_argument(
        "--score-threshold", type=float, default=None, help="spine score 0-1 (default: the model's)"
    )
    seg.add_argument("--dendrite-threshold", type=float, default=0.5, help=DENDRITE_THRESHOLD_HELP)
    seg.add_argument(
        "--dendrite-depth-tolerance",
        type=_planes_or_off,
        default=0.5,
        help="stacks: each (y, x) column keeps the dendrite planes a tube-shaped shaft fills, plus "
        "this many planes (default 0.5; 'off' keeps every plane the network marks)",
    )
    seg.add_argument(
        "--spine-focus-fraction",
        type=float,
        default=0.9,
        help="stacks: each spine keeps the planes at >= this fraction of its brightest plane's "
        "mean intensity (default 0.9; 0 keeps all)",
    )
    seg.add_argument(
        "--tile-size", type=int, default=1024, help="largest tile in px (multiple of 32)"
    )
    seg.add_argument("--flips", action="store_true", help=FLIPS_HELP)
    seg.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    seg.add_argument(
        "--low-memory",
        action="store_true",
        help="write results plane by plane (automatic above 1 GiB of results); skips the "
        "spine analysis and the overlay",
    )
    seg.add_argument(
        "--from-run", default=None, help="re-run with the settings of a <stem>_run.json record"
    )
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument(
        "--workers", type=int, default=1, help="files in parallel on a local Dask cluster"
    )
    seg.add_argument(
        "--scheduler", default=None, help="send files to a Dask cluster at tcp://HOST:PORT"
    )
    seg.add_argument(
        "--summary",
        default=None,
        help="summary CSV across files (default <out>/summary.csv for several files)",
    )
    seg.set_defaults(func=cmd_segment)

    tr = sub.add_parser("train", help="train or fine-tune the spine and dendrite networks")
    tr.add_argument("--out", required=True, help="new model folder to write")
    tr.add_argument("--work", required=True, help="folder for the resumable checkpoint")
    tr.add_argument(
        "--data", default=DEFAULT_MIX, help=f"sources and weights (default {DEFAULT_MIX})"
    )
    tr.add_argument("--steps", type=int, default=2000)
    tr.add_argument(
        "--until", type=int, default=None, help="stop at this step (schedule of --steps)"
    )
    tr.add_argument("--batch-size", type=int, default=2)
    tr.add_argument("--crop", type=int, default=256, help="crop size in px")
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=100)
    tr.add_argument("--which", default="both", choices=["both", "spines", "dendrites"])
    tr.add_argument("--base-model", default=None, help="model folder to fine-tune")
    tr.add_argument("--pixel-size", type=float, default=0.08, help="native pixel size in µm")
    tr.add_argument("--checkpoint-every", type=int, default=25)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--validate", type=int, default=4, help="held-out generator images scored at the end"
    )
    tr.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: all cores; with --which dendrites on the CPU, the cores "
        "the batch worker leaves)",
    )
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    tr.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes drawing batches ahead (default: 1 on the CPU, all cores but two on a GPU)",
    )
    tr.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="time budget: stop and save when spent (the learning rate decays over it)",
    )
    tr.add_argument(
        "--input-planes",
        type=int,
        choices=[1, 3],
        default=None,
        help="planes the networks see at once: 1, or 3 (a stack's plane with the planes below "
        "and above); default: the base model's, else 1. 3 on a 1-plane base model widens it "
        "without changing its output at the start",
    )
    tr.add_argument(
        "--freeze-norm",
        action="store_true",
        help="keep the base model's BatchNorm statistics and normalise with them while "
        "training (for fine-tuning with small batches; needs --base-model)",
    )
    tr.add_argument("--name", default="dendrite-panoptic")
    tr.add_argument("--model-version", default="0.1")
    tr.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the checkpoint in --work (default yes)",
    )
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="score predictions or a model against ground truth")
    ev.add_argument("--model", default=None, help="model folder (default: bundled)")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--generator", type=int, default=0, help="N held-out 2D generator images")
    ev.add_argument("--generator-3d", type=int, default=0, help="N held-out 3D generator stacks")
    ev.add_argument("--real", action="store_true", help="held-out parts of ../shared/data")
    ev.add_argument("--pred-spines", help="predicted spine labels TIFF")
    ev.add_argument("--truth-spines", help="ground-truth spine labels TIFF")
    ev.add_argument("--pred-dendrite", help="predicted dendrite mask TIFF")
    ev.add_argument("--truth-dendrite", help="ground-truth dendrite mask TIFF")
    ev.add_argument("--score-threshold", type=float, default=None, help="default: the model's")
    ev.add_argument("--dendrite-threshold", type=float, default=0.5, help=DENDRITE_THRESHOLD_HELP)
    ev.add_argument("--flips", action="store_true", help=FLIPS_HELP)
    ev.add_argument("--iou", type=float, default=0.5, help="IoU for a spine match (default 0.5)")
    ev.add_argument("--json", help="also write the scores as JSON")
    ev.add_argument("--truth-points", help="CSV of annotated spine centres (µm or px columns)")
    ev.add_argument(
        "--distance-um", type=float, default=1.0, help="centre match distance in µm (default 1)"
    )
    ev.add_argument("--per-plane", action="store_true", help="score every plane on its own too")
    ev.add_argument("--csv", help="write <CSV>_figures.csv and <CSV>_objects.csv")
    ev.add_argument("--split-components", action="store_true", help="0/1 spine masks → instances")
    ev.add_argument("--overwrite", action="store_true", help="replace existing CSV outputs")
    ev.set_defaults(func=cmd_evaluate)

    smp = sub.add_parser("sample", help="write the bundled synthetic sample stack as a TIFF")
    smp.add_argument("path", help="output TIFF path")
    smp.add_argument("--plane", action="store_true", help="a 2D plane instead of a 3D stack")
    smp.add_argument("--ground-truth", action="store_true", help="also write the exact labels")
    smp.add_argument("--overwrite", action="store_true")
    smp.set_defaults(func=cmd_sample)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dendrite-panoptic``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except DendritePanopticError as exc:
        print(f"dendrite-panoptic: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dendrite-panoptic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
