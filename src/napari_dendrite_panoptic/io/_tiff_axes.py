"""How a TIFF series' axes become the canonical ``"TCZYX"`` subset :func:`.read_tiff` returns.

tifffile names each axis of a series (``Z``, ``C``, ``S`` for samples, ``Q``/``I`` for axes it
cannot name, ...). :func:`plan_axes` maps them onto the canonical order; :func:`plan_samples`
decides what samples marked as colour are (one grey channel, Z planes, or a refused colour
image); :func:`apply_plan` indexes and reorders an in-memory array as planned (a lazy stack
applies the same plan in :class:`._lazy.LazyArray`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TiffReadError
from .tiff_write import CANONICAL_AXES

logger = logging.getLogger(__name__)

Plan = tuple[str, tuple[int, ...], dict[int, int]]
"""The canonical axes, the source axis shown by each, and the source axes dropped at index 0."""


def plan_axes(
    axes: str, shape: tuple[int, ...], photometric: int, path: Path
) -> tuple[str, tuple[int, ...], dict[int, int], int | None]:
    """Map tifffile axes to canonical ones.

    Returns the canonical axes, the source axis shown by each canonical axis, the source
    axes dropped at index 0 (length 1) and the source axis of RGB samples (or None).
    """
    assigned: dict[str, int] = {}
    fixed: dict[int, int] = {}
    unknown: list[int] = []
    rgb_axis = None
    colour = photometric in (2, 5, 6)  # RGB, SEPARATED (CMYK), YCBCR
    for i, (letter, n) in enumerate(zip(axes, shape, strict=True)):
        if letter in CANONICAL_AXES and letter not in assigned and (n > 1 or letter in "YX"):
            assigned[letter] = i
        elif n == 1:
            fixed[i] = 0
        elif letter == "S" and colour and n in (3, 4):
            rgb_axis = i
        else:
            unknown.append(i)
    if "Y" not in assigned or "X" not in assigned:
        raise TiffReadError(f"Cannot read '{path}': its image has no Y and X axes (axes {axes}).")
    # Extra samples become channels; other unknown axes Z, then T, then C, innermost first.
    for i in sorted(unknown, key=lambda i: (axes[i] != "S", -i)):
        preference = "CZT" if axes[i] == "S" else "ZTC"
        free = [letter for letter in preference if letter not in assigned]
        if not free:
            raise TiffReadError(
                f"Cannot read '{path}': it has more dimensions than time, channel, Z, Y and X "
                f"(tifffile axes '{axes}', shape {shape})."
            )
        logger.info("'%s': reading tifffile axis '%s' as %s.", path, axes[i], free[0])
        assigned[free[0]] = i
    out_axes = "".join(letter for letter in CANONICAL_AXES if letter in assigned)
    return out_axes, tuple(assigned[letter] for letter in out_axes), fixed, rgb_axis


def apply_plan(source: np.ndarray, axis_map: tuple[int, ...], fixed: dict[int, int]) -> Any:
    """Index fixed axes and reorder a numpy array as planned (views only)."""
    key = tuple(fixed.get(a, slice(None)) for a in range(source.ndim))
    remaining = [a for a in range(source.ndim) if a not in fixed]
    return source[key].transpose([remaining.index(a) for a in axis_map])


def _equal_samples(data: np.ndarray, axis: int) -> bool:
    """True when the R, G and B samples along `axis` are equal (a grey image stored as RGB)."""
    red = np.take(data, 0, axis=axis)
    return all(np.array_equal(red, np.take(data, c, axis=axis)) for c in (1, 2))


def plan_samples(
    series: Any,
    pixels: np.ndarray | None,
    rgb_axis: int,
    plan: Plan,
    path: Path,
) -> tuple[str, tuple[int, ...], dict[int, int], str]:
    """Re-plan (`plan`: :func:`plan_axes`'s first three) a series marked RGB(A), samples on `rgb_axis`;
    the fourth item is a note for the user ("" when there is nothing to say).

    Equal samples are one grey channel (`pixels`, the series' pixels, or None to look at the
    first plane only). Unequal samples of more than 8 bits stored as separate planes (axis S
    before Y) are read as Z planes: tifffile marks a (3|4, Y, X) array saved without axes
    metadata that way, and the same array of 5 planes is read as Z; a colour photograph is
    8-bit and almost always interleaved. Any other colour image is refused.
    """
    axes, shape = series.axes, tuple(series.shape)
    if pixels is None:
        pixels, sample_axis = series.keyframe.asarray(), series.keyframe.axes.index("S")
    else:
        sample_axis = rgb_axis
    if _equal_samples(pixels, sample_axis):
        logger.info("'%s': RGB file is grey; reading one channel.", path)
        out_axes, axis_map, fixed = plan
        return out_axes, axis_map, {**fixed, rgb_axis: 0}, ""
    planar = axes.index("S") < axes.index("Y")
    if not planar or series.dtype.itemsize == 1:
        raise _colour_error(path, shape[rgb_axis], planar)
    note = (
        f"'{path.name}' is marked RGB, but its {shape[rgb_axis]} {series.dtype} samples are "
        f"stored as separate planes, as tifffile writes a ({shape[rgb_axis]}, Y, X) array "
        "saved without axes: reading them as Z planes."
    )
    logger.warning("%s", note)
    planes = axes[:rgb_axis] + "Q" + axes[rgb_axis + 1 :]
    return (*plan_axes(planes, shape, 1, path)[:3], note)


def _colour_error(path: Path, samples: int, planar: bool) -> TiffReadError:
    """The refusal of a colour RGB(A) image, with what to do for planes marked as colour."""
    hint = (
        f" If its {samples} planes are Z planes or channels, save it with axes metadata "
        "(tifffile: metadata={'axes': 'ZYX'}; Fiji: Image > Properties)."
        if planar
        else ""
    )
    return TiffReadError(
        f"Cannot read '{path}': it is a colour RGB image, which is not supported yet. Convert it "
        "to greyscale or split its channels into a multichannel TIFF (e.g. in Fiji: "
        "Image > Color > Split Channels, then Image > Color > Merge Channels as a composite)."
        + hint
    )
