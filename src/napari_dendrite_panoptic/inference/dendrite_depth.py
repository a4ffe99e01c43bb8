"""Trim a stack's dendrite to the planes a tube-shaped shaft can fill.

The dendrite network sees one plane at a time. A shaft's blurred light reaches the planes above
and below it (the axial PSF is several times the lateral one), and the network marks it there
too: on generator stacks it marked 4-5 planes per (y, x) column where the shaft fills 2.
:func:`trim_dendrite_depth` models the shaft as a tube whose depth equals its width: in each
column it finds the plane where the light peaks (refined between planes), takes the tube's half
depth there from the column's distance to the shaft's edge in the projected mask, widened where
the shaft climbs through z, and keeps the planes within that half depth (plus a tolerance).
It reads the planes one at a time and keeps a few (Y, X) arrays, so it suits stacks of any depth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

MAX_RADIUS_UM = 3.0
"""Radius (µm) over which a column looks for the local shaft radius (the widest shaft's)."""


def _column_peaks(
    dendrite: np.ndarray, planes: Callable[[int], np.ndarray], smooth_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(peak plane (Y, X) int, refined peak depth (Y, X) float in planes, projected mask (Y, X)
    bool) of the light inside the dendrite mask, reading one plane at a time."""
    nz, ny, nx = dendrite.shape
    best = np.full((ny, nx), -np.inf, np.float32)
    below = np.full((ny, nx), -np.inf, np.float32)  # light one plane before the peak
    above = np.full((ny, nx), -np.inf, np.float32)  # light one plane after the peak
    peak = np.zeros((ny, nx), np.int32)
    previous = np.full((ny, nx), -np.inf, np.float32)
    for z in range(nz):
        mask = dendrite[z] > 0
        light = ndi.gaussian_filter(np.asarray(planes(z), np.float32), smooth_px)
        current = np.where(mask, light, -np.inf).astype(np.float32)
        after_peak = (peak == z - 1) & np.isfinite(best)
        above[after_peak] = current[after_peak]
        new = current > best
        below[new], above[new], peak[new], best[new] = previous[new], -np.inf, z, current[new]
        previous = current
    inside = np.isfinite(best)
    with np.errstate(invalid="ignore", divide="ignore"):
        curvature = below - 2 * best + above
        fit = inside & np.isfinite(below) & np.isfinite(above) & (curvature < 0)
        shift = np.where(fit, 0.5 * (below - above) / np.where(fit, curvature, -1.0), 0.0)
    return peak, peak + np.clip(shift, -0.5, 0.5), inside


def trim_dendrite_depth(
    dendrite: np.ndarray,
    planes: Callable[[int], np.ndarray],
    voxel_size_um: tuple[float, float, float],
    tolerance_planes: float = 0.5,
) -> np.ndarray:
    """Keep, in each (y, x) column, the dendrite planes a tube-shaped shaft fills; in place.

    Parameters
    ----------
    dendrite
        (Z, Y, X) uint8 dendrite mask (0/1): an array, or planes read as copies and written
        back (``dendrite[z] = plane``, as :class:`.streaming.RawPlanes`); modified and returned.
    planes
        ``planes(z)`` → (Y, X) float intensities of plane ``z`` (background offset taken off).
    voxel_size_um
        (z, y, x) voxel size in µm.
    tolerance_planes
        Planes (fraction of the z step) kept beyond the tube's half depth. The column's
        brightest plane always stays, so no part of the projected mask disappears.
    """
    nz = dendrite.shape[0]
    if nz < 2:
        return dendrite
    peak, depth, inside = _column_peaks(dendrite, planes, smooth_px=1.0)
    if not inside.any():
        return dendrite
    reach_planes = _reach_planes(depth, inside, voxel_size_um) + tolerance_planes
    for z in range(nz):
        plane = dendrite[z]
        drop = (plane > 0) & (np.abs(z - depth) > reach_planes) & (peak != z)
        if drop.any():
            plane[drop] = 0
            dendrite[z] = plane  # written back where ``dendrite`` holds copies (planes on disk)
    return dendrite


def _reach_planes(
    depth: np.ndarray, inside: np.ndarray, voxel_size_um: tuple[float, float, float]
) -> np.ndarray:
    """(Y, X) float64: the tube's half depth in planes around each column's peak ``depth``,
    for the projected mask ``inside``."""
    dz, dy, dx = (float(v) for v in voxel_size_um)
    half_depth = _tube_half_depth(inside, dy, dx)
    # a shaft climbing through z crosses more planes per column: divide by cos(climb angle)
    half_depth *= _climb_factor(depth, inside, dz, dy, dx)
    half_depth /= dz
    return half_depth


def _tube_half_depth(inside: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """(Y, X) float64 µm: the half depth of a tube whose depth equals its width, at each
    column's distance to the shaft's edge in the projected mask ``inside``."""
    # µm to the shaft's edge, which lies half a pixel before the first pixel outside
    edge = np.maximum(ndi.distance_transform_edt(inside, sampling=(dy, dx)) - min(dy, dx) / 2, 0)
    reach = min(float(edge.max()), MAX_RADIUS_UM)
    window = (2 * int(np.ceil(reach / dy)) + 1, 2 * int(np.ceil(reach / dx)) + 1)
    radius = ndi.grey_dilation(edge, size=window)  # the local shaft radius
    # sqrt(radius² - (radius - edge)²), in place: a few (Y, X) arrays of a large plane
    edge -= radius
    edge **= 2
    radius **= 2
    radius -= edge
    del edge
    np.maximum(radius, 0.0, out=radius)
    return np.sqrt(radius, out=radius)


def _climb_factor(
    depth: np.ndarray, inside: np.ndarray, dz: float, dy: float, dx: float
) -> np.ndarray:
    """(Y, X) float64 ≥ 1: 1 / cos of the angle at which the shaft climbs through z, from the
    smoothed peak ``depth`` (planes) inside the projected mask ``inside``."""
    weight = ndi.gaussian_filter(inside.astype(np.float64), 2.0) + 1e-6
    smooth_depth = ndi.gaussian_filter(np.where(inside, depth, 0.0), 2.0) / weight
    del weight
    gy, gx = np.gradient(smooth_depth * dz, dy, dx)
    del smooth_depth
    gy **= 2
    gx **= 2
    gy += gx
    del gx
    np.minimum(gy, 9.0, out=gy)
    gy += 1.0
    return np.sqrt(gy, out=gy)
