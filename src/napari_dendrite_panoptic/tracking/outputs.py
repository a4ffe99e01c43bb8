"""The files of a tracking run, written so that nothing lands under a final name until the whole
result is on disk: every file goes to a hidden folder inside the output folder first, then each is
renamed into place, the run record last (:func:`..core.staged_outputs`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core import atomic_write_text, staged_outputs
from ..errors import OutputExistsError
from ..io import write_labels_tiff, write_table_csv


def track_outputs(out: str | os.PathLike, names: list[str]) -> dict[str, Path]:
    """The paths a run writes in folder ``out`` for sessions named ``names``: one
    ``s<k>_<name>_spines_tracked.tif`` per session, ``spines_over_time.csv``, ``turnover.csv``,
    ``track_run.json``."""
    out = Path(out)
    paths = {
        f"labels_{k + 1}": out / f"s{k + 1}_{name or 'session'}_spines_tracked.tif"
        for k, name in enumerate(names)
    }
    paths["spines"] = out / "spines_over_time.csv"
    paths["turnover"] = out / "turnover.csv"
    paths["run"] = out / "track_run.json"
    return paths


def write_track_outputs(
    result, out: str | os.PathLike, record: dict[str, Any], overwrite: bool = False
) -> dict[str, Path]:
    """Write a :class:`~.track.TrackResult`: per-session (Z, Y, X) labels with the persistent
    ids (uint TIFF, voxel size in µm), the two tables (CSV) and the run ``record`` (JSON, with
    the result's notes added). Raises :class:`OutputExistsError` when a file exists and not
    ``overwrite``. Returns the written paths by key (see :func:`track_outputs`)."""
    paths = track_outputs(out, [s.name for s in result.sessions])
    if not overwrite:
        taken = [str(p) for p in paths.values() if p.exists()]
        if taken:
            raise OutputExistsError(f"{taken[0]} exists (use --overwrite to replace it)")
    # the old run record goes first and the new one (listed last) is renamed last: a run
    # killed between the renames leaves no record, so its folder reads as incomplete
    with staged_outputs(paths, prefix=".track-", record="run") as stage:
        staged = {k: stage / p.name for k, p in paths.items()}
        for k, (labels, s) in enumerate(zip(result.labels, result.sessions, strict=True)):
            meta = {"tracking": {"session": k + 1, "name": s.name, "day": s.day}}
            write_labels_tiff(staged[f"labels_{k + 1}"], labels, s.voxel_size_um, meta)
        write_table_csv(staged["spines"], result.spines)
        write_table_csv(staged["turnover"], result.turnover)
        record = dict(record, notes=list(result.notes))
        atomic_write_text(staged["run"], json.dumps(record, indent=2, default=str))
    return paths
