"""Batches for ``dendrite-panoptic segment``: many files, in this process or on a Dask cluster.

Inputs are files, folders (their ``*.tif``/``*.tiff``) or glob patterns. Files run one after the
other in this process, or in parallel on a local ``dask.distributed`` cluster (``workers > 1``)
or on an existing one (``scheduler="tcp://host:port"``). One file's failure is recorded and the
others go on; each file's outcome is a row of the summary table (:mod:`.batch_summary`).
This module never imports napari or Qt.
"""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .batch_file import NoBar, SegmentFile, segment_one
from .batch_summary import FileOutcome
from .dask_batch import run_on_dask

TIFF_SUFFIXES = (".tif", ".tiff")

OWN_OUTPUT_SUFFIXES = ("_dendrite.tif", "_spines.tif")
"""Names of the label TIFFs ``segment`` writes; beside a ``<stem>_run.json`` they are its own
outputs, not images to segment."""


def _own_output(path: Path) -> bool:
    """Whether ``path`` is a label TIFF this tool wrote (it has its run record beside it)."""
    for suffix in OWN_OUTPUT_SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)] + "_run.json").is_file()
    return False


def _absolute(path: Path) -> str:
    """A key for ``path`` that names one file once: its resolved path, or (a loop of symbolic
    links, which cannot be resolved) its absolute one."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path.absolute())


def expand_inputs(items: Iterable[str]) -> list[Path]:
    """Files named by ``items``: a file as it is, a folder's ``*.tif``/``*.tiff`` (sorted), a glob
    pattern's matches (sorted); duplicates dropped, order kept. A folder's own outputs of this
    tool (label TIFFs beside their run record) are skipped, with a line on stderr.

    Raises
    ------
    InputError
        When a folder holds no TIFF or a pattern or name matches nothing.
    """
    import sys

    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
            files = [p for p in files if p.is_file() and not p.name.startswith(".")]
            own = [p for p in files if _own_output(p)]
            if own:
                print(
                    f"dendrite-panoptic: skipping {len(own)} file(s) in '{path}' that are this "
                    f"tool's own outputs (e.g. {own[0].name})",
                    file=sys.stderr,
                )
                files = [p for p in files if p not in own]
            if not files:
                raise InputError(f"folder '{path}' holds no .tif or .tiff file")
        elif path.exists() or path.is_symlink():
            files = [path]
        elif glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not files:
                raise InputError(f"no file matches '{item}'")
        else:
            files = [path]  # reported as this file's failure ("does not exist")
        found.extend(files)
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(_absolute(p), p)
    return list(unique.values())


def check_stems(paths: Sequence[Path], out: str | os.PathLike[str]) -> None:
    """Refuse inputs whose outputs would share names in ``out`` (``a/x.tif`` and ``b/x.tif``, or
    ``x.tif`` and ``x.tiff``): one result would replace the other."""
    seen: dict[str, Path] = {}
    for p in paths:
        key = p.stem.casefold()  # case-insensitive file systems (macOS, Windows) clash too
        if key in seen:
            raise InputError(
                f"'{seen[key]}' and '{p}' would both write '{p.stem}_*' outputs in '{out}': "
                "segment them into different --out folders, or rename one"
            )
        seen[key] = p


def run_batch(
    segment_file: SegmentFile,
    paths: Sequence[Path],
    args: argparse.Namespace,
    cfg: Any,
    *,
    models: Any = None,
    workers: int = 1,
    scheduler: str | None = None,
    processes: bool = True,
    bar_factory: Callable[..., Any] | None = None,
    on_done: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """Segment ``paths``; returns one :class:`FileOutcome` per path, in input order.

    Parameters
    ----------
    segment_file
        Segments one file and returns its written outputs by kind
        (:func:`~napari_dendrite_panoptic.cli.segment.segment_file`); a module-level function,
        so that cluster workers can unpickle it.
    paths
        TIFF files (see :func:`expand_inputs`).
    args, cfg
        The ``segment`` command's parsed arguments (``out``, ``overwrite``, ``channel``, ...) and
        its ``InferenceConfig``.
    models
        Loaded models for the in-process run (ignored on a cluster: workers load ``cfg.model``).
    workers
        More than 1 starts a local Dask cluster with this many workers (one thread each).
    scheduler
        Address of an existing ``dask.distributed`` scheduler (``tcp://host:port``); wins over
        ``workers``.
    processes
        Local cluster workers as processes (default) or threads of this process.
    bar_factory
        ``tqdm``-like class for the progress across several files and of each file's tiles (in
        this process only); None for no bars.
    on_done
        Called with each outcome as it arrives (e.g. to print written paths).
    """
    paths = [Path(p) for p in paths]
    several = len(paths) > 1
    outer = (
        bar_factory(total=len(paths), desc="files", unit="file")
        if bar_factory and several
        else None
    )
    outcomes: dict[int, FileOutcome] = {}

    def finished(index: int, outcome: FileOutcome) -> None:
        outcomes[index] = outcome
        if outer is not None:
            outer.update(1)
            outer.set_postfix_str(f"{sum(not o.ok for o in outcomes.values())} failed")
        if on_done is not None:
            on_done(outcome)

    try:
        if scheduler is None and workers <= 1:
            inner = _inner_bar(bar_factory, leave=not several)
            for i, path in enumerate(paths):
                finished(i, segment_one(segment_file, path, args, cfg, models, inner))
        else:
            run_on_dask(segment_file, paths, args, cfg, workers, scheduler, processes, finished)
    finally:
        if outer is not None:
            outer.close()
    return [outcomes[i] for i in range(len(paths))]


def _inner_bar(bar_factory: Callable[..., Any] | None, leave: bool) -> Callable[..., Any]:
    """Per-file tile bars: none without a factory; below the files bar they vanish when done."""
    if bar_factory is None:
        return NoBar

    def factory(**kwargs: Any) -> Any:
        return bar_factory(leave=leave, **kwargs)

    return factory
