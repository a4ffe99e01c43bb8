"""The pixel size of an uncalibrated image, estimated from the image itself: how many pixels
wide its dendrite shafts are, against how many µm wide a spiny dendrite shaft typically looks.

The shafts are found by thresholding (Otsu) the lightly smoothed maximum projection, keeping the
large bright components (dendrites, not puncta or noise); their skeleton's distance to the
background gives the local width, and the 75th percentile over the skeleton is the shaft width
(the skeleton's spine branches are narrower and pull the median down).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

TYPICAL_SHAFT_WIDTH_UM = 0.85
"""How wide (µm) a spiny dendrite shaft looks above the Otsu threshold of a two-photon or
confocal projection, measured as this module measures it, on the two real sets whose pixel size
is documented: 0.85 µm on the DeepD3 benchmark stack (0.094 µm/px) and a median of 0.86 µm over
the 183 test crops of Smirnov et al. (2018) (15.36 px/µm). Spiny dendrite shafts are 0.5-1.5 µm
in diameter, widened by the microscope's blur; a thicker shaft reads as a smaller pixel size.
docs/reliability.md lists the estimate's error per data set."""

PIXEL_SIZE_RANGE_UM = (0.03, 0.3)
"""Estimates are clamped to this range (µm): what spine imaging uses."""

PLAUSIBLE_FACTOR = 2.0
"""An estimate more than this factor from the model's pixel size is not used (the model's is):
on hazy two-photon fields the threshold takes in the glow around the shaft and the estimate
falls to a third of the true size (FindSpines fields, docs/reliability.md), which would shrink
every spine threefold; a factor of 2 still lets the 0.12 µm stack that the model's 0.08 µm
halved be segmented at its own size."""

ESTIMATED = "estimated from dendrite width"
"""``pixel_size_source`` of a run whose pixel size was estimated."""

SHAFT_PERCENTILE = 75
"""Percentile of the skeleton's widths taken as the shaft width."""

MIN_COMPONENT_FRACTION = 0.1
"""Bright components smaller than this fraction of the largest are left out (puncta, noise)."""


@dataclass(frozen=True)
class PixelSizeEstimate:
    """A pixel size estimated from the dendrite width.

    ``pixel_size_um``: the estimate clamped to :data:`PIXEL_SIZE_RANGE_UM`; ``unclamped_um``:
    before clamping; ``shaft_width_px``: the measured shaft width in pixels.
    """

    pixel_size_um: float
    unclamped_um: float
    shaft_width_px: float

    @property
    def clamped(self) -> bool:
        """True when the measured value lay outside :data:`PIXEL_SIZE_RANGE_UM`."""
        return self.pixel_size_um != self.unclamped_um

    def as_record(self) -> dict[str, float]:
        """The estimate as JSON-ready numbers for the run record."""
        return {
            "pixel_size_um": self.pixel_size_um,
            "unclamped_um": self.unclamped_um,
            "shaft_width_px": self.shaft_width_px,
            "typical_shaft_width_um": TYPICAL_SHAFT_WIDTH_UM,
        }


def estimate_pixel_size(image: Any) -> PixelSizeEstimate:
    """Estimate the (y, x) pixel size in µm of an image of dendrites from its shaft width.

    Parameters
    ----------
    image
        (Y, X) or (Z, Y, X) array of any real dtype (a stack is max-projected; lazy arrays
        are read plane by plane); bright dendrites on a darker background.

    Returns
    -------
    PixelSizeEstimate
        ``TYPICAL_SHAFT_WIDTH_UM / shaft width in px``, clamped to ``PIXEL_SIZE_RANGE_UM``.

    Raises
    ------
    InputError
        When the image is not 2D/3D or shows no bright structure to measure.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.morphology import skeletonize

    shape = tuple(getattr(image, "shape", ()))
    if len(shape) not in (2, 3) or min(shape[-2:], default=0) < 8:
        raise InputError(
            f"the pixel size is estimated from a (Y, X) or (Z, Y, X) image of at least 8x8 px, "
            f"got shape {shape}"
        )
    projection = _max_projection(image)
    smooth = ndi.gaussian_filter(projection, 1.0)
    if not np.isfinite(smooth).all() or float(smooth.max()) <= float(smooth.min()):
        raise InputError("cannot estimate the pixel size: the image is uniform or not finite")
    bright = smooth > threshold_otsu(smooth)
    labels, _ = ndi.label(bright)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = sizes >= max(MIN_COMPONENT_FRACTION * sizes.max(), 20)
    shafts = ndi.binary_fill_holes(keep[labels])
    skeleton = skeletonize(shafts)
    if not skeleton.any():
        raise InputError("cannot estimate the pixel size: no dendrite-like structure found")
    # a run of n pixels has its centre n/2 + 1/2 px from the background: width 2d - 1
    widths = 2.0 * ndi.distance_transform_edt(shafts)[skeleton] - 1.0
    width_px = float(np.percentile(widths, SHAFT_PERCENTILE))
    raw = TYPICAL_SHAFT_WIDTH_UM / width_px
    lo, hi = PIXEL_SIZE_RANGE_UM
    return PixelSizeEstimate(float(np.clip(raw, lo, hi)), raw, width_px)


def plausible(estimate: PixelSizeEstimate, native_um: float) -> bool:
    """True when ``estimate`` lies within :data:`PLAUSIBLE_FACTOR` of the model's pixel size
    ``native_um`` (µm), so that it is used; else the model's pixel size is."""
    ratio = estimate.unclamped_um / native_um
    return 1 / PLAUSIBLE_FACTOR <= ratio <= PLAUSIBLE_FACTOR


def estimate_notice(estimate: PixelSizeEstimate, native_um: float) -> str:
    """One line for the user: the estimated pixel size, how it was found, whether it is used
    (see :func:`plausible`), how to override it."""
    if not plausible(estimate, native_um):
        return (
            f"no pixel size given: the dendrite width suggests {estimate.unclamped_um:.3g} "
            f"µm/px (shafts {estimate.shaft_width_px:.1f} px wide, taken as "
            f"{TYPICAL_SHAFT_WIDTH_UM:g} µm), more than {PLAUSIBLE_FACTOR:g}x from the model's "
            f"{native_um:g} µm, which hazy or unusually thick dendrites cause: using the "
            f"model's {native_um:g} µm/px; give the pixel size"
        )
    clamped = (
        f" (measured {estimate.unclamped_um:.3g} µm, outside the {PIXEL_SIZE_RANGE_UM[0]:g}-"
        f"{PIXEL_SIZE_RANGE_UM[1]:g} µm range)"
        if estimate.clamped
        else ""
    )
    return (
        f"no pixel size given: using {estimate.pixel_size_um:.3g} µm/px{clamped}, estimated "
        f"from the dendrite width (shafts {estimate.shaft_width_px:.1f} px wide, taken as "
        f"{TYPICAL_SHAFT_WIDTH_UM:g} µm); give the pixel size if that is wrong"
    )


def _max_projection(image: Any) -> np.ndarray:
    """(Y, X) float32 maximum over z, reading one plane at a time."""
    if len(image.shape) == 2:
        return np.asarray(image, dtype=np.float32)
    out = np.asarray(image[0], dtype=np.float32).copy()
    for z in range(1, int(image.shape[0])):
        np.maximum(out, np.asarray(image[z], dtype=np.float32), out=out)
    return out
