"""Command line: ``dendrite-panoptic segment | train | fine-tune | evaluate | sample | track`` over
the same engine as the dock widgets.

This module holds the argument parser (:func:`build_parser`) and the entry point (:func:`main`);
each command lives in its own module: :mod:`.segment` (with :mod:`.batch` for several files),
:mod:`.evaluate`, :mod:`.train`, :mod:`.fine_tune`, :mod:`.sample`, :mod:`.track`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

from .. import __version__
from ..errors import DendritePanopticError
from . import evaluate, fine_tune, sample, segment, track, train
from .options import HelpFormatter

EXIT_CODES = """\
exit status:
  0  all done
  1  some inputs failed (the others were written; the failures are listed), or a file could
     not be read or written
  2  usage error or bad input (nothing was done; the message says what to change)
  3  internal error: an unexpected exception (one line names it; -v shows the traceback)
  130 interrupted (Ctrl-C)

Each command has its own help: dendrite-panoptic COMMAND --help"""

PACKAGE_LOGGER = "napari_dendrite_panoptic"
"""The logger -v turns up: this package's only; other libraries' logging is left as it is."""


def build_parser() -> argparse.ArgumentParser:
    """The ``dendrite-panoptic`` argument parser: each command adds its own options."""
    parser = argparse.ArgumentParser(
        prog="dendrite-panoptic",
        description="Panoptic segmentation of dendrites and dendritic spines in TIFF stacks.",
        epilog=EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log what the commands do, and show the traceback of an internal error",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (segment, train, fine_tune, evaluate, sample, track):
        command.add_parser(sub)
    return parser


@contextlib.contextmanager
def _package_logging(verbose: bool) -> Iterator[None]:
    """Log this package's messages (INFO with -v, else WARNING) to stderr, through
    ``tqdm.write`` so that log lines and progress bars do not tear each other; the root logger
    is left alone. Undone on return (``main`` may run many times in one process)."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    log = logging.getLogger(PACKAGE_LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        with logging_redirect_tqdm(loggers=[log]):
            yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dendrite-panoptic``; returns the exit status (see :data:`EXIT_CODES`)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits with 2
    with _package_logging(args.verbose):
        try:
            return int(args.func(args))
        except DendritePanopticError as exc:
            print(f"dendrite-panoptic: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("dendrite-panoptic: interrupted", file=sys.stderr)
            return 130
        except OSError as exc:  # a file the system could not read or write
            print(f"dendrite-panoptic: {exc}", file=sys.stderr)
            _traceback(args.verbose)
            return 1
        except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with -v
            print(
                f"dendrite-panoptic: internal error: {type(exc).__name__}: {exc}"
                + ("" if args.verbose else " (run with -v for the traceback)"),
                file=sys.stderr,
            )
            _traceback(args.verbose)
            return 3


def _traceback(verbose: bool) -> None:
    if verbose:
        import traceback

        traceback.print_exc(file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
