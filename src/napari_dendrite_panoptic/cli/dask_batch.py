"""The Dask side of a ``segment`` batch: one task per file on a local ``dask.distributed``
cluster (``--workers``) or on an existing scheduler (``--scheduler tcp://host:port``), the
outcomes collected as they complete; a lost worker fails its file only. ``distributed`` is
imported only when a cluster is asked for. Never imports napari or Qt.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DendritePanopticError
from .batch_file import SegmentFile, segment_one
from .batch_summary import FileOutcome, failed_outcome

SCHEDULER_TIMEOUT_S = 5.0
"""How long ``--scheduler`` may take to answer before the run is refused."""


def run_on_dask(
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
    client, cluster, torch_threads = _start(Client, LocalCluster, workers, scheduler, processes)
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


def _start(
    client_class: Any, cluster_class: Any, workers: int, scheduler: str | None, processes: bool
) -> tuple[Any, Any, int | None]:
    """A client of ``scheduler`` (no cluster of ours), else of a new local cluster of
    ``workers``; with the torch threads each local worker process may take (None: no limit)."""
    if scheduler is not None:
        return _connect(client_class, scheduler), None, None
    cluster = cluster_class(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        host="127.0.0.1",
        protocol="tcp",
        dashboard_address=None,
    )
    client = client_class(cluster)
    # the workers share this machine's cores instead of each taking them all
    torch_threads = max(1, (os.cpu_count() or 1) // workers) if processes else None
    return client, cluster, torch_threads


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
