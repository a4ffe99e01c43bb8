"""Compare a prediction with ground truth: input checks, figures, per-plane tables and
per-object tables.

GUI-free (numpy/scipy only); the "Metrics" dock and ``dendrite-panoptic evaluate`` both call
:func:`compare` / :func:`compare_planes`, which score with :mod:`.metrics` (one implementation of
each metric). Arrays are (Y, X) or (Z, Y, X) label images on one grid; voxel sizes are (z, y, x)
in µm; ground-truth points are spine centres in µm, (z, y, x) or (y, x), measured from the centre
of the arrays' first voxel.

The input checks and spine centres live in :mod:`.inputs`, the object-table columns and the
CSV output in :mod:`.tables`, the difference maps and status colours in :mod:`.maps`.
:func:`compare_in_scope` (one plane, every plane or the whole stack, with the input warnings)
is what the Metrics dock's worker runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import ratio
from ..errors import InputError
from .inputs import input_warnings, looks_semantic, points_to_zyx_um, spine_centroids
from .maps import (
    as_planes,
)
from .metrics import (
    InstanceMatch,
    InstanceScores,
    PixelScores,
    PointScores,
    detection_scores,
    iou_matrix,
    match_instances,
    match_points,
    pixel_scores,
    pool_instance_scores,
)
from .tables import OBJECT_COLUMNS, Table, figures_table, object_row, objects_table

DEFAULT_IOU = 0.5
"""IoU a predicted spine needs with a ground-truth spine to count as found."""
DEFAULT_DISTANCE_UM = 1.0
"""Largest distance (µm) between a predicted spine's centroid and an annotated centre."""


