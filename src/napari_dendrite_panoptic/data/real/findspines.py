"""FindSpines: two-photon fields with spine centres (YOLO boxes of one size), and the split that keeps each field on one side."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from .records import PointAnnotatedImage, _folder, _grey, _read_rows

FINDSPINES_BOX = 0.0635


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


def _thumbnail(image: np.ndarray, size: int = 64) -> np.ndarray:
    """(size, size) high-passed, zero-mean, unit-variance thumbnail for similarity tests."""
    pil = Image.fromarray(np.asarray(image, dtype=np.float32), mode="F")
    t = np.asarray(pil.resize((size, size), Image.BILINEAR), dtype=np.float64)
    t = t - ndi.gaussian_filter(t, 6.0)
    return (t - t.mean()) / (t.std() + 1e-6)


def _similarity(a: np.ndarray, b: np.ndarray, max_shift: int = 6) -> float:
    """Largest normalised cross-correlation of two thumbnails over shifts up to ``max_shift``."""
    n = a.size
    cc = np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), s=a.shape) / n
    cc = np.roll(cc, (max_shift, max_shift), axis=(0, 1))[: 2 * max_shift + 1, : 2 * max_shift + 1]
    return float(cc.max())


def findspines_groups(
    items: Sequence[PointAnnotatedImage], window: int = 8, threshold: float = 0.5
) -> list[str]:
    """Twin groups of FindSpines fields: images of one field end up in one group.

    Rule (from looking at the 296 images):

    1. Runs of consecutive file numbers form one group. Twins are consecutive, and the gaps in
       the numbering are the whole twin groups held back for evaluation, so a gap is a group
       boundary. Within runs, twins are often re-acquisitions at another zoom or position
       (000008/000009, 000202/000203) whose thumbnails correlate only 0.3-0.4, no better than
       unrelated fields, so a similarity rule alone would miss them.
    2. Runs are merged when an image of one and an image of another, at most ``window``
       positions apart in name order, have a thumbnail similarity >= ``threshold``: the largest
       normalised cross-correlation over ±6 px shifts of 64x64 high-passed thumbnails. Same-field
       pairs score 0.65-0.99; among pairs of distant, unrelated fields the 99.9th percentile
       is 0.55. This joins twins across a gap (000079-000081 with 000083-000086 at 0.8-0.9).

    On the full set this gives 56 groups of 3-10 images (a 0.2 split: 61 images, 13 groups).

    Parameters
    ----------
    items
        FindSpines images sorted by name (names are the file numbers).
    window, threshold
        Neighbourhood (in positions) and similarity threshold of rule 2.

    Returns
    -------
    list of str
        Per item, its group: ``"findspines-<first name of the group>"``.
    """
    n = len(items)
    if n == 0:
        return []
    nums = [
        int(m.group()) if (m := re.search(r"\d+", it.name)) else i for i, it in enumerate(items)
    ]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    run = np.concatenate([[0], np.cumsum(np.diff(nums) != 1)])
    for i in range(n - 1):
        if run[i] == run[i + 1]:
            union(i, i + 1)
    thumbs = [_thumbnail(it.image) for it in items]
    for i in range(n):
        for j in range(i + 1, min(n, i + window + 1)):
            linked = run[i] != run[j] and find(i) != find(j)
            if linked and _similarity(thumbs[i], thumbs[j]) >= threshold:
                union(i, j)
    return [f"findspines-{items[find(i)].name}" for i in range(n)]


def findspines_split(
    items: Sequence[PointAnnotatedImage], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[PointAnnotatedImage], list[PointAnnotatedImage]]:
    """Split FindSpines images into training and validation by whole twin groups.

    Groups (``.group``, filled by :func:`findspines_groups` when empty) are shuffled with
    ``seed`` and added to validation until it holds at least ``val_fraction`` of the images;
    the same items and seed always give the same split.

    Parameters
    ----------
    items
        FindSpines images sorted by name; an empty ``.group`` is filled in place.
    val_fraction
        Smallest fraction of the images, in [0, 1), that goes to validation.
    seed
        Seed of the group shuffle.

    Returns
    -------
    (train, val)
        Lists of items, each in name order; no group is in both.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if any(not it.group for it in items):
        for it, g in zip(items, findspines_groups(items), strict=True):
            it.group = g
    names = sorted({it.group for it in items})
    order = np.random.default_rng(seed).permutation(len(names))
    target = val_fraction * len(items)
    sizes = {g: 0 for g in names}
    for it in items:
        sizes[it.group] += 1
    val_groups: set[str] = set()
    count = 0
    for k in order:
        if count >= target:
            break
        val_groups.add(names[k])
        count += sizes[names[k]]
    train = [it for it in items if it.group not in val_groups]
    val = [it for it in items if it.group in val_groups]
    return train, val
