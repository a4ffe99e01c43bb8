"""Command line: ``dendrite-panoptic segment | train | evaluate | sample | track`` over the same engine
as the dock widgets.

This module holds the argument parser (:func:`build_parser`) and the entry point (:func:`main`);
each command lives in its own module: :mod:`.segment` (with :mod:`.batch` for several files),
:mod:`.evaluate`, :mod:`.train`, :mod:`.sample`, :mod:`.track`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import DendritePanopticError
from . import evaluate, sample, segment, track, train


def build_parser() -> argparse.ArgumentParser:
    """The ``dendrite-panoptic`` argument parser: each command adds its own options."""
    parser = argparse.ArgumentParser(
        prog="dendrite-panoptic",
        description="Panoptic segmentation of dendrites and dendritic spines in TIFF stacks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (segment, train, evaluate, sample, track):
        command.add_parser(sub)
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
