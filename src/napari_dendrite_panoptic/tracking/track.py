"""Tracking spines over sessions: register every session to the first, match consecutive sessions
along the dendrite, give each spine one id for the whole series and each session pair its fates,
and count gains and losses per branch.

Fates (``fate`` column) of a spine from one session to the next: ``stable`` (matched),
``gained`` (in the later session only), ``lost`` (in the earlier one only) and ``uncertain``
where the call (kept in the ``call`` column) rests on little: a detection score under
``uncertain_score``, a registration that matched poorly there, a spine at or beyond the other
session's field border, or a match farther than ``0.7 * max_distance_um``. The first session's
spines have the fate ``first``.

Each session is matched against the session before and against the spines missed there (last
seen up to ``max_gap`` sessions earlier). A spine found again keeps its id; in the sessions that
missed it its row has the call ``missed`` and the fate ``uncertain`` (not lost, then gained).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..analysis import DendriteSkeleton, skeletonize_dendrite
from ..core import ratio
from ..errors import InputError
from .matching import MAX_DISTANCE_UM, ShaftPlace, assign, match_cost, shaft_place
from .registration import Registration, register
from .session import Session, SpineFeatures, spine_features, voxel_differs

logger = logging.getLogger(__name__)

FATES = ("first", "stable", "gained", "lost", "uncertain")
CALLS = ("first", "stable", "gained", "lost", "missed")
GAP_PENALTY_UM = 0.25
"""Added to the cost of pairing with a spine per session it was missed: a spine seen in the
session before wins a tie."""


@dataclass(frozen=True)
class TrackConfig:
    """Tracking settings: ``max_distance_um`` the farthest two sessions' spines may be and still
    be one spine; ``uncertain_score`` detection scores below it make a call uncertain;
    ``uncertain_quality`` registration match quality (0-1) below it does too; ``border_um`` a
    spine this close to the other session's field border is uncertain when gained or lost;
    ``max_gap`` how many sessions in a row a spine may be missed and, found again, keep its id
    (0: only consecutive sessions are matched)."""

    max_distance_um: float = MAX_DISTANCE_UM
    uncertain_score: float = 0.5
    uncertain_quality: float = 0.5
    border_um: float = 1.0
    max_gap: int = 1

    def __post_init__(self) -> None:
        d = self.max_distance_um
        if not (isinstance(d, int | float) and np.isfinite(d) and d > 0):
            raise InputError(
                f"the farthest a spine may move between sessions must be a positive "
                f"number of µm, not {d!r}"
            )
        g = self.max_gap
        if isinstance(g, bool) or not isinstance(g, int | np.integer) or g < 0:
            raise InputError(
                f"the sessions a spine may be missed must be a whole number, 0 or more, not {g!r}"
            )


@dataclass(frozen=True)
class TrackProgress:
    """One step of a tracking run: ``step`` (words), ``done`` of ``total`` steps."""

    step: str
    done: int
    total: int


@dataclass
class TrackResult:
    """The tracked series.

    ``labels`` one (Z, Y, X) uint32 per session, each spine carrying its id of the whole series
    (on the session's own grid; a resampled session on the first's voxel size); ``registrations``
    one :class:`Registration` per session (first frame -> session, µm); ``spines`` the table of
    ``spines_over_time.csv`` and ``turnover`` that of ``turnover.csv`` (column dicts, units in the
    names); ``notes`` what was done to the input (resampling), for the run record.
    """

    sessions: list[Session]
    labels: list[np.ndarray]
    registrations: list[Registration]
    spines: dict[str, np.ndarray]
    turnover: dict[str, np.ndarray]
    skeleton: DendriteSkeleton
    notes: list[str] = field(default_factory=list)

    def events(self, fate: str) -> dict[str, np.ndarray]:
        """Rows of the spine table with this ``fate`` (or ``call``, for ``gained``/``lost``)."""
        t = self.spines
        pick = (t["fate"] == fate) | ((t["call"] == fate) if fate in ("gained", "lost") else False)
        return {k: v[pick] for k, v in t.items()}


def _name(s: Session, k: int) -> str:
    return f"session {k + 1} ({s.name})" if s.name else f"session {k + 1}"


def _checked(sessions: list[Session]) -> tuple[list[Session], list[str]]:
    if len(sessions) < 2:
        raise InputError("tracking needs at least two sessions")
    planar = {s.spines.shape[0] == 1 for s in sessions}
    if len(planar) > 1:
        raise InputError("tracking needs all sessions as planes or all as stacks, not a mix")
    first = sessions[0].voxel_size_um
    out, notes = [sessions[0]], []
    for k, s in enumerate(sessions[1:], start=1):
        if voxel_differs(s.voxel_size_um, first, s.spines.shape[0] == 1):
            note = (
                f"{_name(s, k)}: voxel size {tuple(round(v, 4) for v in s.voxel_size_um)} µm "
                f"resampled to the first session's {tuple(round(v, 4) for v in first)} µm"
            )
            logger.warning(note)
            notes.append(note)
            s = s.resampled_to(first)
        out.append(s)
    return out, notes


def iter_track(
    sessions: list[Session], config: TrackConfig | None = None
) -> Iterator[TrackProgress | TrackResult]:
    """Track spines over ``sessions`` (the first is the reference frame), yielding
    :class:`TrackProgress` after each step and the :class:`TrackResult` last. Stop iterating to
    cancel. Raises :class:`~.registration.RegistrationError` naming the pair that fails."""
    cfg = config or TrackConfig()
    sessions, notes = _checked(list(sessions))
    n = len(sessions)
    total = 2 * n + 1
    voxel = sessions[0].voxel_size_um
    regs = [Registration.identity(np.asarray(sessions[0].spines.shape, float) * voxel)]
    fixed_img = sessions[0].registration_image()
    for k in range(1, n):
        yield TrackProgress(f"registering {_name(sessions[k], k)} to the first", k, total)
        pair = f"{_name(sessions[0], 0)} and {_name(sessions[k], k)}"
        regs.append(register(fixed_img, sessions[k].registration_image(), voxel, voxel, name=pair))
    yield TrackProgress("skeleton of the first session's dendrite", n, total)
    skeleton = skeletonize_dendrite(sessions[0].dendrite > 0, voxel)
    feats = [spine_features(s.spines, voxel) for s in sessions]
    for k in range(1, n):
        regs[k] = _refined_on_spines(regs[k], feats[0], feats[k], cfg)
    common: list[np.ndarray] = []
    places: list[ShaftPlace] = []
    for k in range(n):
        common.append(regs[k].inverse(feats[k].centroid_um))
        places.append(shaft_place(skeleton, common[-1]))
    ids: list[np.ndarray] = [np.arange(1, len(feats[0].labels) + 1)]
    rows: list[dict] = []
    next_id = len(feats[0].labels) + 1
    for i in range(len(feats[0].labels)):
        rows.append(
            _row(sessions, feats, common, places, 0, i, ids[0][i], "first", "first", np.nan)
        )
    quals = [regs[k].quality_at(common[k]) for k in range(n)]
    # ids not found in the session before: id -> (session, index) of their last sighting
    away: dict[int, tuple[int, int]] = {}
    lost_rows: dict[int, list[int]] = {}  # id -> rows of its "lost" call and later misses
    for k in range(1, n):
        yield TrackProgress(f"matching {_name(sessions[k], k)} to the ones before", n + k, total)
        # candidates: the session before's spines, then spines last seen up to max_gap
        # sessions before it
        cand = [(k - 1, i) for i in range(len(feats[k - 1].labels))]
        cand += [at for sid, at in sorted(away.items()) if k - 1 - at[0] <= cfg.max_gap]
        cand_ids = [int(ids[s][i]) for s, i in cand]
        pos = np.array([common[s][i] for s, i in cand]).reshape(-1, 3)
        place = _places_of(places, cand)
        cost, dist = match_cost(pos, common[k], place, places[k])
        gap = np.array([k - 1 - s for s, _ in cand], float)
        cost = cost + GAP_PENALTY_UM * gap[:, None]
        pairs = assign(cost, dist, cfg.max_distance_um)
        new_ids = np.zeros(len(feats[k].labels), dtype=np.int64)
        matched_a = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))
        matched_b = {b: a for a, b in matched_a.items()}
        qual_b = quals[k]
        for j in range(len(feats[k].labels)):
            if j in matched_b:
                c = matched_b[j]
                s, i = cand[c]
                new_ids[j] = cand_ids[c]
                d = float(dist[c, j])
                doubt = d > 0.7 * cfg.max_distance_um
                doubt |= _low_score(sessions[s], feats[s], i, cfg)
                doubt |= _low_score(sessions[k], feats[k], j, cfg)
                doubt |= min(quals[s][i], qual_b[j]) < cfg.uncertain_quality
                call = "stable"
                if s < k - 1:  # found again: the sessions between missed it
                    for r in lost_rows.pop(cand_ids[c], []):
                        rows[r].update(fate="uncertain", call="missed")
                    for m in range(s + 2, k):  # missed more than once: rows for those too
                        row = _lost_row(sessions, feats, common, places, regs, m, i, 0, True, s)
                        rows.append({**row, "id": cand_ids[c], "call": "missed"})
                    away.pop(cand_ids[c], None)
            else:
                new_ids[j] = next_id
                next_id += 1
                d = np.nan
                doubt = _low_score(sessions[k], feats[k], j, cfg)
                doubt |= qual_b[j] < cfg.uncertain_quality
                doubt |= not regs[k - 1].inside_moving(common[k][j : j + 1], cfg.border_um)[0]
                call = "gained"
            fate = "uncertain" if doubt else call
            rows.append(_row(sessions, feats, common, places, k, j, new_ids[j], fate, call, d))
        for c, (s, i) in enumerate(cand):
            if c in matched_a:
                continue
            sid = cand_ids[c]
            if s < k - 1:  # still away: a candidate for the next session, if within the gap
                if k - s > cfg.max_gap:
                    away.pop(sid, None)
                    lost_rows.pop(sid, None)
                continue
            doubt = _low_score(sessions[s], feats[s], i, cfg)
            doubt |= quals[s][i] < cfg.uncertain_quality
            doubt |= not regs[k].inside_moving(common[s][i : i + 1], cfg.border_um)[0]
            lost_rows[sid] = [len(rows)]
            rows.append(_lost_row(sessions, feats, common, places, regs, k, i, sid, doubt, s))
            if cfg.max_gap > 0:
                away[sid] = (s, i)
        ids.append(new_ids)
    yield TrackProgress("persistent labels and tables", 2 * n, total)
    labels = [_relabel(s.spines, f.labels, i) for s, f, i in zip(sessions, feats, ids, strict=True)]
    table = _table(rows)
    turnover = turnover_table(table, skeleton, [s.day for s in sessions])
    yield TrackResult(sessions, labels, regs, table, turnover, skeleton, notes)


def _places_of(places: list[ShaftPlace], cand: list[tuple[int, int]]) -> ShaftPlace:
    """The :class:`ShaftPlace` of the (session, index) spines ``cand``."""

    def col(name: str, dtype) -> np.ndarray:
        return np.array([getattr(places[s], name)[i] for s, i in cand], dtype=dtype)

    return ShaftPlace(
        col("branch", np.int64), col("along_um", float), col("side", float), col("offset_um", float)
    )


def _refined_on_spines(reg, first: SpineFeatures, other: SpineFeatures, cfg) -> Registration:
    """The registration moved by the median offset between the first session's spines and
    their partners (a straight shaft does not fix a shift along itself; spines do)."""
    p0 = first.centroid_um
    for _ in range(2):
        pk = reg.inverse(other.centroid_um)
        d = p0[:, None, :] - pk[None, :, :]
        d[..., 0] *= 0.5
        dist = np.sqrt((d**2).sum(-1))
        pairs = assign(dist, dist, cfg.max_distance_um)
        if len(pairs) < 3:
            break
        shift = np.median(p0[pairs[:, 0]] - pk[pairs[:, 1]], axis=0)
        reg = reg.moved_by(shift)
        if np.linalg.norm(shift) < 0.02:
            break
    return reg


def track(sessions: list[Session], config: TrackConfig | None = None) -> TrackResult:
    """Run :func:`iter_track` to the end and return its :class:`TrackResult`."""
    result = None
    for item in iter_track(sessions, config):
        result = item
    assert isinstance(result, TrackResult)
    return result


def _low_score(s: Session, f: SpineFeatures, i: int, cfg: TrackConfig) -> bool:
    score = s.scores.get(int(f.labels[i]))
    return score is not None and np.isfinite(score) and score < cfg.uncertain_score


def _size(s: Session, f: SpineFeatures, i: int) -> float:
    vz, vy, vx = s.voxel_size_um
    return float(f.size[i] * vy * vx * (vz if s.spines.shape[0] > 1 else 1.0))


def _row(sessions, feats, common, places, k, i, sid, fate, call, d) -> dict:
    s, f, pl = sessions[k], feats[k], places[k]
    return {
        "id": int(sid),
        "session": k + 1,
        "session_name": s.name,
        "day": np.nan if s.day is None else float(s.day),
        "fate": fate,
        "call": call,
        "label": int(f.labels[i]),
        "z_um": f.centroid_um[i, 0],
        "y_um": f.centroid_um[i, 1],
        "x_um": f.centroid_um[i, 2],
        "first_z_um": common[k][i, 0],
        "first_y_um": common[k][i, 1],
        "first_x_um": common[k][i, 2],
        "size_um3" if s.spines.shape[0] > 1 else "size_um2": _size(s, f, i),
        "type": s.types.get(int(f.labels[i]), ""),
        "score": float(s.scores.get(int(f.labels[i]), np.nan)),
        "branch_id": int(pl.branch[i]),
        "along_branch_um": float(pl.along_um[i]),
        "side": int(pl.side[i]),
        "match_distance_um": d,
    }


def _lost_row(sessions, feats, common, places, regs, k, i, sid, doubt, src) -> dict:
    """Spine ``i`` of session ``src`` (before k) not found in session k: listed in session k,
    at the place (session k's frame) where it was."""
    row = _row(
        sessions,
        feats,
        common,
        places,
        src,
        i,
        sid,
        "uncertain" if doubt else "lost",
        "lost",
        np.nan,
    )
    s = sessions[k]
    at = regs[k].forward(common[src][i : i + 1])[0]
    row.update(
        session=k + 1,
        session_name=s.name,
        day=np.nan if s.day is None else float(s.day),
        label=0,
        z_um=at[0],
        y_um=at[1],
        x_um=at[2],
    )
    return row


def _table(rows: list[dict]) -> dict[str, np.ndarray]:
    cols = list(rows[0]) if rows else ["id", "session", "fate", "call"]
    size_cols = [c for c in ("size_um3", "size_um2") if any(c in r for r in rows)]
    cols = [c for c in cols if c not in ("size_um3", "size_um2")]
    cols[cols.index("first_x_um") + 1 : cols.index("first_x_um") + 1] = size_cols
    order = sorted(range(len(rows)), key=lambda r: (rows[r]["session"], rows[r]["id"]))
    out = {}
    for c in cols:
        vals = [rows[r].get(c, np.nan) for r in order]
        out[c] = np.array(
            vals, dtype=object if c in ("fate", "call", "type", "session_name") else None
        )
    for c in ("fate", "call", "type", "session_name"):
        if c in out:
            out[c] = out[c].astype(str)
    return out


def _relabel(spines: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    lut = np.zeros(int(spines.max()) + 1 if spines.size else 1, dtype=np.uint32)
    lut[labels] = ids
    return lut[spines]


def turnover_table(
    table: dict[str, np.ndarray], skeleton: DendriteSkeleton, days: list[float | None]
) -> dict[str, np.ndarray]:
    """Per branch of the first session's skeleton (``branch_id`` 0: the whole dendrite) and
    consecutive session pair: counts (before, after, stable, gained, lost, uncertain; gained and
    lost count the calls, uncertain ones included), gains and losses per µm and per µm per day,
    ``survival`` (the fraction of the first session's spines still there) and ``turnover``
    ((gained + lost) / (before + after))."""
    lengths = {b.id: b.length_um for b in skeleton.branches}
    lengths[0] = skeleton.length_um
    sessions = sorted(set(table["session"].tolist())) if len(table["session"]) else []
    n_sessions = max(len(days), max(sessions, default=0))
    first_ids: dict[int, set] = {}
    present: dict[tuple[int, int], set] = {}
    cols: dict[str, list] = {
        k: []
        for k in (
            "branch_id",
            "session_from",
            "session_to",
            "day_from",
            "day_to",
            "length_um",
            "n_before",
            "n_after",
            "n_stable",
            "n_gained",
            "n_lost",
            "n_uncertain",
            "gained_per_um",
            "lost_per_um",
            "gained_per_um_per_day",
            "lost_per_um_per_day",
            "survival",
            "turnover",
        )
    }
    here = table["call"] != "lost"
    for bid in sorted(lengths):
        on = (table["branch_id"] == bid) if bid else np.ones(len(table["id"]), bool)
        for s in range(1, n_sessions + 1):
            present[(bid, s)] = set(table["id"][on & here & (table["session"] == s)].tolist())
        first_ids[bid] = present[(bid, 1)]
        for s in range(2, n_sessions + 1):
            at = on & (table["session"] == s)
            gained = int((at & (table["call"] == "gained")).sum())
            lost = int((at & (table["call"] == "lost")).sum())
            stable = int((at & (table["call"] == "stable")).sum())
            unsure = int((at & (table["fate"] == "uncertain")).sum())
            before, after = len(present[(bid, s - 1)]), len(present[(bid, s)])
            d0, d1 = (
                days[s - 2] if s - 2 < len(days) else None,
                days[s - 1] if s - 1 < len(days) else None,
            )
            span = (d1 - d0) if d0 is not None and d1 is not None else np.nan
            length = lengths.get(bid, np.nan)
            vals = (
                bid,
                s - 1,
                s,
                np.nan if d0 is None else d0,
                np.nan if d1 is None else d1,
                length,
                before,
                after,
                stable,
                gained,
                lost,
                unsure,
                ratio(gained, length),
                ratio(lost, length),
                ratio(gained, length * span),
                ratio(lost, length * span),
                ratio(len(first_ids[bid] & present[(bid, s)]), len(first_ids[bid])),
                ratio(gained + lost, before + after),
            )
            for key, v in zip(cols, vals, strict=True):
                cols[key].append(v)
    return {k: np.asarray(v) for k, v in cols.items()}
