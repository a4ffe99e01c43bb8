"""The inputs of a comparison: checks that label arrays share a grid and look like what their role says, spine centres, and clicked points (µm)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from .maps import (
    as_planes,
)


# --- input checks ------------------------------------------------------------------------------
def check_same_grid(
    shape_a: Sequence[int],
    shape_b: Sequence[int],
    name_a: str,
    name_b: str,
    scale_a: Sequence[float] | None = None,
    scale_b: Sequence[float] | None = None,
) -> None:
    """Raise :class:`InputError` unless two arrays share shape and (when given) scale in µm."""
    if tuple(shape_a) != tuple(shape_b):
        raise InputError(
            f"'{name_a}' has shape {tuple(shape_a)} but '{name_b}' has shape {tuple(shape_b)}: "
            "a prediction and its ground truth must cover the same pixels."
        )
    if scale_a is not None and scale_b is not None:
        a = np.asarray(scale_a, dtype=float)
        b = np.asarray(scale_b, dtype=float)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-3):
            raise InputError(
                f"'{name_a}' has pixel size {tuple(a.tolist())} µm but '{name_b}' has "
                f"{tuple(b.tolist())} µm: resample one of them, or correct the layer scale."
            )


def check_labels(data: np.ndarray, name: str) -> None:
    """Raise :class:`InputError` unless ``data`` is a 2D or 3D integer/bool label image."""
    if data.ndim not in (2, 3):
        raise InputError(f"'{name}' has {data.ndim} axes; metrics need a 2D plane or a 3D stack.")
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        raise InputError(f"'{name}' holds {data.dtype} values; labels must be integers.")


def is_empty(data: np.ndarray) -> bool:
    """True when a label image holds no labelled pixel."""
    return not np.any(np.asarray(data))


def looks_semantic(data: np.ndarray) -> int:
    """Number of separate regions when ``data`` holds only 0 and 1 but several regions (a
    semantic mask given where instances are expected); 0 otherwise."""
    data = np.asarray(data)
    if data.dtype != bool and (data.max(initial=0) > 1 or data.min(initial=0) < 0):
        return 0
    _, n = ndi.label(data > 0)
    return int(n) if n > 1 else 0


def input_warnings(data: np.ndarray | None, name: str, role: str, instances: bool) -> list[str]:
    """User messages about a label image that can be scored but probably not as meant:
    an empty layer, or 0/1 masks where spine instances are expected."""
    if data is None:
        return []
    messages = []
    if is_empty(data):
        messages.append(f"'{name}' ({role}) is empty: every figure that needs it is 0 or n/a.")
    elif instances:
        n = looks_semantic(data)
        if n:
            messages.append(
                f"'{name}' ({role}) holds only 0/1 in {n} separate regions: it looks like a "
                "semantic mask, so all its spines count as one. Split it into connected "
                "components to score instances."
            )
    return messages


# --- points ------------------------------------------------------------------------------------
def spine_centroids(spines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, centroids (N, 3) in px (z, y, x) and sizes (px) of the spines of a (Z, Y, X) or
    (Y, X) label image (z = 0 for a plane). Only labelled pixels are visited."""
    lab = as_planes(spines)
    flat = np.flatnonzero(lab)
    if not flat.size:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    ids, which, sizes = np.unique(
        lab.ravel()[flat].astype(np.int64, copy=False), return_inverse=True, return_counts=True
    )
    coords = np.unravel_index(flat, lab.shape)
    cents = np.column_stack(
        [np.bincount(which, weights=c, minlength=ids.size) / sizes for c in coords]
    )
    return ids, cents, sizes.astype(np.int64)


def points_to_zyx_um(points_um: np.ndarray | None) -> np.ndarray:
    """(N, 2) or (N, 3) centres in µm as (N, 3) (z = 0 for 2D points)."""
    if points_um is None:
        return np.zeros((0, 3))
    pts = np.asarray(points_um, dtype=float)
    if pts.size == 0:
        return np.zeros((0, 3))
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise InputError(f"spine centres must be (N, 2) or (N, 3) coordinates, got {pts.shape}")
    if pts.shape[1] == 2:
        pts = np.column_stack([np.zeros(len(pts)), pts])
    return pts


def read_points_csv(path: str | Path, voxel_size_um: Sequence[float]) -> np.ndarray:
    """Spine centres from a CSV, as (N, 3) (z, y, x) µm.

    Columns (header names, case-insensitive): ``z_um, y_um, x_um`` (or ``y_um, x_um``) in µm;
    ``z_px, y_px, x_px`` / ``z, y, x`` / napari's ``axis-0, axis-1[, axis-2]`` in pixels, which
    are multiplied by ``voxel_size_um`` (z, y, x). Other columns are ignored.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            keys = {h.strip().lower(): h for h in reader.fieldnames or []}
    except UnicodeDecodeError:
        raise InputError(
            f"cannot read the centres file {path}: it is not UTF-8 text (e.g. Latin-1); save it "
            "as a UTF-8 CSV"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read the centres file {path}: {exc}") from None
    header = list(keys)
    vz, vy, vx = (float(v) for v in voxel_size_um)
    axis_cols = sorted(h for h in header if h.startswith("axis-"))
    options = [
        (("z_um", "y_um", "x_um"), (1.0, 1.0, 1.0)),
        (("y_um", "x_um"), (1.0, 1.0)),
        (("z_px", "y_px", "x_px"), (vz, vy, vx)),
        (("y_px", "x_px"), (vy, vx)),
        (("z", "y", "x"), (vz, vy, vx)),
        (("y", "x"), (vy, vx)),
    ]
    if len(axis_cols) in (2, 3):
        options.append((tuple(axis_cols), (vz, vy, vx)[-len(axis_cols) :]))
    for cols, factors in options:
        if all(c in keys for c in cols):
            if not rows:
                return np.zeros((0, 3))
            try:
                pts = np.array(
                    [[float(r[keys[c]]) for c in cols] for r in rows], dtype=float
                ) * np.asarray(factors)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{path}: a centre coordinate is not a number ({exc})") from None
            bad = np.flatnonzero(~np.isfinite(pts).all(axis=1))
            if bad.size:
                raise InputError(
                    f"{path}: {bad.size} centre(s) have a coordinate that is not a finite number "
                    f"(NaN or inf; first on data row {bad[0] + 1}); remove or fix them"
                )
            return points_to_zyx_um(pts)
    raise InputError(
        f"{path}: no coordinate columns found (header {header}); use z_um,y_um,x_um "
        "(or y_um,x_um) in µm, or z_px,y_px,x_px / axis-0,axis-1,axis-2 in pixels."
    )
