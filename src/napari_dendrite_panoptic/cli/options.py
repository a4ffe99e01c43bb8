"""Options that more than one command shares: their help texts and argument types."""

from __future__ import annotations

import argparse
import textwrap

FLIPS_HELP = (
    "segment each plane in its four mirror views and keep the spines most of them find "
    "(4x the time; spine F1 +0.003 to +0.010 on the held-out real sets)"
)
DENDRITE_THRESHOLD_HELP = (
    "dendrite probability (0-1) above which a pixel is dendrite; lower draws the shaft wider "
    "(default: the model's, 0.5 unless fine-tuning chose one on your corrections)"
)
DEVICE_HELP = "where the networks run: 'auto' takes a CUDA GPU when there is one, else the CPU"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples, and ends each option's help with its
    default, ``(default: …)``, unless the help already says it. Flags that are off unless given
    read ``(default: off)``; an option whose default is None must say its default in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.default is argparse.SUPPRESS
            or "default" in text.lower()
            or isinstance(action, argparse._VersionAction | argparse._HelpAction)
        ):
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        if action.default is None:
            return text
        return f"{text} (default: %(default)s)"


def command_parser(
    sub: argparse._SubParsersAction, name: str, summary: str, description: str, example: str
) -> argparse.ArgumentParser:
    """A subcommand's parser: its one-line ``summary`` (in the command list), a ``description``
    (at the top of its --help) and an ``example`` (at the bottom)."""
    return sub.add_parser(
        name,
        help=summary,
        description=description if "\n" in description else textwrap.fill(description, 88),
        epilog=f"example:\n{example}",
        formatter_class=HelpFormatter,
    )


def planes_or_off(text: str) -> float | None:
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


def add_training_choices(parser: argparse.ArgumentParser) -> None:
    """``--which`` and ``--layers``, the networks and the layers a training run trains (``train``
    and ``fine-tune``)."""
    parser.add_argument(
        "--which",
        default="both",
        choices=["both", "spines", "dendrites"],
        help="the networks to train",
    )
    parser.add_argument(
        "--layers",
        default="all",
        choices=["all", "upper", "heads"],
        help="all; upper: keep each network's stem and first ResNet stage as the base model "
        "has them and train the rest (faster steps); heads: keep the whole ResNet trunk "
        "(fastest); upper and heads need a base model",
    )