# --- comparison --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """Scores of one comparison and the per-object table behind them.

    ``objects`` has one row per spine object: ``index`` (1..n, its value in
    :func:`spine_status_map`), ``status`` (TP found / FP extra / FN missed), ``by`` (``iou`` for
    label ground truth, ``distance`` for centres), ``pred_id``, ``truth_id`` (label id, or the
    1-based row of the centre; 0 = none), ``iou`` (of the pair; for an unmatched object its best
    IoU with any object of the other side), ``distance_um`` (centroid to centre; NaN for masks),
    ``centroid_{z,y,x}_px`` and ``_um`` (the ground truth's for TP and FN, the prediction's for
    FP), ``size_px`` (0 for an annotated centre); with ``plane`` first in per-plane tables.
    """

    dendrite: PixelScores | None = None
    spine_pixels: PixelScores | None = None
    spine_instances: InstanceScores | None = None
    spine_points: PointScores | None = None
    objects: Table = field(default_factory=dict)
    instance_match: InstanceMatch | None = None

    def figures(self) -> dict[str, float]:
        """The figures as one flat dict (NaN where a ratio has no denominator)."""
        out: dict[str, float] = {}
        if self.dendrite is not None:
            d = self.dendrite
            out.update(
                dendrite_iou=d.iou,
                dendrite_precision=d.precision,
                dendrite_recall=d.recall,
                dendrite_tp_px=d.tp,
                dendrite_fp_px=d.fp,
                dendrite_fn_px=d.fn,
            )
        if self.spine_pixels is not None:
            s = self.spine_pixels
            out.update(
                spine_pixel_iou=s.iou,
                spine_pixel_precision=s.precision,
                spine_pixel_recall=s.recall,
            )
        if self.spine_instances is not None:
            i = self.spine_instances
            out.update(
                spine_iou_threshold=i.threshold,
                spine_tp=i.tp,
                spine_fp=i.fp,
                spine_fn=i.fn,
                spine_precision=i.precision,
                spine_recall=i.recall,
                spine_f1=i.f1,
                spine_pq=i.pq,
                spine_sq=i.sq,
                spine_rq=i.rq,
            )
        if self.spine_points is not None:
            p = self.spine_points
            out.update(
                point_distance_um=p.max_distance,
                point_tp=p.tp,
                point_fp=p.fp,
                point_fn=p.fn,
                point_precision=p.precision,
                point_recall=p.recall,
                point_f1=p.f1,
            )
        return out


def compare(
    *,
    pred_dendrite: np.ndarray | None = None,
    truth_dendrite: np.ndarray | None = None,
    pred_spines: np.ndarray | None = None,
    truth_spines: np.ndarray | None = None,
    truth_points_um: np.ndarray | None = None,
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
    iou_threshold: float = DEFAULT_IOU,
    distance_um: float = DEFAULT_DISTANCE_UM,
) -> Comparison:
    """Score a prediction against ground truth on one grid.

    Parameters
    ----------
    pred_dendrite, truth_dendrite : (Y, X) or (Z, Y, X) masks, optional
        Dendrite pixels (> 0); both or neither.
    pred_spines : (Y, X) or (Z, Y, X) integer labels, optional
        Predicted spine instances (0 = none).
    truth_spines : same shape as ``pred_spines``, optional
        Ground-truth spine instances: spine pixel scores and instance matching (one-to-one,
        most pairs with IoU > ``iou_threshold``, then the most IoU; F1 and PQ).
    truth_points_um : (N, 3) or (N, 2) float, optional
        Annotated spine centres in µm (z, y, x) from the centre of voxel 0: each predicted spine's
        centroid (px × ``voxel_size_um``) is matched one-to-one (Hungarian on distance) to a centre
        within ``distance_um``.
    voxel_size_um : (z, y, x) µm
        Voxel size of the arrays (z ignored for a plane).
    """
    if (pred_dendrite is None) != (truth_dendrite is None):
        raise InputError("dendrite scores need both a predicted and a ground-truth dendrite mask")
    if truth_spines is not None and pred_spines is None:
        raise InputError("spine scores need a predicted spine layer")
    if truth_points_um is not None and pred_spines is None:
        raise InputError("spine centre scores need a predicted spine layer")
    dendrite = pixel_scores(pred_dendrite, truth_dendrite) if pred_dendrite is not None else None
    spine_pixels = instances = points = match = None
    objects: list[dict] = []
    vox = np.asarray([float(v) for v in voxel_size_um][-3:], dtype=float)
    if vox.size == 2:
        vox = np.concatenate([[1.0], vox])
    if pred_spines is not None:
        pred_ids, pred_c, pred_sizes = spine_centroids(pred_spines)
        pred_pos = {int(i): k for k, i in enumerate(pred_ids)}
    if truth_spines is not None:
        spine_pixels = pixel_scores(pred_spines, truth_spines)
        iou, t_ids, p_ids = ious = iou_matrix(pred_spines, truth_spines)
        instances, match = match_instances(pred_spines, truth_spines, iou_threshold, ious)
        truth_ids, truth_c, truth_sizes = spine_centroids(truth_spines)
        truth_pos = {int(i): k for k, i in enumerate(truth_ids)}
        for t, p, value in match.pairs:
            k = truth_pos[t]
            objects.append(
                object_row("TP", "iou", p, t, value, np.nan, truth_c[k], truth_sizes[k], vox)
            )
        for p in match.false_positives:
            k = pred_pos[p]
            best = float(iou[:, p_ids == p].max(initial=0.0))
            objects.append(
                object_row("FP", "iou", p, 0, best, np.nan, pred_c[k], pred_sizes[k], vox)
            )
        for t in match.false_negatives:
            k = truth_pos[t]
            best = float(iou[t_ids == t, :].max(initial=0.0))
            objects.append(
                object_row("FN", "iou", 0, t, best, np.nan, truth_c[k], truth_sizes[k], vox)
            )
    if truth_points_um is not None:
        true_um = points_to_zyx_um(truth_points_um)
        pred_um = pred_c * vox
        if as_planes(pred_spines).shape[0] == 1:  # a plane: distances in (y, x) only
            true_um, pred_um = true_um.copy(), pred_um.copy()
            true_um[:, 0] = pred_um[:, 0] = 0.0
        points, pairs = match_points(pred_um, true_um, float(distance_um))
        matched_t = {a for a, _, _ in pairs}
        matched_p = {b for _, b, _ in pairs}
        for a, b, dist in pairs:
            objects.append(
                object_row(
                    "TP",
                    "distance",
                    int(pred_ids[b]),
                    a + 1,
                    np.nan,
                    dist,
                    true_um[a] / vox,
                    0,
                    vox,
                )
            )
        for b in range(len(pred_ids)):
            if b not in matched_p:
                objects.append(
                    object_row(
                        "FP",
                        "distance",
                        int(pred_ids[b]),
                        0,
                        np.nan,
                        np.nan,
                        pred_c[b],
                        pred_sizes[b],
                        vox,
                    )
                )
        for a in range(len(true_um)):
            if a not in matched_t:
                objects.append(
                    object_row("FN", "distance", 0, a + 1, np.nan, np.nan, true_um[a] / vox, 0, vox)
                )
    return Comparison(dendrite, spine_pixels, instances, points, objects_table(objects), match)


def compare_planes(
    *,
    pred_dendrite: np.ndarray | None = None,
    truth_dendrite: np.ndarray | None = None,
    pred_spines: np.ndarray | None = None,
    truth_spines: np.ndarray | None = None,
    truth_points_um: np.ndarray | None = None,
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
    iou_threshold: float = DEFAULT_IOU,
    distance_um: float = DEFAULT_DISTANCE_UM,
    planes: Sequence[int] | None = None,
) -> tuple[Table, Table]:
    """Score every plane of (Z, Y, X) arrays on its own (2D spine cross-sections, centres in the
    plane their z rounds to) and pool the planes; ``planes`` limits it to those plane indices.

    Returns
    -------
    figures, objects
        ``figures``: one row per plane (``plane`` = "0", "1", ...) and a last row ``all``
        (counts summed over the planes, SQ weighted by matches); columns as
        :meth:`Comparison.figures`. ``objects``: every plane's object table with a ``plane``
        column first and ``index`` numbering the rows 1..n over all planes.
    """
    given = [a for a in (pred_dendrite, truth_dendrite, pred_spines, truth_spines) if a is not None]
    if not given:
        raise InputError("nothing to compare: give a dendrite or a spine pair")
    n_planes = as_planes(given[0]).shape[0]
    vz = float(voxel_size_um[-3]) if len(voxel_size_um) >= 3 else 1.0
    pts = points_to_zyx_um(truth_points_um) if truth_points_um is not None else None
    plane_of = np.rint(pts[:, 0] / vz).astype(int) if pts is not None else None
    parts: list[Comparison] = []
    rows: list[dict] = []
    chosen = list(range(n_planes)) if planes is None else [int(z) for z in planes]
    for z in chosen:
        if not 0 <= z < n_planes:
            raise InputError(f"plane {z} is outside the stack of {n_planes} planes")
        part = compare(
            pred_dendrite=_plane(pred_dendrite, z),
            truth_dendrite=_plane(truth_dendrite, z),
            pred_spines=_plane(pred_spines, z),
            truth_spines=_plane(truth_spines, z),
            truth_points_um=None if pts is None else pts[plane_of == z][:, 1:],
            voxel_size_um=voxel_size_um,
            iou_threshold=iou_threshold,
            distance_um=distance_um,
        )
        parts.append(part)
        n = len(part.objects.get("status", ()))
        for i in range(n):
            row = {c: part.objects[c][i] for c in OBJECT_COLUMNS if c != "index"}
            row["plane"] = z
            row["centroid_z_px"] = float(z)
            row["centroid_z_um"] = z * vz
            if row["by"] == "distance" and row["truth_id"]:
                # number centres by their row in the whole list, not within the plane
                row["truth_id"] = int(np.flatnonzero(plane_of == z)[row["truth_id"] - 1]) + 1
            rows.append(row)
    figures = [p.figures() for p in parts] + [pool(parts).figures()]
    table: Table = {"plane": np.array([str(z) for z in chosen] + ["all"], dtype=object)}
    for key in figures[0] if figures else ():
        table[key] = np.array([f[key] for f in figures])
    return table, objects_table(rows, extra=("plane",))


def _plane(a: np.ndarray | None, z: int) -> np.ndarray | None:
    return None if a is None else as_planes(a)[z]


def _pixels_from_counts(tp: int, fp: int, fn: int) -> PixelScores:
    return PixelScores(ratio(tp, tp + fp + fn), ratio(tp, tp + fp), ratio(tp, tp + fn), tp, fp, fn)


def pool(parts: Sequence[Comparison]) -> Comparison:
    """Micro-average several comparisons (counts summed; figures from the sums). Objects are
    not carried over."""

    def pix(items):
        items = [x for x in items if x is not None]
        if not items:
            return None
        return _pixels_from_counts(*(sum(getattr(x, k) for x in items) for k in ("tp", "fp", "fn")))

    inst = [p.spine_instances for p in parts if p.spine_instances is not None]
    pts = [p.spine_points for p in parts if p.spine_points is not None]
    points = None
    if pts:
        tp, fp, fn = (sum(getattr(x, k) for x in pts) for k in ("tp", "fp", "fn"))
        points = PointScores(pts[0].max_distance, tp, fp, fn, *detection_scores(tp, fp, fn))
    return Comparison(
        dendrite=pix(p.dendrite for p in parts),
        spine_pixels=pix(p.spine_pixels for p in parts),
        spine_instances=pool_instance_scores(inst) if inst else None,
        spine_points=points,
    )


ROLES = {
    "pred_dendrite": "dendrite prediction",
    "truth_dendrite": "dendrite ground truth",
    "pred_spines": "spine prediction",
    "truth_spines": "spine ground truth",
}
"""The arrays :func:`compare_in_scope` takes (keys of :func:`comparison.compare`), as words."""


def compare_in_scope(
    arrays: Mapping[str, np.ndarray],
    names: Mapping[str, str],
    *,
    ndim: int,
    plane: int | None = None,
    every_plane: bool = False,
    truth_points_um: np.ndarray | None = None,
    voxel_size_um: Sequence[float],
    iou_threshold: float,
    distance_um: float,
) -> dict[str, Any]:
    """Compare the given arrays in one scope.

    Parameters
    ----------
    arrays : mapping
        Some of ``pred_dendrite``, ``truth_dendrite``, ``pred_spines``, ``truth_spines`` (the
        keys of :data:`ROLES`) → label array, all on one (Y, X) or (Z, Y, X) grid.
    names : mapping
        The same keys → the name shown in warnings (a layer or file name).
    ndim : int
        2 or 3: the figures' one row is called ``"plane"`` or ``"stack"``.
    plane : int, optional
        Score only this z plane: one row ``scope`` = ``"plane <z>"``.
    every_plane : bool
        Score each plane and all of them (:func:`comparison.compare_planes`); ignored when
        ``plane`` is given.
    truth_points_um, voxel_size_um, iou_threshold, distance_um
        As for :func:`comparison.compare`.

    Returns
    -------
    dict
        ``figures`` and ``objects`` (tables, column → array), ``warnings`` (list of str, from
        :func:`comparison.input_warnings`) and ``split``: the name of the first spine input that
        drew a warning and looks like a semantic 0/1 mask (worth splitting into connected
        objects), else None.
    """
    warnings: list[str] = []
    split = None
    for key, array in arrays.items():
        instances = key.endswith("spines")
        found = input_warnings(array, names[key], ROLES[key], instances)
        warnings += found
        if instances and found and split is None and looks_semantic(array):
            split = names[key]
    kwargs = {
        "voxel_size_um": voxel_size_um,
        "iou_threshold": iou_threshold,
        "distance_um": distance_um,
    }
    if plane is not None:
        figures, objects = compare_planes(
            **arrays, truth_points_um=truth_points_um, planes=[plane], **kwargs
        )
        figures = {k: v[:1] for k, v in figures.items() if k != "plane"}
        figures = {"scope": np.array([f"plane {plane}"], dtype=object), **figures}
    elif every_plane:
        figures, objects = compare_planes(**arrays, truth_points_um=truth_points_um, **kwargs)
    else:
        result = compare(**arrays, truth_points_um=truth_points_um, **kwargs)
        name = "stack" if ndim == 3 else "plane"
        figures, objects = figures_table(result.figures(), name), result.objects
    return {"figures": figures, "objects": objects, "warnings": warnings, "split": split}
