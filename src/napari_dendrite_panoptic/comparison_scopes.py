"""Score label arrays in one scope: a single plane of a stack, every plane, or the whole stack
(or plane), after collecting what is suspicious about the inputs.

This is the computation behind the "Metrics" dock (its worker thread calls
:func:`compare_in_scope`); GUI-free, on top of :mod:`comparison`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import comparison as cmp

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
        found = cmp.input_warnings(array, names[key], ROLES[key], instances)
        warnings += found
        if instances and found and split is None and cmp.looks_semantic(array):
            split = names[key]
    kwargs = {
        "voxel_size_um": voxel_size_um,
        "iou_threshold": iou_threshold,
        "distance_um": distance_um,
    }
    if plane is not None:
        figures, objects = cmp.compare_planes(
            **arrays, truth_points_um=truth_points_um, planes=[plane], **kwargs
        )
        figures = {k: v[:1] for k, v in figures.items() if k != "plane"}
        figures = {"scope": np.array([f"plane {plane}"], dtype=object), **figures}
    elif every_plane:
        figures, objects = cmp.compare_planes(**arrays, truth_points_um=truth_points_um, **kwargs)
    else:
        result = cmp.compare(**arrays, truth_points_um=truth_points_um, **kwargs)
        name = "stack" if ndim == 3 else "plane"
        figures, objects = cmp.figures_table(result.figures(), name), result.objects
    return {"figures": figures, "objects": objects, "warnings": warnings, "split": split}
