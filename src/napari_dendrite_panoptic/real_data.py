"""Loaders for the real annotated data sets in ``../shared/data``.

Three sets are read (formats, pixel sizes and caveats: ``shared/data/README.md``):

- ``smirnov2018``: small two-photon crops (~130 px, 15.36 px/µm) with spine centres;
- ``findspines``: 296 two-photon fields with spine centres (YOLO boxes of one size);
- ``spine-types-yolo11``: one dendrite per image with spine polygons and spine types; everything
  but that dendrite is blacked out (exactly 0).

Centre-only sets load as :class:`PointAnnotatedImage`, the polygon set as
:class:`MaskAnnotatedImage`, each with its pixel size (:func:`findspines_pixel_size`,
:func:`yolo11_pixel_size`). FindSpines images of one field are grouped
(:func:`findspines_groups`) so that :func:`findspines_split` keeps each field on one side; both
live in :mod:`napari_dendrite_panoptic.findspines_split` and are re-exported here, so
``real_data.findspines_split`` keeps working.

Turning the records into :class:`~napari_dendrite_panoptic.datasets.TrainingSample` crops
(:func:`point_source`, :func:`mask_source`, :func:`mixed_source`, :func:`pseudo_spine_masks`)
lives in :mod:`napari_dendrite_panoptic.real_sources`; those names are re-exported here, so
``real_data.point_source`` and the like keep working.

Nothing here downloads anything; a missing folder raises :class:`FileNotFoundError`.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from skimage.draw import ellipse, polygon

# FindSpines grouping and split are re-exported; findspines_split imports the records defined
# here only for type hints, so this makes no import cycle.
from .findspines_split import findspines_groups, findspines_split

# The sample sources are re-exported (``real_data.point_source`` and the like); real_sources
# imports the records defined here only for type hints, so this makes no import cycle.
from .real_sources import (
    PSEUDO_MIN_RADIUS_UM,
    PSEUDO_RADIUS_UM,
    mask_source,
    mixed_source,
    point_source,
    pseudo_spine_masks,
)
from .synthetic import SPINE_TYPES

logger = logging.getLogger(__name__)

DATA_ROOT = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
"""Default data folder: ``../shared/data`` next to the project root (``src/`` layout)."""

ENV_VAR = "DENDRITE_PANOPTIC_DATA"
"""Environment variable that overrides :data:`DATA_ROOT`."""

SMIRNOV_PX_UM = 1.0 / 15.36
"""Smirnov et al. (2018) pixel size in µm (15.36 px per µm)."""

SMIRNOV_MATCH_PX = 7.5
"""Smirnov matching tolerance in px (half the 15 px annotation box)."""

FINDSPINES_BOX = 0.0635
"""Typical FindSpines annotation box width as a fraction of the image width."""


@dataclass
class PointAnnotatedImage:
    """A real image whose spines are annotated by centres only.

    Attributes
    ----------
    name
        File stem, unique within its set.
    image
        (H, W) float32 raw grey values (RGB files are reduced to one channel).
    centres_px
        (N, 2) float64 spine centres (y, x) in px of ``image``.
    pixel_size_um
        Pixel size in µm.
    match_radius_px
        The set's tolerance for matching a detection to a centre, in px of this image.
    group
        Images of the same field share a group; split training and validation by group.
    """

    name: str
    image: np.ndarray
    centres_px: np.ndarray
    pixel_size_um: float
    match_radius_px: float
    group: str = ""


@dataclass
class MaskAnnotatedImage:
    """A real image with spine instance masks, spine types and a dendrite mask.

    Attributes
    ----------
    name
        File stem, unique within its split.
    image
        (H, W) float32 grey values; 0 outside the one visible neuron.
    spines
        (H, W) int32 spine ids (0 none), one per annotated spine, restricted to ``foreground``.
    dendrite
        (H, W) uint8 0/1: ``foreground`` minus ``spines``.
    spine_types
        Spine id → type name (one of :data:`~napari_dendrite_panoptic.synthetic.SPINE_TYPES`).
    pixel_size_um
        Pixel size in µm (about 0.14 for 512-px images, 0.08 for 1024-px images).
    foreground
        (H, W) bool, ``image > 0``: the dendrite and its spines.
    """

    name: str
    image: np.ndarray
    spines: np.ndarray
    dendrite: np.ndarray
    spine_types: dict[int, str]
    pixel_size_um: float
    foreground: np.ndarray


def data_root() -> Path:
    """The data folder: ``$DENDRITE_PANOPTIC_DATA`` if set, else :data:`DATA_ROOT`."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else DATA_ROOT


