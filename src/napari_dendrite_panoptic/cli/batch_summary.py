"""The rows of a ``segment`` batch and the summary table they make.

One :class:`FileOutcome` per input file: read back from the file's written outputs
(:func:`summarise_outputs`), so the summary says what the user will find on disk, or made from
its failure (:func:`failed_outcome`). :func:`write_summary_csv` writes one row per file (status
or error, shape, voxel size, spines, dendrite skeleton length in µm, spines per µm) atomically;
:func:`report_batch` prints the outcomes for the command line. Never imports napari or Qt.
"""

from __future__ import annotations

import argparse
import csv
import errno
import io as _io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import dendrite_length_um
from ..core import atomic_write_text
from ..errors import DendritePanopticError, InputError, OutputExistsError
from ..io import spreadsheet_safe

SUMMARY_COLUMNS = (
    "file",
    "status",
    "error",
    "shape",
    "voxel_size_z_um",
    "voxel_size_y_um",
    "voxel_size_x_um",
    "spines",
    "dendrite_length_um",
    "spines_per_um",
    "device",
    "warnings",
)


@dataclass
class FileOutcome:
    """What happened to one input file.

    ``status`` is "ok" or "failed" (then ``error`` says why, in words for the user). ``shape`` is
    the input's shape, ``voxel_size_um`` the (z, y, x) size used in µm, ``dendrite_length_um`` the
    length of the dendrite mask's skeleton in µm and ``spines_per_um`` spines per µm of it.
    """

    file: str
    status: str
    error: str = ""
    shape: tuple[int, ...] = ()
    voxel_size_um: tuple[float, float, float] | None = None
    spines: int | None = None
    dendrite_length_um: float | None = None
    spines_per_um: float | None = None
    device: str = ""
    warnings: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def summarise_outputs(path: Path, written: dict[str, Path]) -> FileOutcome:
    """A summary row from one file's written outputs: what the user will find on disk is what
    the summary says. The dendrite length is the total of ``<stem>_dendrites.csv`` (the branch
    table), else measured on the written dendrite mask; a low-memory run (results too big to
    hold) reports no length rather than loading them."""
    from ..io import read_tiff

    record = json.loads(Path(written["run"]).read_text(encoding="utf-8"))
    voxel = tuple(float(v) for v in record["pixel_size"]["used_um"])
    n_spines = int(record["spines_found"])
    branches = written.get("dendrites_csv")
    length: float | None
    if branches is not None and Path(branches).is_file():
        with open(branches, newline="", encoding="utf-8") as fh:
            length = float(sum(float(row["length_um"]) for row in csv.DictReader(fh)))
    elif record.get("low_memory"):
        length = None
    else:
        length = dendrite_length_um(np.asarray(read_tiff(written["dendrite"]).data), voxel)
    params = record.get("parameters", {})
    return FileOutcome(
        file=str(path),
        status="ok",
        shape=tuple(int(s) for s in record["input"]["shape"]),
        voxel_size_um=(voxel[0], voxel[1], voxel[2]),
        spines=n_spines,
        dendrite_length_um=length,
        spines_per_um=n_spines / length if length else None,
        device=str(params.get("device_used", "")),
        warnings=list(params.get("warnings", [])),
        outputs=[str(p) for p in written.values()],
    )


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full (numpy's short write says "N requested and M
    written" without an errno)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, OSError) and " requested and " in str(exc) and "written" in str(exc)


def failed_outcome(path: Path, exc: BaseException) -> FileOutcome:
    """The row of a file that failed with ``exc``: its message for the user (a full disk and a
    name too long for the file system said in words)."""
    plain = isinstance(exc, DendritePanopticError)
    text = str(exc) if plain else f"{type(exc).__name__}: {exc}"
    if disk_full(exc):
        text = (
            "the disk is full (no space left while writing its outputs); nothing of this file "
            f"was kept: free some space and run it again ({text})"
        )
    elif isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        text = f"its output names are too long for the file system; rename it shorter ({text})"
    return FileOutcome(file=str(path), status="failed", error=text)


def summary_path(args: argparse.Namespace, n_files: int) -> Path | None:
    """Where the batch summary goes: ``--summary``, else ``<out>/summary.csv`` for several
    files or a cluster run, else None.

    Raises
    ------
    OutputExistsError
        When it exists and ``--overwrite`` was not given (checked before any file is run).
    """
    chosen = getattr(args, "summary", None)
    parallel = getattr(args, "workers", 1) > 1 or getattr(args, "scheduler", None)
    if chosen is None and (n_files > 1 or parallel):
        chosen = Path(args.out) / "summary.csv"
    if chosen is None:
        return None
    chosen = Path(chosen)
    if chosen.is_dir():
        raise InputError(f"--summary '{chosen}' is a folder; name a .csv file")
    if chosen.exists() and not args.overwrite:
        raise OutputExistsError(
            f"{chosen} exists already; pass --overwrite to replace it or choose another --summary"
        )
    return chosen


def report_batch(outcomes: Sequence[FileOutcome], summary: Path | None, *, final: bool) -> int:
    """Print outcomes for the CLI: written paths on stdout, failures on stderr; at the end
    (``final``) write the summary CSV and list the failed files. Returns the number failed."""
    import sys

    from tqdm import tqdm

    failed = [o for o in outcomes if not o.ok]
    if not final:
        for o in outcomes:
            if o.ok:
                for line in o.outputs:
                    tqdm.write(line, file=sys.stdout)
            else:
                tqdm.write(f"dendrite-panoptic: {o.file}: {o.error}", file=sys.stderr)
        return len(failed)
    if failed and len(outcomes) > 1:
        print(f"dendrite-panoptic: {len(failed)} of {len(outcomes)} files failed:", file=sys.stderr)
        for o in failed:
            print(f"  {o.file}: {o.error}", file=sys.stderr)
    if summary is not None:
        try:
            write_summary_csv(summary, outcomes)
        except OSError as exc:
            why = "the disk is full" if disk_full(exc) else (exc.strerror or str(exc))
            print(
                f"dendrite-panoptic: cannot write the summary '{summary}': {why}; the files' own "
                "outputs are written",
                file=sys.stderr,
            )
            return max(1, len(failed))
        print(summary)
    return len(failed)


def write_summary_csv(path: str | os.PathLike[str], outcomes: Sequence[FileOutcome]) -> Path:
    """Write one row per file (columns :data:`SUMMARY_COLUMNS`; µm, spines per µm) atomically.

    Empty cells mean "not known" (a failed file, or no dendrite for the density).
    """

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.6g}"
        return str(value)

    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for o in outcomes:
        voxel = o.voxel_size_um or (None, None, None)
        writer.writerow(
            [
                spreadsheet_safe(o.file),
                o.status,
                spreadsheet_safe(o.error),
                "x".join(str(s) for s in o.shape),
                *(cell(v) for v in voxel),
                cell(o.spines),
                cell(o.dendrite_length_um),
                cell(o.spines_per_um),
                spreadsheet_safe(o.device),
                spreadsheet_safe(" | ".join(o.warnings)),
            ]
        )
    return atomic_write_text(path, buffer.getvalue())
