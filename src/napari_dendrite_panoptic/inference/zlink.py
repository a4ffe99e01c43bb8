"""Link 2D spine instances of neighbouring planes into 3D objects."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _overlaps(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (prev id, cur id) that share pixels, with their intersection in px."""
    both = (prev > 0) & (cur > 0)
    if not both.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    a = prev[both].astype(np.int64)
    b = cur[both].astype(np.int64)
    key = a * (int(b.max()) + 1) + b
    uniq, counts = np.unique(key, return_counts=True)
    return uniq // (int(b.max()) + 1), uniq % (int(b.max()) + 1), counts


class PlaneLinker:
    """Link 2D spine instances plane by plane (z order) into 3D objects, keeping only the last
    planes: a stack of any depth is linked in the memory of three planes. A spine the detector
    missed in one plane keeps its id across that plane.

    Each plane's ids are final when :meth:`add` returns them; ids are numbered 1..N in the order
    spines first appear.
    """

    def __init__(self, min_iou: float = 0.2) -> None:
        self.min_iou = min_iou
        self.scores: dict[int, float] = {}
        self._prev: np.ndarray | None = None
        self._orphans: np.ndarray | None = None  # spines of plane z-2 missing from plane z-1
        self._next_id = 1

    @property
    def count(self) -> int:
        """Number of 3D spines so far."""
        return self._next_id - 1

    def add(self, cur: np.ndarray, plane_scores: list[float]) -> np.ndarray:
        """Link one (Y, X) plane of local ids 1..n (``plane_scores[i - 1]`` the score of id
        ``i``) to the previous plane; returns its (Y, X) uint32 global ids."""
        n_cur = max(len(plane_scores), int(cur.max()) if cur.size else 0)
        mapping = np.zeros(n_cur + 1, dtype=np.uint32)
        # first the plane before; then, for spines still new, a spine of the plane before that
        # which the plane before missed (a detection gap of one plane)
        for earlier in (self._prev, self._orphans):
            if earlier is not None:
                self._match(earlier, cur, mapping)
        present = np.unique(cur)
        for local in present[present > 0].tolist():
            score = plane_scores[local - 1] if local - 1 < len(plane_scores) else 1.0
            if not mapping[local]:  # a new spine starts in this plane
                mapping[local] = self._next_id
                self._next_id += 1
            gid = int(mapping[local])
            self.scores[gid] = max(self.scores.get(gid, 0.0), float(score))
        out = mapping[cur]
        if self._prev is not None:
            gone = self._prev.copy()  # spines of this plane's predecessor that it does not continue
            gone[np.isin(gone, out)] = 0
            self._orphans = gone if gone.any() else None
        self._prev = out
        return out

    def _match(self, earlier: np.ndarray, cur: np.ndarray, mapping: np.ndarray) -> None:
        """Give unmapped local ids of ``cur`` the global id of the ``earlier`` spine they overlap
        best (IoU ≥ ``min_iou``, each earlier spine at most once, best IoU first)."""
        pa, pb, inter = _overlaps(earlier, cur)
        if not inter.size:
            return
        size_prev = np.bincount(earlier.ravel(), minlength=int(pa.max()) + 1)
        size_cur = np.bincount(cur.ravel(), minlength=int(pb.max()) + 1)
        iou = inter / (size_prev[pa] + size_cur[pb] - inter)
        used = set(mapping[mapping > 0].tolist())
        for k in np.argsort(-iou):
            if iou[k] < self.min_iou:
                break
            a, b = int(pa[k]), int(pb[k])
            if mapping[b] or a in used:
                continue
            mapping[b] = a
            used.add(a)


def link_planes(
    plane_labels: np.ndarray, plane_scores: list[list[float]], min_iou: float = 0.2
) -> tuple[np.ndarray, dict[int, float]]:
    """Give spines that overlap in neighbouring planes one id.

    Parameters
    ----------
    plane_labels
        (Z, Y, X) int, ids numbered 1..n separately in every plane.
    plane_scores
        ``plane_scores[z][i - 1]`` is the detection score of id ``i`` in plane ``z``.
    min_iou
        Two instances in planes z-1 and z are the same spine when their IoU (in the YX plane) is at
        least this; each instance links to at most one in the plane before (best IoU first). An
        instance that links to none may link to a spine of plane z-2 that plane z-1 missed (a
        detection gap of one plane).

    Returns
    -------
    labels, scores
        (Z, Y, X) uint32 ids numbered 1..N over the stack, and each id's best score.
    """
    linker = PlaneLinker(min_iou)
    out = np.zeros(plane_labels.shape, dtype=np.uint32)
    for z in range(plane_labels.shape[0]):
        scores = plane_scores[z] if z < len(plane_scores) else []
        out[z] = linker.add(plane_labels[z], scores)
    return out, dict(linker.scores)


def trim_out_of_focus(
    spines: np.ndarray, planes: Callable[[int], np.ndarray], fraction: float
) -> np.ndarray:
    """Drop the planes of each 3D spine where it is out of focus, in place.

    A spine seen through several planes (its blurred light reaches the planes above and below)
    keeps the planes whose mean intensity inside it is at least ``fraction`` of its brightest
    plane's; the brightest plane always stays, so no spine disappears.

    Parameters
    ----------
    spines
        (Z, Y, X) uint32 linked spine ids (0: none): an array, or planes read as copies and
        written back (``spines[z] = plane``, as :class:`.streaming.RawPlanes`); modified and
        returned.
    planes
        ``planes(z)`` → (Y, X) float intensities of plane ``z`` with the background offset taken
        off (e.g. the image minus its 1st percentile).
    fraction
        0-1; 0 keeps every plane.
    """
    nz = spines.shape[0]
    if nz < 2 or fraction <= 0:
        return spines
    means = _mean_light_per_plane(spines, planes)
    if means.shape[1] < 2:  # no spine
        return spines
    peak = means.max(axis=0)
    keep = means >= fraction * np.where(peak > 0, peak, 0.0)
    keep |= means == peak  # the brightest plane stays whatever the offset
    keep[:, 0] = True
    for z in range(nz):
        plane = spines[z]
        dropped = ~keep[z][plane]
        if dropped.any():
            plane[dropped] = 0
            spines[z] = plane  # written back where ``spines`` holds copies (planes on disk)
    return spines


def _mean_light_per_plane(spines: np.ndarray, planes: Callable[[int], np.ndarray]) -> np.ndarray:
    """(Z, N + 1) mean light inside each spine id 0..N in each plane, -inf where the id is not
    in the plane; ``spines`` read one plane at a time."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, np.ndarray] = {}
    for z in range(spines.shape[0]):
        ids = np.asarray(spines[z]).ravel()
        if ids.any():
            sums[z] = np.bincount(ids, weights=planes(z).ravel())
            counts[z] = np.bincount(ids)
    n = max((len(c) for c in counts.values()), default=1)
    means = np.full((spines.shape[0], n), -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        for z, c in counts.items():
            means[z, : len(c)] = np.where(c > 0, sums[z] / np.maximum(c, 1), -np.inf)
    return means
