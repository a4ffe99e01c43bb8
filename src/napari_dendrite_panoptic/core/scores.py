"""The one rule for a score whose denominator is zero: it is undefined (NaN), never 0 or 1.

A precision with no prediction, a recall with nothing to find, an IoU of two empty masks or a
density on no dendrite says nothing about the model; NaN keeps it out of means
(``numpy.nanmean``) and shows as "nan" in tables instead of a made-up number.
"""

from __future__ import annotations


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` as a float, or NaN when ``denominator`` is 0."""
    return float(numerator) / denominator if denominator else float("nan")
