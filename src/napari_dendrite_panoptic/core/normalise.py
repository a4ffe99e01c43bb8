"""Intensity normalisation shared by inference and training."""

from __future__ import annotations

import numpy as np


def finite_percentiles(values: np.ndarray, low: float, high: float) -> tuple[float, float] | None:
    """The ``low`` and ``high`` percentiles of the finite entries of ``values``, or None when it
    has none."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)


def sampled_percentiles(
    values: np.ndarray, low: float, high: float, sample: int = 2_000_000
) -> tuple[float, float] | None:
    """:func:`finite_percentiles` of at most ``sample`` evenly strided values of ``values`` (any
    shape), so that huge stacks stay cheap; None when none is finite."""
    flat = np.asarray(values).reshape(-1)
    step = max(1, flat.size // sample)
    return finite_percentiles(flat[::step].astype(np.float32), low, high)


def percentile_normalise(
    image: np.ndarray,
    low: float = 1.0,
    high: float = 99.8,
    sample: int = 2_000_000,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Map the ``low``..``high`` percentiles of ``image`` to 0..1 (not clipped), as float32.

    Percentiles are taken over the whole array (a plane or a stack), or over ``reference`` when
    given (e.g. neighbouring planes mapped as their centre plane is), from at most ``sample``
    evenly strided values so huge stacks stay cheap. Non-finite values become 0. A constant
    image maps to zeros.
    """
    arr = np.asarray(image)
    bounds = sampled_percentiles(arr if reference is None else reference, low, high, sample)
    if bounds is None:
        return np.zeros(arr.shape, dtype=np.float32)
    lo, hi = bounds
    out = arr.astype(np.float32, copy=True)
    out[~np.isfinite(out)] = lo
    if hi - lo <= 0:
        return np.zeros(arr.shape, dtype=np.float32)
    out -= lo
    out /= hi - lo
    return out
