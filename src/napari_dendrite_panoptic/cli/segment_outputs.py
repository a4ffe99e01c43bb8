"""The files ``segment`` writes for one input stem, all or nothing: their names
(:func:`output_paths`), a lock on the stem (:func:`claim`), a hidden staging folder in ``--out``
(:func:`staging`) where the labels, tables, ROI set, overlay and run record are written
(:func:`write_outputs`, or :func:`write_low_memory` plane by plane) and from which they move into
place together, the run record last, when the block ends (a set without its run record is
refused); and the checks of ``--out`` before any work.

Heavy modules (numpy, the engine's writers) are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import LABEL_HASHES
from ..errors import InputError, OutputExistsError

if TYPE_CHECKING:
    from ..inference import PanopticResult


def output_paths(out: Path, stem: str, overlay: bool) -> dict[str, Path]:
    """The outputs of ``stem`` in ``out`` by kind, in the order they are listed to the user; the
    analysis files are named by :func:`..analysis.analysis_paths`."""
    from ..analysis import analysis_paths

    analysis = analysis_paths(out, stem)
    paths = {
        "dendrite": out / f"{stem}_dendrite.tif",
        "spines": out / f"{stem}_spines.tif",
        "csv": analysis["csv"],
        "run": out / f"{stem}_run.json",
        "dendrites_csv": analysis["dendrites_csv"],
        "roi": analysis["roi"],
    }
    if overlay:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` that exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file, not a folder; name a folder")


def writable_out_folder(out: Path) -> None:
    """Create ``--out`` and check that files can be written in it, before any work."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise InputError(
            f"cannot write to --out '{out}': {exc.strerror or exc}; choose another folder"
        ) from None


@contextlib.contextmanager
def claim(out: Path, stem: str) -> Iterator[None]:
    """Hold this stem's outputs in ``out`` for this process: an exclusive lock on the hidden
    ``.<stem>.lock`` (released by the system if the process dies), so two ``segment`` runs never
    write one stem's outputs at once."""
    from filelock import FileLock, Timeout

    lock = FileLock(out / f".{stem[:200]}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputExistsError(
            f"another dendrite-panoptic process is writing the outputs of '{stem}' in '{out}' "
            "now; wait for it to finish or choose another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


def refuse_existing(out: Path, stem: str, overwrite: bool) -> None:
    """Refuse to replace any output of ``stem`` in ``out`` (overlay included) without
    ``--overwrite``."""
    existing = [p for p in output_paths(out, stem, True).values() if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{existing[0]} exists already; pass --overwrite to replace it or choose another --out"
        )


def staging(out: Path, stem: str) -> contextlib.AbstractContextManager[Path]:
    """A hidden folder in ``out`` where one stem's new outputs are written under their final
    names. When the block ends without an error they replace the stem's outputs
    (:func:`..core.staged_outputs`; refused, nothing moved, without a run record): the old run
    record goes first (a stem without one is
    incomplete), then every old output the new run does not write, then the new files, the run
    record last. The folder is removed afterwards, or on a failure (a killed run leaves it,
    hidden)."""
    from ..core import staged_outputs

    final = output_paths(out, stem, True)
    return staged_outputs(final, prefix=f".{stem[:100]}.", suffix=".new", record="run")


def write_low_memory(
    path: Path, outputs: dict[str, Path], result: PanopticResult, sink: Any, meta: dict
) -> dict[str, Path]:
    """A low-memory run's outputs: labels streamed plane by plane from the sink, the spine
    table and the run record (last); the analysis and overlay are skipped, with a note."""
    import json

    from ..core import atomic_write_text
    from ..data import plane_hash
    from ..io import write_labels_tiff, write_table_csv

    meta["low_memory"] = True
    meta[LABEL_HASHES] = {
        role: [plane_hash(p) for p in sink.stream(role).planes()] for role in ("dendrite", "spines")
    }
    write_labels_tiff(outputs["dendrite"], sink.stream("dendrite"), result.voxel_size_um, meta)
    write_labels_tiff(outputs["spines"], sink.stream("spines"), result.voxel_size_um, meta)
    write_table_csv(outputs["csv"], result.table)
    print(
        f"dendrite-panoptic: {path.name}: low-memory run (results written plane by "
        "plane); the spine analysis, branch table, ROI set and overlay are skipped: "
        "run them on a crop or in napari",
        file=sys.stderr,
    )
    atomic_write_text(outputs["run"], json.dumps(meta, indent=2, default=str))
    return {k: v for k, v in outputs.items() if k in ("dendrite", "spines", "csv", "run")}


def write_outputs(
    path: Path,
    outputs: dict[str, Path],
    result: PanopticResult,
    volume: Any,
    squeeze: bool,
    overlay: bool,
    meta: dict,
) -> None:
    """Labels (2D for a 2D input), the spine analysis (tables, ROI set), the overlay, and the
    run record last."""
    import json

    import numpy as np

    from ..analysis import write_analysis_outputs
    from ..core import atomic_write_text
    from ..data import plane_hashes
    from ..io import overlay_rgb, save_png, write_labels_tiff

    dendrite = result.dendrite[0] if squeeze else result.dendrite
    spines = result.spines[0] if squeeze else result.spines
    meta[LABEL_HASHES] = {"dendrite": plane_hashes(dendrite), "spines": plane_hashes(spines)}
    write_labels_tiff(outputs["dendrite"], dendrite.astype(np.uint8), result.voxel_size_um, meta)
    write_labels_tiff(outputs["spines"], spines, result.voxel_size_um, meta)
    write_analysis_outputs(
        outputs["csv"].parent,
        path.stem,
        result.dendrite,
        result.spines,
        result.voxel_size_um,
        volume,
        base_table=result.table,
    )
    if overlay:
        save_png(outputs["overlay"], overlay_rgb(volume, result.dendrite, result.spines))
    atomic_write_text(outputs["run"], json.dumps(meta, indent=2, default=str))
