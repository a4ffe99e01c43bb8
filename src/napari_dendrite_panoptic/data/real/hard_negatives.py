"""Hard negatives of centre-annotated fields: bright blobs far from every click.

A crop placed on a clicked spine rarely shows what the model gets wrong on a real field:
background puncta, blobs on the shaft and dim side branches with no click near them. Crops
anchored on such blobs teach the spine network that they are background (every pixel without a
pseudo mask already is; the anchor only makes the network see them). A blob counts when it is

- a local maximum of the lightly smoothed field, at least 0.5 µm from a brighter one;
- at least as bright above its local background as the dimmer half of the field's clicked
  spines (their median contrast), so faint haze never counts;
- farther than ``far_um`` (2 µm) from every click, four times the pseudo mask's radius.

Fields that look incompletely clicked are skipped, because an unclicked spine there would be
taught as background: a field counts as clicked completely when at least ``min_clicked``
(60 %) of its bright blobs lie within ``far_um`` of a click. Parameters were chosen by looking
at FindSpines training fields only (never the held-out groups).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max

FAR_UM = 2.0
"""A hard negative lies farther than this from every click (µm)."""

MIN_CLICKED = 0.6
"""Smallest fraction of a field's bright blobs near a click for the field to count as
clicked completely."""


def bright_blobs(
    image: np.ndarray, centres_px: np.ndarray, pixel_size_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bright blobs of a field and, for each, its distance to the nearest click.

    Parameters
    ----------
    image
        (H, W) grey field, any real dtype.
    centres_px
        (N, 2) clicked spine centres (y, x) in px.
    pixel_size_um
        Pixel size in µm.

    Returns
    -------
    (blobs, distance)
        (M, 2) int64 blob positions (y, x) in px, and (M,) float64 distance in µm of each to
        the nearest click (inf without clicks). Empty when the field has no click: without
        clicks there is no spine brightness to compare with.
    """
    centres = np.asarray(centres_px, dtype=np.float64).reshape(-1, 2)
    if len(centres) == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    img = np.asarray(image, dtype=np.float32)
    smooth = ndi.gaussian_filter(img, max(0.7, 0.1 / pixel_size_um))
    win = int(2 * np.ceil(1.8 / pixel_size_um) + 1)  # 3.6 µm: wider than a spine and a shaft
    contrast = smooth - ndi.uniform_filter(ndi.minimum_filter(smooth, size=win), size=win)
    # each click's contrast: the brightest pixel within 0.3 µm (clicks sit a little off peak)
    near = max(1, int(round(0.3 / pixel_size_um)))
    clicks = np.clip(np.round(centres).astype(np.int64), 0, np.array(img.shape) - 1)
    peak = ndi.maximum_filter(contrast, size=2 * near + 1)[clicks[:, 0], clicks[:, 1]]
    level = float(np.median(peak))
    blobs = peak_local_max(
        contrast,
        min_distance=max(1, int(round(0.5 / pixel_size_um))),
        threshold_abs=0.5 * level,
        exclude_border=False,
    ).astype(np.int64)
    blobs = blobs[contrast[blobs[:, 0], blobs[:, 1]] >= level]
    d, _ = cKDTree(centres).query(blobs)
    return blobs, np.asarray(d, dtype=np.float64).reshape(-1) * pixel_size_um


def hard_negatives(
    image: np.ndarray,
    centres_px: np.ndarray,
    pixel_size_um: float,
    far_um: float = FAR_UM,
    min_clicked: float = MIN_CLICKED,
) -> np.ndarray:
    """Anchors for hard-negative crops of one centre-annotated field.

    Parameters
    ----------
    image
        (H, W) grey field.
    centres_px
        (N, 2) clicked spine centres (y, x) in px.
    pixel_size_um
        Pixel size in µm.
    far_um
        Smallest distance in µm from every click.
    min_clicked
        Smallest fraction of bright blobs within ``far_um`` of a click for the field to count
        as clicked completely; other fields give no anchors.

    Returns
    -------
    numpy.ndarray
        (M, 2) float64 blob positions (y, x) in px; empty for fields without clicks or that
        look incompletely clicked.
    """
    blobs, dist = bright_blobs(image, centres_px, pixel_size_um)
    if len(blobs) == 0 or np.mean(dist <= far_um) < min_clicked:
        return np.zeros((0, 2), np.float64)
    return blobs[dist > far_um].astype(np.float64)
