"""YOLO11 spine outlines: one dendrite per image with spine polygons and spine types; everything but that dendrite is blacked out (exactly 0)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
from skimage.draw import ellipse, polygon

from ...core import SPINE_TYPES
from .records import MaskAnnotatedImage, _folder, _grey, _read_rows

logger = logging.getLogger(__name__)


def yolo11_pixel_size(width: int) -> float:
    """Pixel size in µm of a YOLO11 image ``width`` px wide.

    0.14 at 512 px and 0.08 at 1024 px, linear in between; ``0.14 * 512 / width`` below 512,
    ``0.08 * 1024 / width`` above 1024; clipped to 0.03-0.3 µm.
    """
    if width < 512:
        px = 0.14 * 512 / width
    elif width > 1024:
        px = 0.08 * 1024 / width
    else:
        px = float(np.interp(width, [512, 1024], [0.14, 0.08]))
    return float(np.clip(px, 0.03, 0.3))


def load_yolo11(
    split: str, root: str | Path | None = None, limit: int | None = None
) -> list[MaskAnnotatedImage]:
    """Load the spine-types YOLO11 set (train 200, val 15 images; 1,391 spines in all).

    Parameters
    ----------
    split
        ``"train"`` or ``"val"``.
    root
        Data folder; default :func:`data_root`.
    limit
        Load only the first ``limit`` images by name (fast tests).

    Returns
    -------
    list of MaskAnnotatedImage
        Sorted by name. Spine ids follow the label lines (1, 2, …). Polygons are rasterised
        with :func:`skimage.draw.polygon`, their normalised coordinates read as running from
        the image's corner (0) to its far corner (1), so pixel ``i`` is centred at
        ``(i + 0.5) / size`` (read with centres at ``i / size``, every outline landed half a
        pixel right of and below the spine it traces); a plain box line ``class cx cy w h``
        becomes the filled ellipse inside the box. A spine keeps only its pixels inside the foreground
        (the outlines overlap the black background by ~10 %) unless fewer than 3 would be
        left. Cached: don't modify the items.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    folder = _folder(root, "spine-types-yolo11", split)
    return list(_load_yolo11_cached(str(folder), limit))


@lru_cache(maxsize=4)
def _load_yolo11_cached(folder: str, limit: int | None) -> tuple[MaskAnnotatedImage, ...]:
    paths = sorted(Path(folder).glob("*.tif"), key=lambda p: (len(p.stem), p.stem))[:limit]
    items = []
    for path in paths:
        image = _grey(path)
        h, w = image.shape
        foreground = image > 0
        spines = np.zeros((h, w), dtype=np.int32)
        types: dict[int, str] = {}
        for row in _read_rows(path.with_suffix(".txt")):
            cls, v = int(row[0]), np.asarray(row[1:], dtype=np.float64)
            if v.size == 4:
                cx, cy, bw, bh = v * (w, h, w, h) - (0.5, 0.5, 0, 0)
                rr, cc = ellipse(cy, cx, max(bh / 2, 1.0), max(bw / 2, 1.0), shape=(h, w))
            elif v.size >= 6 and v.size % 2 == 0:
                # label coordinates run from the image's corner (0) to its far corner (1), pixel
                # centres at (i + 0.5) / size; skimage puts pixel i's centre at i
                rr, cc = polygon(v[1::2] * h - 0.5, v[0::2] * w - 0.5, shape=(h, w))
            else:
                logger.warning("%s: skipped a label line with %d numbers", path.name, v.size)
                continue
            keep = foreground[rr, cc] & (spines[rr, cc] == 0)
            if keep.sum() >= 3:
                rr, cc = rr[keep], cc[keep]
            else:
                free = spines[rr, cc] == 0
                rr, cc = rr[free], cc[free]
            if rr.size == 0:
                continue
            sid = len(types) + 1
            spines[rr, cc] = sid
            types[sid] = SPINE_TYPES[cls] if 0 <= cls < len(SPINE_TYPES) else "unknown"
        dendrite = (foreground & (spines == 0)).astype(np.uint8)
        items.append(
            MaskAnnotatedImage(
                path.stem, image, spines, dendrite, types, yolo11_pixel_size(w), foreground
            )
        )
    return tuple(items)
