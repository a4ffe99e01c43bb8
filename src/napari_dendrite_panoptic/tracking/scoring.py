"""Scores of a tracking result against a generated series' truth (the benchmark and the tests)."""

from __future__ import annotations

import numpy as np

from ..core import ratio


def _owner(pred: np.ndarray, true: np.ndarray) -> dict[int, int]:
    """Predicted id -> the true id it overlaps most (0: none), both (Z, Y, X) integer labels."""
    both = (pred > 0) & (true > 0)
    if not both.any():
        return {}
    pairs, counts = np.unique(
        np.stack([pred[both], true[both]]).astype(np.int64), axis=1, return_counts=True
    )
    out: dict[int, int] = {}
    best: dict[int, int] = {}
    for (p, t), c in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if c > best.get(p, 0):
            best[p], out[p] = c, t
    return out


def score_tracking(result, truth_labels: list[np.ndarray]) -> dict[str, float]:
    """Scores of a :class:`~.track.TrackResult` against the true (Z, Y, X) labels of each
    session (one id per spine for the whole series):

    - ``id_accuracy``: over every true spine of every later session that a tracked spine covers,
      the fraction whose tracked id is right: the same tracked id as in the session before when
      the spine was there, an id new to that session when it was not;
    - ``events_tp``, ``events_fp``, ``events_fn``, ``event_f1``: gained and lost calls (the best
      guess, uncertain ones included) against the true births and deaths between consecutive
      sessions; a call is right when the tracked spine covers a true spine with that event.
    """
    n = len(truth_labels)
    present = [set(np.unique(t).tolist()) - {0} for t in truth_labels]
    owners = [_owner(p, t) for p, t in zip(result.labels, truth_labels, strict=True)]
    # true id -> tracked id, per session (the tracked spine covering it most)
    tracked = []
    for k in range(n):
        inv: dict[int, int] = {}
        for p, t in owners[k].items():
            inv.setdefault(t, p)
        tracked.append(inv)
    right = total = 0
    for k in range(1, n):
        ids_before = set(np.unique(result.labels[k - 1]).tolist()) - {0}
        for t, p in tracked[k].items():
            total += 1
            if t in present[k - 1]:
                right += int(tracked[k - 1].get(t) == p)
            else:
                right += int(p not in ids_before)
    tp = fp = 0
    true_events = {(k, t, "gained") for k in range(1, n) for t in present[k] - present[k - 1]}
    true_events |= {(k, t, "lost") for k in range(1, n) for t in present[k - 1] - present[k]}
    hit = set()
    table = result.spines
    for sid, session, call in zip(table["id"], table["session"], table["call"], strict=True):
        if call not in ("gained", "lost"):
            continue
        k = int(session) - 1
        where = k if call == "gained" else k - 1
        t = owners[where].get(int(sid), 0)
        event = (k, t, call)
        if t and event in true_events and event not in hit:
            hit.add(event)
            tp += 1
        else:
            fp += 1
    fn = len(true_events) - len(hit)
    return {
        "id_accuracy": ratio(right, total),
        "events_tp": tp,
        "events_fp": fp,
        "events_fn": fn,
        "event_f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def registration_error_um(result, base_um: dict[int, np.ndarray], truths) -> np.ndarray:
    """Distances (µm) between where each later session's registration puts the true points
    ``base_um`` (id -> (3,) µm, first session's frame) and where they are: for every later
    session, the points moved by its true map (``truths[k].from_first``) and mapped back by
    the estimated one; only points inside both fields."""
    w = np.array(list(base_um.values())).reshape(-1, 3)
    out = []
    extent0 = result.registrations[0].fixed_extent_um
    for k in range(1, len(truths)):
        q = truths[k].from_first(w)
        reg = result.registrations[k]
        ok = np.all((w[:, 1:] >= 0) & (w[:, 1:] <= extent0[1:]), axis=1)
        ok &= np.all((q[:, 1:] >= 0) & (q[:, 1:] <= reg.moving_extent_um[1:]), axis=1)
        out.append(np.linalg.norm(reg.inverse(q[ok]) - w[ok], axis=1))
    return np.concatenate(out) if out else np.zeros(0)
