"""The records of the real annotated data sets, and the one setting that finds them.

Three sets are read (formats, pixel sizes and caveats: the data folder's ``README.md``):

- ``smirnov2018``: small two-photon crops (~130 px, 15.36 px/µm) with spine centres
  (:mod:`.smirnov`);
- ``findspines``: 296 two-photon fields with spine centres (YOLO boxes of one size), grouped by
  field for the split (:mod:`.findspines`);
- ``spine-types-yolo11``: one dendrite per image with spine polygons and spine types; everything
  but that dendrite is blacked out (exactly 0) (:mod:`.yolo11`).

Centre-only sets load as :class:`PointAnnotatedImage`, the polygon set as
:class:`MaskAnnotatedImage`. The data folder is ``$DENDRITE_PANOPTIC_DATA``, else ``../shared/data``
beside the project (:func:`data_root`); a set that is not there raises
:class:`~napari_dendrite_panoptic.errors.DataNotFoundError` with a one-line reason that names the
variable. Nothing here downloads anything.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from ...errors import DataNotFoundError

logger = logging.getLogger(__name__)

DATA_ROOT = (Path(__file__).resolve().parents[4] / ".." / "shared" / "data").resolve()
"""Default data folder: ``../shared/data`` beside the project root (this file is
``src/napari_dendrite_panoptic/data/real/records.py``)."""

ENV_VAR = "DENDRITE_PANOPTIC_DATA"
"""Environment variable that overrides :data:`DATA_ROOT`."""
"""Smirnov et al. (2018) pixel size in µm (15.36 px per µm)."""
"""Smirnov matching tolerance in px (half the 15 px annotation box)."""
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
        Spine id → type name (one of :data:`~napari_dendrite_panoptic.core.SPINE_TYPES`).
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
    base = Path(root) if root is not None else data_root()
    path = base.joinpath(*parts)
    if not path.is_dir():
        where = "" if root is not None or os.environ.get(ENV_VAR) else " (the default)"
        raise DataNotFoundError(
            f"the real data set '{'/'.join(parts)}' is absent from {base}{where}: "
            f"set {ENV_VAR} to the folder that holds it"
        )
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


def _read_rows(path: Path) -> list[list[float]]:
    """Whitespace-separated numbers per non-empty line of a YOLO label file ([] if absent)."""
    if not path.exists():
        return []
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line]