def _folder(root: str | Path | None, *parts: str) -> Path:
    path = Path(root) if root is not None else data_root()
    path = path.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is absent: real-data loaders need ../shared/data")
    return path


def _grey(path: Path) -> np.ndarray:
    """(H, W) float32 grey values of an 8-bit JPEG/TIFF (RGB → mean of the channels)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = tifffile.imread(path)
    else:
        with Image.open(path) as im:
            arr = np.asarray(im)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(-1)
    return np.ascontiguousarray(arr, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Smirnov 2018
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# FindSpines
# --------------------------------------------------------------------------------------------


def load_findspines(
    root: str | Path | None = None, limit: int | None = None, groups: bool = True
) -> list[PointAnnotatedImage]:
    """Load the FindSpines fields (296 images, 8,653 spines).

    Parameters
    ----------
    root
        Data folder; default :func:`data_root`.
    limit
        Load only the first ``limit`` images by name (fast tests).
    groups
        Fill ``.group`` with :func:`findspines_groups` (needs every loaded image).

    Returns
    -------
    list of PointAnnotatedImage
        Sorted by name. Centres are the YOLO box centres (clipped into the image). Pixel size
        (:func:`findspines_pixel_size`): ``0.1 * 512 / width`` µm for square fields (0.1 at
        512 px, 0.2 at 256 px, 0.17 at 300 px); 0.1 µm for the 20 non-square images, crops cut
        from full-resolution fields. Match radius: half the annotators' box width in px of
        that image (their box varies between sessions: 20-32 px on 512-px fields, 11-25 px on
        256-px fields). Cached: don't modify the items.
    """
    folder = _folder(root, "findspines")
    items = list(_load_findspines_cached(str(folder), limit))
    if groups:
        for item, g in zip(items, findspines_groups(items), strict=True):
            item.group = g
    return items


@lru_cache(maxsize=4)
def _load_findspines_cached(folder: str, limit: int | None) -> tuple[PointAnnotatedImage, ...]:
    folder_p = Path(folder)
    items = []
    for path in sorted((folder_p / "img").glob("*.jpg"))[:limit]:
        image = _grey(path)
        h, w = image.shape
        label = folder_p / "labels" / f"{path.stem}.txt"
        rows = _read_rows(label)
        boxes = np.asarray([r[1:5] for r in rows if len(r) == 5], dtype=np.float64).reshape(-1, 4)
        # normalised from corner to corner: pixel i's centre is at (i + 0.5) / size
        centres = np.stack([boxes[:, 1] * h, boxes[:, 0] * w], axis=1) - 0.5
        # one box centre lies just past the border (000339): keep it, on the edge pixel
        centres = np.clip(centres, 0, [h - 1, w - 1])
        box_px = float(np.median(boxes[:, 2]) * w) if len(boxes) else FINDSPINES_BOX * w
        px = findspines_pixel_size(h, w)
        items.append(PointAnnotatedImage(path.stem, image, centres, px, 0.5 * box_px))
    return tuple(items)


def findspines_pixel_size(height: int, width: int) -> float:
    """Pixel size in µm of a FindSpines image of ``height`` × ``width`` px.

    Square fields: ``0.1 * 512 / width`` (README: 512-px fields about 0.1 µm/px, dendrites
    10-15 px wide; 256-px fields about 0.2). Non-square images are crops of full-resolution
    fields (their spines, dendrites and the annotators' 27 px box match the 512-px fields'):
    0.1.
    """
    if height != width:
        return 0.1
    return 0.1 * 512 / width


def _read_rows(path: Path) -> list[list[float]]:
    """Whitespace-separated numbers per non-empty line of a YOLO label file ([] if absent)."""
    if not path.exists():
        return []
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line]


# --------------------------------------------------------------------------------------------
# YOLO11 spine types
# --------------------------------------------------------------------------------------------


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


__all__ = [
    "DATA_ROOT",
    "PSEUDO_MIN_RADIUS_UM",
    "PSEUDO_RADIUS_UM",
    "MaskAnnotatedImage",
    "PointAnnotatedImage",
    "data_root",
    "findspines_groups",
    "findspines_pixel_size",
    "findspines_split",
    "load_findspines",
    "load_smirnov",
    "load_yolo11",
    "mask_source",
    "mixed_source",
    "point_source",
    "pseudo_spine_masks",
    "yolo11_pixel_size",
]
