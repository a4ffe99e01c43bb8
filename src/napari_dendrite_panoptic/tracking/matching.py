"""Matching the spines of two sessions, in the first session's frame, along their dendrite.

The cost of pairing spine ``i`` of the earlier session with spine ``j`` of the later one is their
distance in µm after registration (z counted at half weight: stacks are coarser in z), plus
:data:`BRANCH_PENALTY_UM` when they sit on different branches of the first session's skeleton and
:data:`SIDE_PENALTY_UM` when they sit on opposite sides of the shaft. Pairs farther apart than the
gate cannot be made; the pairs are chosen by optimal assignment (``linear_sum_assignment``) over
the costs, with "no partner" worth the gate, so a spine is left alone (lost, or gained) rather than
paired with a far one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..analysis import DendriteSkeleton

MAX_DISTANCE_UM = 1.5
"""Spines farther apart than this (after registration) are never the same spine."""
BRANCH_PENALTY_UM = 0.5
SIDE_PENALTY_UM = 0.5
Z_WEIGHT = 0.5


@dataclass
class ShaftPlace:
    """Where spines sit along the first session's dendrite: ``branch`` (N,) branch id (0: none
    within 3 µm), ``along_um`` (N,) distance along it, ``side`` (N,) -1/+1 (0: on the axis),
    ``offset_um`` (N,) distance to the skeleton."""

    branch: np.ndarray
    along_um: np.ndarray
    side: np.ndarray
    offset_um: np.ndarray


def shaft_place(skeleton: DendriteSkeleton, pts_um: np.ndarray) -> ShaftPlace:
    """The :class:`ShaftPlace` of (N, 3) µm points of the first session's frame."""
    pts = np.asarray(pts_um, float).reshape(-1, 3)
    n = len(pts)
    if not skeleton.branches or n == 0:
        zero = np.zeros(n)
        return ShaftPlace(np.zeros(n, np.int64), zero.copy(), zero.copy(), zero.copy())
    from scipy.spatial import cKDTree

    all_pts = np.concatenate([b.points_um for b in skeleton.branches])
    tangents = np.concatenate(
        [
            np.gradient(b.points_um, axis=0) if len(b.points_um) > 1 else np.zeros((1, 3))
            for b in skeleton.branches
        ]
    )
    ids = np.concatenate([np.full(len(b.points_um), b.id) for b in skeleton.branches])
    along = np.concatenate([b.arclength_um for b in skeleton.branches])
    dist, idx = cKDTree(all_pts).query(pts)
    off = pts[:, 1:] - all_pts[idx, 1:]
    tan = tangents[idx, 1:]
    cross = tan[:, 0] * off[:, 1] - tan[:, 1] * off[:, 0]
    side = np.sign(cross) * (np.linalg.norm(off, axis=1) > 0.3)
    branch = np.where(dist <= 3.0, ids[idx], 0).astype(np.int64)
    return ShaftPlace(branch, along[idx], side, dist)


def match_cost(
    a_um: np.ndarray, b_um: np.ndarray, a_place: ShaftPlace, b_place: ShaftPlace
) -> tuple[np.ndarray, np.ndarray]:
    """(Na, Nb) cost and (Na, Nb) distance in µm of pairing the spines at ``a_um`` (Na, 3) and
    ``b_um`` (Nb, 3), both in the first session's frame."""
    d = a_um[:, None, :] - b_um[None, :, :]
    d[..., 0] *= Z_WEIGHT
    dist = np.sqrt((d**2).sum(-1))
    ab, bb = a_place.branch[:, None], b_place.branch[None, :]
    other_branch = (ab != bb) & (ab > 0) & (bb > 0)
    other_side = (a_place.side[:, None] * b_place.side[None, :]) < 0
    cost = dist + BRANCH_PENALTY_UM * other_branch + SIDE_PENALTY_UM * other_side
    return cost, dist


def assign(cost: np.ndarray, dist: np.ndarray, max_distance_um: float = MAX_DISTANCE_UM):
    """Optimal pairs under the gate: (K, 2) int index pairs (row of ``a``, column of ``b``)."""
    na, nb = cost.shape
    if na == 0 or nb == 0:
        return np.zeros((0, 2), dtype=np.int64)
    big = 1e6
    gate = max_distance_um + BRANCH_PENALTY_UM + SIDE_PENALTY_UM
    c = np.where(dist <= max_distance_um, cost, big)
    # rows: a's spines then one "no partner" per b spine; columns likewise
    full = np.full((na + nb, nb + na), big)
    full[:na, :nb] = c
    full[:na, nb:] = np.where(np.eye(na, dtype=bool), gate, big)
    full[na:, :nb] = np.where(np.eye(nb, dtype=bool), gate, big)
    full[na:, nb:] = 0.0
    rows, cols = linear_sum_assignment(full)
    keep = (rows < na) & (cols < nb)
    pairs = np.stack([rows[keep], cols[keep]], 1)
    return pairs[c[pairs[:, 0], pairs[:, 1]] < big]
