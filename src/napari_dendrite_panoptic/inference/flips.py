"""Test-time flips: segment a plane as seen in four mirror views and let the views vote.

A spine the detector finds in every mirror view of a plane is far more likely real than one it
finds in a single view. :func:`fuse_views` groups each view's spines (already mapped back to the
plane) by mask overlap, scores each group by the mean of its members' scores over *all* views
(a view that missed it counts 0), and keeps the pixels that at least half the views give it.
The dendrite probability is the mean of the views' probabilities (done by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

FLIP_VIEWS: tuple[tuple[bool, bool], ...] = (
    (False, False),
    (False, True),
    (True, False),
    (True, True),
)
"""(flip y, flip x) of each view; the identity first."""

VIEW_SCORE_FLOOR = 0.3
"""Each view keeps its spines down to this score (or the threshold, if lower), so that a spine
scored just under the threshold in one view still adds its score to the group's mean."""

GROUP_MIN_IOU = 0.3
"""A view's spine joins the group whose first mask it overlaps with at least this IoU."""

Region = tuple[slice, slice]
"""A (y, x) rectangle of a plane."""


def flipped_axes(view: tuple[bool, bool]) -> list[int]:
    """The axes (0 y, 1 x) of a (Y, X) plane that ``view`` mirrors."""
    return [axis for axis, flip in enumerate(view) if flip]


def flip_view(array: np.ndarray, view: tuple[bool, bool]) -> np.ndarray:
    """(Y, X) ``array`` as seen in ``view`` (flip y, flip x); applying it twice undoes it."""
    axes = flipped_axes(view)
    return np.flip(array, axes) if axes else array


def claim_pixels(
    region: np.ndarray, mask: np.ndarray, score: float, scores: list[float], min_px: int
) -> bool:
    """Give a spine the pixels of ``mask`` still free (0) in ``region`` (a view into a label
    image, spines pasted best score first) under the next id, appending ``score`` to ``scores``;
    unless fewer than ``min_px`` pixels (at least 1) or under half its mask would be left.
    Returns whether the spine was kept. The one rule of both pastes (one view, mirror views)."""
    own = mask & (region == 0)
    n = int(np.count_nonzero(own))
    if n < max(min_px, 1) or n < 0.5 * np.count_nonzero(mask):
        return False
    scores.append(float(score))
    region[own] = len(scores)
    return True


@dataclass
class FusedSpine:
    """One spine agreed by the views: ``mask`` (h, w) bool over the plane region ``region``
    (a pair of slices), ``score`` the mean of its views' scores (0 for views that missed it)."""

    region: Region
    mask: np.ndarray
    score: float


def _union(a: Region, b: Region) -> Region:
    """The smallest (y, x) region holding both."""
    (ay, ax), (by, bx) = a, b
    return (
        slice(min(ay.start, by.start), max(ay.stop, by.stop)),
        slice(min(ax.start, bx.start), max(ax.stop, bx.stop)),
    )


class _Group:
    """The spines of different views that are one spine: the first one's mask decides joins."""

    def __init__(self, region: Region, mask: np.ndarray, score: float) -> None:
        self.first_region, self.first_mask = region, mask
        self.members = [(region, mask)]
        self.score_sum = score

    def iou(self, region: Region, mask: np.ndarray) -> float:
        both = _union(self.first_region, region)
        a = np.zeros([s.stop - s.start for s in both], dtype=bool)
        b = np.zeros_like(a)
        a[_offset(self.first_region, both)] = self.first_mask
        b[_offset(region, both)] = mask
        inter = np.count_nonzero(a & b)
        return inter / max(np.count_nonzero(a | b), 1)

    def fused(self, n_views: int) -> FusedSpine:
        region = self.members[0][0]
        for r, _ in self.members[1:]:
            region = _union(region, r)
        votes = np.zeros([s.stop - s.start for s in region], dtype=np.int32)
        for r, m in self.members:
            votes[_offset(r, region)] += m
        mask = votes * 2 >= n_views
        if not mask.any():  # a spine only a minority saw keeps where most of them agree
            mask = votes == votes.max()
        return FusedSpine(region, mask, self.score_sum / n_views)


def _offset(inner: Region, outer: Region) -> Region:
    """``inner`` in the coordinates of ``outer``, which holds it."""
    (iy, ix), (oy, ox) = inner, outer
    return (
        slice(iy.start - oy.start, iy.stop - oy.start),
        slice(ix.start - ox.start, ix.stop - ox.start),
    )


def fuse_views(
    view_labels: Sequence[np.ndarray],
    view_scores: Sequence[Sequence[float]],
    min_iou: float = GROUP_MIN_IOU,
) -> list[FusedSpine]:
    """Group the spines of several views of one plane and score each group.

    Parameters
    ----------
    view_labels
        One (H, W) int32 label image per view, already mapped back to the plane (id ``k`` has
        score ``view_scores[v][k - 1]``).
    view_scores
        Each view's spine scores in [0, 1].
    min_iou
        Mask IoU with a group's first spine needed to join it; each group takes at most one
        spine per view (the best-overlapping).

    Returns the groups, best score first.
    """
    groups: list[_Group] = []
    # which group's first spine holds each pixel (1-based; the earlier group keeps a shared
    # pixel): the candidates for a spine are the groups under it, found without a search
    owner = np.zeros(np.shape(view_labels[0]), dtype=np.int32)
    for labels, scores in zip(view_labels, view_scores, strict=True):
        taken: set[int] = set()
        spines = []
        for k, region in enumerate(ndi.find_objects(labels)):
            if region is not None:
                spines.append((region, labels[region] == k + 1, float(scores[k])))
        for region, mask, score in sorted(spines, key=lambda s: -s[2]):
            best, best_iou = None, min_iou
            for g in np.unique(owner[region][mask]).tolist():
                if g == 0 or g - 1 in taken:
                    continue
                iou = groups[g - 1].iou(region, mask)
                if iou >= best_iou:
                    best, best_iou = g - 1, iou
            if best is None:
                groups.append(_Group(region, mask, score))
                taken.add(len(groups) - 1)
                free = owner[region]
                free[mask & (free == 0)] = len(groups)
            else:
                groups[best].members.append((region, mask))
                groups[best].score_sum += score
                taken.add(best)
    fused = [g.fused(len(view_labels)) for g in groups]
    return sorted(fused, key=lambda f: -f.score)


def paste_fused(
    shape: tuple[int, int], spines: Sequence[FusedSpine], score_threshold: float, min_px: int
) -> tuple[np.ndarray, list[float]]:
    """(H, W) int32 labels of the fused spines scoring at least ``score_threshold``, best first
    (a pixel already owned by a better spine stays with it; a spine left with fewer than
    ``min_px`` pixels, or under half its mask, is dropped), and the score of each id."""
    labels = np.zeros(shape, dtype=np.int32)
    scores: list[float] = []
    for spine in sorted(spines, key=lambda s: -s.score):
        if spine.score < score_threshold:
            break
        claim_pixels(labels[spine.region], spine.mask, spine.score, scores, min_px)
    return labels, scores
