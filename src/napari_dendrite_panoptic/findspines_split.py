"""Twin groups of FindSpines fields and a training/validation split that keeps them apart.

The FindSpines set holds several images of one field (re-acquisitions at another zoom or
position). :func:`findspines_groups` gives each image its group from the file numbering and a
thumbnail similarity; :func:`findspines_split` splits by whole groups, so that no field is on
both sides. Both work on :class:`~napari_dendrite_panoptic.real_data.PointAnnotatedImage`
records (``name``, ``image`` (H, W) float32, ``group``), as loaded by
:func:`~napari_dendrite_panoptic.real_data.load_findspines`.

:mod:`napari_dendrite_panoptic.real_data` re-exports both functions
(``real_data.findspines_split`` and the like keep working); this module imports it for type
hints only, so there is no import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

if TYPE_CHECKING:  # real_data imports this module at run time (to re-export it)
    from .real_data import PointAnnotatedImage


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


__all__ = ["findspines_groups", "findspines_split"]
