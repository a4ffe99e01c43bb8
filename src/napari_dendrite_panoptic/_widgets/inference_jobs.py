"""Worker bodies of the "Panoptic inference" dock: one run of the engine, or one run per time
point of a 4D+ layer. They run in a napari ``thread_worker``; what they yield and return is
shown by the dock on the GUI thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..errors import Cancelled, DendritePanopticError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failed:
    """The exception that stopped a job, wrapped: napari's worker drops a *returned* exception
    (a RuntimeError is taken for a deleted Qt object and no signal is sent at all)."""

    error: Exception


@dataclass(frozen=True)
class TimePoint:
    """Yielded after each time point of an all-time-points run: the dock says where it is."""

    done: str


def segment_job(
    image: Any, voxel: Any, config: Any, should_stop: Callable[[], bool]
) -> Iterator[Any]:
    """Worker body: yields the engine's progress events, returns its result or the exception
    that stopped it wrapped in :class:`Failed` (so that the GUI shows one clean message
    instead of a traceback)."""
    from ..inference import PanopticResult, iter_predict

    try:
        for event in iter_predict(image, voxel, config, should_stop=should_stop):
            if isinstance(event, PanopticResult):
                return event
            yield event
    except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
        if not isinstance(exc, DendritePanopticError):
            logger.exception("inference failed")
        return Failed(exc)
    return None


def series_job(
    data: Any,
    indices: list[tuple[int, ...]],
    voxel: Any,
    config: Any,
    should_stop: Callable[[], bool],
) -> Iterator[Any]:
    """Worker body for every time point of a 4D+ layer: one run per index on the leading axes,
    in this one worker; the progress messages name the time point. Returns the list of results,
    or the exception that stopped a run wrapped in :class:`Failed`
    (:class:`~napari_dendrite_panoptic.errors.Cancelled` when cancelled between runs)."""
    results = []
    for k, index in enumerate(indices):
        if should_stop():
            return Failed(Cancelled("cancelled"))
        where = f"Time point {index[0]} ({k + 1} of {len(indices)})"
        runs = segment_job(data[index], voxel, config, should_stop)
        try:
            while True:
                event = next(runs)
                text = f"{where}: {event.message}" if event.message else where
                yield replace(event, message=text)
        except StopIteration as stop:
            outcome = stop.value
        if outcome is None or isinstance(outcome, Failed):
            return outcome
        results.append(outcome)
        yield TimePoint(where)
    return results
