"""One file of a ``segment`` batch, in this process or on a Dask worker: segmented with the
per-file function it is given, and turned into its row of the summary, never an exception.
Never imports napari or Qt.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DendritePanopticError
from .batch_summary import FileOutcome, failed_outcome, summarise_outputs

logger = logging.getLogger(__name__)

SegmentFile = Callable[..., dict[str, Path]]
"""``(path, args, cfg, models, bar_factory) -> {kind: written path}``: one file's segmentation."""


class NoBar:
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
    bar_factory: Callable[..., Any] = NoBar,
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
