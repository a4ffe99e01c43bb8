"""Pictures of a comparison: where two dendrite masks differ, and each spine object of an
object table painted with its row number, plus the colours of the match statuses.

GUI-free (numpy only); the "Metrics" dock shows these maps as napari layers. Arrays are
(Y, X) or (Z, Y, X) label images on one grid; object tables are those of
:mod:`.compare` (columns in :mod:`.tables`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .tables import Table

STATUS_COLOURS = {"TP": "#1b9e77", "FP": "#d95f02", "FN": "#7570b3"}
"""Colour of each match status (colour-blind safe Dark2 colours): found, extra, missed."""
DENDRITE_DIFF_VALUES = {"FP": 1, "FN": 2}
"""Values of :func:`dendrite_diff_map`: predicted but not true (1), true but missed (2)."""


def as_planes(a: np.ndarray) -> np.ndarray:
    """A (Y, X) or (Z, Y, X) array as (Z, Y, X): a plane gains a Z axis of 1 (a view, so
    writing into it writes into ``a``); a stack is returned as is."""
    a = np.asarray(a)
    return a[None] if a.ndim == 2 else a


def dendrite_diff_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """uint8 map of where two dendrite masks differ: 1 = predicted, not true (FP); 2 = true,
    not predicted (FN); 0 elsewhere. Same shape as the inputs."""
    p = np.asarray(pred) > 0
    t = np.asarray(truth) > 0
    if p.shape != t.shape:
        raise InputError(f"dendrite masks differ in shape: {p.shape} vs {t.shape}")
    out = np.zeros(p.shape, dtype=np.uint8)
    out[p & ~t] = DENDRITE_DIFF_VALUES["FP"]
    out[t & ~p] = DENDRITE_DIFF_VALUES["FN"]
    return out


def spine_status_map(
    pred_spines: np.ndarray, truth_spines: np.ndarray | None, objects: Table
) -> np.ndarray:
    """uint32 label image of an object table: each object's pixels hold its ``index``.

    A TP is drawn as its ground-truth and predicted masks, an FN as its ground-truth mask, an FP
    as its predicted mask; predicted pixels are drawn last (win where an FN and an FP overlap).
    Annotated centres (``by == "distance"``) have no mask: only the predicted spines are drawn.
    A table with a ``plane`` column is drawn plane by plane. Same shape as ``pred_spines``.
    """
    pred = np.asarray(pred_spines)
    out = np.zeros(pred.shape, dtype=np.uint32)
    if not len(objects.get("index", ())):
        return out
    truth = None if truth_spines is None else np.asarray(truth_spines)
    if "plane" in objects:
        out3 = as_planes(out)
        for z in np.unique(objects["plane"]):
            sel = {c: v[objects["plane"] == z] for c, v in objects.items()}
            out3[z] = _paint(
                as_planes(pred)[z], None if truth is None else as_planes(truth)[z], sel
            )
        return out
    return _paint(pred, truth, objects)


def _paint(pred: np.ndarray, truth: np.ndarray | None, objects: Table) -> np.ndarray:
    out = np.zeros(pred.shape, dtype=np.uint32)
    index = objects["index"].astype(np.uint32)
    if truth is not None:
        ok = (objects["by"] == "iou") & (objects["truth_id"] > 0)
        _draw(out, truth, objects["truth_id"][ok], index[ok])
    ok = objects["pred_id"] > 0
    _draw(out, pred, objects["pred_id"][ok], index[ok])
    return out


def _draw(out: np.ndarray, labels: np.ndarray, ids: np.ndarray, values: np.ndarray) -> None:
    """out[labels == ids[k]] = values[k] for every k, visiting only labelled pixels."""
    if not ids.size:
        return
    order = np.argsort(ids)
    ids, values = ids[order].astype(np.int64), values[order]
    where = np.flatnonzero(labels)
    found = labels.ravel()[where].astype(np.int64, copy=False)
    k = np.clip(np.searchsorted(ids, found), 0, ids.size - 1)
    hit = ids[k] == found
    out.ravel()[where[hit]] = values[k[hit]]
