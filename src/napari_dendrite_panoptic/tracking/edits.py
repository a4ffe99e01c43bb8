"""Hand corrections of a tracked series: merge two ids into one (the same spine, in every
session) and split an id (the spine in chosen sessions is another spine, with a new id). The
labels, the spine table and the turnover table follow; the calls of the edited ids are worked
out again from the sessions each id is in (``first``, ``stable``, ``gained``, ``lost``,
``missed`` in a session between two where it is), and their fates follow the calls (a call
the edit did not change keeps its fate)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from ..errors import InputError
from .track import TrackResult, _table, turnover_table

_ABSENT = ("lost", "missed")


def _rows(table: dict[str, np.ndarray]) -> list[dict]:
    keys = list(table)
    return [dict(zip(keys, vals, strict=True)) for vals in zip(*table.values(), strict=True)]


def _present(rows: list[dict], sid: int) -> dict[int, dict]:
    return {int(r["session"]): r for r in rows if r["id"] == sid and r["call"] not in _ABSENT}


def _recalled(result: TrackResult, rows: list[dict], sid: int) -> list[dict]:
    """``rows`` with those of ``sid`` worked out again from the sessions it is in."""
    n = len(result.sessions)
    old = {(int(r["session"]), r["call"]): r for r in rows if r["id"] == sid}
    here = _present(rows, sid)
    out = [r for r in rows if r["id"] != sid]
    if not here:
        return out
    seen = sorted(here)
    for s in range(1, n + 1):
        if s in here:
            if s == 1:
                call = "first"
            elif s - 1 in here or any(p < s for p in seen):
                call = "stable"
            else:
                call = "gained"
            row = dict(here[s])
        else:
            before = [p for p in seen if p < s]
            if not before:
                continue
            if any(p > s for p in seen):
                call = "missed"
            elif s - 1 in here:
                call = "lost"
            else:
                continue
            row = _absent_row(result, here[before[-1]], s)
        kept = old.get((s, call))
        if kept is not None and kept["call"] == call:
            row["fate"] = kept["fate"]
        else:
            row["fate"] = "uncertain" if call == "missed" else call
            if call != "stable":
                row["match_distance_um"] = np.nan
        row["call"] = call
        row["id"] = sid
        out.append(row)
    return out


def _absent_row(result: TrackResult, last: dict, s: int) -> dict:
    """The row of a spine not in session ``s``, at the place (session s's frame) where it was."""
    sess = result.sessions[s - 1]
    first = np.array([[last["first_z_um"], last["first_y_um"], last["first_x_um"]]], float)
    at = result.registrations[s - 1].forward(first)[0]
    row = dict(last)
    row.update(
        session=s,
        session_name=sess.name,
        day=np.nan if sess.day is None else float(sess.day),
        label=0,
        z_um=at[0],
        y_um=at[1],
        x_um=at[2],
    )
    return row


def _rebuilt(result: TrackResult, labels: list[np.ndarray], rows: list[dict]) -> TrackResult:
    table = _table(rows)
    days = [s.day for s in result.sessions]
    turnover = turnover_table(table, result.skeleton, days)
    return replace(result, labels=labels, spines=table, turnover=turnover)


def merge_ids(result: TrackResult, keep: int, other: int) -> TrackResult:
    """``result`` with spine ``other`` given the id ``keep`` in every session. Refused (one line)
    when both ids are in one session (a spine is not two spines at once)."""
    keep, other = int(keep), int(other)
    rows = _rows(result.spines)
    a, b = _present(rows, keep), _present(rows, other)
    if not a or not b:
        missing = keep if not a else other
        raise InputError(f"no spine with id {missing} in the series")
    both = sorted(set(a) & set(b))
    if keep == other or both:
        raise InputError(
            f"ids {keep} and {other} are both in session {both[0]}: they are two spines"
            if both
            else "choose two different ids to merge"
        )
    rows = [r for r in rows if not (r["id"] == other and r["call"] in _ABSENT)]
    for r in rows:
        if r["id"] == other:
            r["id"] = keep
    labels = [np.where(lab == other, keep, lab).astype(lab.dtype) for lab in result.labels]
    return _rebuilt(result, labels, _recalled(result, rows, keep))


def split_id(result: TrackResult, sid: int, sessions: Iterable[int]) -> tuple[TrackResult, int]:
    """``result`` with spine ``sid`` in ``sessions`` (numbered from 1, as in the table) given a
    new id; returns the result and the new id."""
    sid = int(sid)
    chosen = {int(s) for s in sessions}
    rows = _rows(result.spines)
    here = _present(rows, sid)
    if not chosen or not chosen <= set(here):
        raise InputError(f"spine {sid} is not in session(s) {sorted(chosen - set(here))}")
    if chosen == set(here):
        raise InputError(f"spine {sid} is in no other session: nothing to split from")
    new = int(max(int(result.spines["id"].max()), *(int(lab.max()) for lab in result.labels))) + 1
    rows = [r for r in rows if not (r["id"] == sid and r["call"] in _ABSENT)]
    for r in rows:
        if r["id"] == sid and int(r["session"]) in chosen:
            r["id"] = new
    labels = [
        np.where(lab == sid, new, lab).astype(lab.dtype) if k + 1 in chosen else lab
        for k, lab in enumerate(result.labels)
    ]
    rows = _recalled(result, _recalled(result, rows, sid), new)
    return _rebuilt(result, labels, rows), new
