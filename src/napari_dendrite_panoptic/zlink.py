"""Link 2D spine instances of neighbouring planes into 3D objects."""

from __future__ import annotations

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
        least this; each instance links to at most one in the plane before (best IoU first).

    Returns
    -------
    labels, scores
        (Z, Y, X) uint32 ids numbered 1..N over the stack, and each id's best score.
    """
    nz = plane_labels.shape[0]
    out = np.zeros(plane_labels.shape, dtype=np.uint32)
    scores: dict[int, float] = {}
    next_id = 1
    for z in range(nz):
        cur = plane_labels[z]
        n_cur = len(plane_scores[z]) if z < len(plane_scores) else int(cur.max())
        mapping = np.zeros(max(n_cur, int(cur.max())) + 1, dtype=np.uint32)
        if z > 0:
            prev = out[z - 1]
            pa, pb, inter = _overlaps(prev, cur)
            if inter.size:
                size_prev = np.bincount(prev.ravel(), minlength=int(pa.max()) + 1)
                size_cur = np.bincount(cur.ravel(), minlength=int(pb.max()) + 1)
                iou = inter / (size_prev[pa] + size_cur[pb] - inter)
                used_prev: set[int] = set()
                for k in np.argsort(-iou):
                    if iou[k] < min_iou:
                        break
                    a, b = int(pa[k]), int(pb[k])
                    if mapping[b] or a in used_prev:
                        continue
                    mapping[b] = a
                    used_prev.add(a)
        for local in range(1, len(mapping)):
            score = plane_scores[z][local - 1] if local - 1 < len(plane_scores[z]) else 1.0
            if not mapping[local]:
                mapping[local] = next_id
                next_id += 1
            gid = int(mapping[local])
            scores[gid] = max(scores.get(gid, 0.0), float(score))
        out[z] = mapping[cur]
    present = np.unique(out)
    present = present[present > 0]
    relabel = np.zeros(next_id, dtype=np.uint32)
    relabel[present] = np.arange(1, present.size + 1, dtype=np.uint32)
    new_scores = {int(relabel[g]): s for g, s in scores.items() if g < next_id and relabel[g]}
    return relabel[out], new_scores
