"""Smirnov et al. 2018 crops: small two-photon crops (~130 px, 15.36 px/µm) with spine centres."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np

from .records import PointAnnotatedImage, _folder, _grey

SMIRNOV_PX_UM = 1.0 / 15.36

SMIRNOV_MATCH_PX = 7.5


def load_smirnov(
    split: str, root: str | Path | None = None, limit: int | None = None
) -> list[PointAnnotatedImage]:
    """Load the Smirnov et al. (2018) crops of one split.

    Parameters
    ----------
    split
        ``"train"`` (1,653 images, 6,243 spines) or ``"test"`` (183 images, 680 spines).
    root
        Data folder; default :func:`data_root`.
    limit
        Load only the first ``limit`` images by name (fast tests).

    Returns
    -------
    list of PointAnnotatedImage
        Sorted by name; centres are the box centres; pixel size 1/15.36 µm; match radius
        7.5 px; ``group`` is ``"smirnov-<name>"`` (no field information is published). Images in the
        folder without rows come back with 0 centres. Cached: don't modify the items.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = _folder(root, "smirnov2018", split)
    return list(_load_smirnov_cached(str(folder), limit))


@lru_cache(maxsize=8)
def _load_smirnov_cached(folder: str, limit: int | None) -> tuple[PointAnnotatedImage, ...]:
    folder_p = Path(folder)
    centres: dict[str, list[tuple[float, float]]] = {}
    with open(folder_p.parent / f"{folder_p.name}_labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            cy = (float(row["ymin"]) + float(row["ymax"])) / 2.0
            cx = (float(row["xmin"]) + float(row["xmax"])) / 2.0
            centres.setdefault(row["filename"], []).append((cy, cx))
    files = sorted(folder_p.glob("*.jpg"))[:limit]
    items = []
    for path in files:
        c = np.asarray(centres.get(path.name, []), dtype=np.float64).reshape(-1, 2)
        items.append(
            PointAnnotatedImage(
                path.stem, _grey(path), c, SMIRNOV_PX_UM, SMIRNOV_MATCH_PX, f"smirnov-{path.stem}"
            )
        )
    return tuple(items)
