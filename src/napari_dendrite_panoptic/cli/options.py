"""Options that more than one command shares: their help texts and argument types."""

from __future__ import annotations

import argparse

FLIPS_HELP = (
    "segment each plane in its four mirror views and keep the spines most of them find "
    "(4x the time; spine F1 +0.003 to +0.010 on the held-out real sets, docs/models.md)"
)
DENDRITE_THRESHOLD_HELP = (
    "dendrite probability (0-1) above which a pixel is dendrite (default 0.5; lower draws the "
    "shaft wider: docs/models.md)"
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
