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
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import DendritePanopticError, InputError
from .batch_summary import FileOutcome, failed_outcome, summarise_outputs

logger = logging.getLogger(__name__)

SegmentFile = Callable[..., dict[str, Path]]
"""``(path, args, cfg, models, bar_factory) -> {kind: written path}``: one file's segmentation."""

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


class _NoBar:
    """A progress bar that shows nothing (per-file tile bars are off on cluster workers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.n = 0

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def segment_one(
    segment_file: SegmentFile,
    path: Path,
    args: argparse.Namespace,
    cfg: Any,
    models: Any = None,
    bar_factory: Callable[..., Any] = _NoBar,
) -> FileOutcome:
    """Segment one file with ``segment_file`` and summarise its outputs; never raises for a
    problem with this file (it is returned as a failed :class:`FileOutcome`).

    ``models`` None loads ``cfg.model`` on ``cfg.device`` (cached per process), as a cluster
    worker does.
    """
    try:
        if models is None:
            from ..models import load_models

            models = load_models(cfg.model, cfg.device)
        written = segment_file(Path(path), args, cfg, models, bar_factory)
        return summarise_outputs(Path(path), written)
    except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the batch
        if not isinstance(exc, DendritePanopticError):
            logger.debug("%s failed", path, exc_info=True)
        return failed_outcome(Path(path), exc)


def _worker_args(args: argparse.Namespace) -> argparse.Namespace:
    """The parsed arguments for cluster workers: without the command function, with absolute
    paths (a worker's current folder is not ours)."""
    values = {k: v for k, v in vars(args).items() if k != "func"}
    for key in ("out", "from_run"):
        if values.get(key):
            values[key] = str(Path(values[key]).resolve())
    return argparse.Namespace(**values)


def _worker_config(cfg: Any) -> Any:
    """The job's config with an absolute model folder (None stays the bundled model)."""
    from dataclasses import replace

    if getattr(cfg, "model", None):
        return replace(cfg, model=str(Path(cfg.model).resolve()))
    return cfg


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
            _run_on_dask(segment_file, paths, args, cfg, workers, scheduler, processes, finished)
    finally:
        if outer is not None:
            outer.close()
    return [outcomes[i] for i in range(len(paths))]


def _inner_bar(bar_factory: Callable[..., Any] | None, leave: bool) -> Callable[..., Any]:
    """Per-file tile bars: none without a factory; below the files bar they vanish when done."""
    if bar_factory is None:
        return _NoBar

    def factory(**kwargs: Any) -> Any:
        return bar_factory(leave=leave, **kwargs)

    return factory


def _run_on_dask(
    segment_file: SegmentFile,
    paths: list[Path],
    args: argparse.Namespace,
    cfg: Any,
    workers: int,
    scheduler: str | None,
    processes: bool,
    finished: Callable[[int, FileOutcome], None],
) -> None:
    """Submit one task per file to a Dask cluster and collect outcomes as they complete."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise DendritePanopticError(
            "parallel batches need dask.distributed: pip install 'dask[distributed]'"
        ) from None
    if not logging.getLogger("napari_dendrite_panoptic").isEnabledFor(logging.INFO):
        logging.getLogger("distributed").setLevel(logging.WARNING)  # no start-up chatter
    cluster = None
    torch_threads = None
    if scheduler is not None:
        client = _connect(Client, scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            host="127.0.0.1",
            protocol="tcp",
            dashboard_address=None,
        )
        client = Client(cluster)
        # the workers share this machine's cores instead of each taking them all
        torch_threads = max(1, (os.cpu_count() or 1) // workers) if processes else None
    try:
        wargs, wcfg = _worker_args(args), _worker_config(cfg)
        futures = {
            client.submit(
                _cluster_task,
                segment_file,
                str(p.resolve()),
                wargs,
                wcfg,
                torch_threads,
                pure=False,
            ): i
            for i, p in enumerate(paths)
        }
        for future in as_completed(futures):
            index = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails this file only
                outcome = failed_outcome(paths[index].resolve(), exc)
            finished(index, outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


SCHEDULER_TIMEOUT_S = 5.0
"""How long ``--scheduler`` may take to answer before the run is refused."""


def _connect(client_class: Any, scheduler: str) -> Any:
    """A Dask client of ``scheduler``, or a :class:`DendritePanopticError` within
    :data:`SCHEDULER_TIMEOUT_S` (plus a second) for an address that is malformed, refuses, or
    accepts the connection and never answers (Dask's own timeout does not cover that; the
    attempt is left to a background thread, which ends with this process)."""
    import threading

    box: dict[str, Any] = {}

    def attempt() -> None:
        try:
            box["client"] = client_class(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S:g}s")
        except Exception as exc:  # noqa: BLE001 - reported below in words
            box["error"] = exc

    thread = threading.Thread(target=attempt, name="dask-connect", daemon=True)
    thread.start()
    thread.join(SCHEDULER_TIMEOUT_S + 1.0)
    if "client" in box:
        return box["client"]
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, ValueError):
            why = f"it is not a scheduler address ({exc}); use tcp://HOST:PORT"
        else:
            why = str(exc) or type(exc).__name__
        raise DendritePanopticError(f"cannot reach the Dask scheduler at {scheduler}: {why}")
    raise DendritePanopticError(
        f"cannot reach the Dask scheduler at {scheduler}: no answer within "
        f"{SCHEDULER_TIMEOUT_S:g} s (is it a Dask scheduler?)"
    )


def _cluster_task(
    segment_file: SegmentFile,
    path: str,
    args: argparse.Namespace,
    cfg: Any,
    torch_threads: int | None,
) -> FileOutcome:
    """One file on a Dask worker (models loaded once per worker process, then cached)."""
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    return segment_one(segment_file, Path(path), args, cfg)
