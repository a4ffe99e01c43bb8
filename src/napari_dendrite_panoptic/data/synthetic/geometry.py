"""Geometry of the synthetic images: paths, capsules and spine shapes, in µm.

Used by :func:`napari_dendrite_panoptic.data.synthetic.generate`: :func:`random_path` draws dendrite
and axon centre lines, :func:`smooth_noise` their wander and radius, :func:`spine_primitives` the
capsules of one spine, :func:`draw_capsules` rasterises capsules into a voxel grid,
:func:`spine_geometry` records a drawn spine's ground truth (:class:`SpineGeometry`) and
:func:`length_inside` the dendrite length inside the image. All coordinates are (z, y, x) in µm.
The functions that take ``rng`` draw from it in a fixed order: the generator's images depend on
it, to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class SpineGeometry:
    """Ground-truth geometry of one drawn spine, in µm, coordinates (z, y, x).

    ``base_um`` is where the spine's axis leaves the shaft surface; ``length_um`` the distance from
    there to the spine's farthest point (tip); ``head_diameter_um`` twice the largest head radius
    as drawn (for stubby spines the capsule, for filopodia the shaft of the protrusion, for
    branched spines the larger head); ``neck_width_um`` twice the drawn neck radius (NaN without
    a neck). ``clipped`` is True when the spine's geometry reaches outside the image.
    """

    base_um: tuple[float, float, float]
    direction: tuple[float, float, float]
    length_um: float
    head_diameter_um: float
    neck_width_um: float
    clipped: bool


def smooth_noise(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """A smooth random 1D signal, (n,) float64 of about unit standard deviation, correlated over
    ``scale`` samples (at least 1); draws ``n + int(6 * max(scale, 1))`` normals from ``rng``."""
    sigma = max(scale, 1.0)
    raw = rng.normal(size=n + int(6 * sigma))
    out = ndi.gaussian_filter1d(raw, sigma=sigma, mode="reflect")[:n]
    # white noise smoothed by a Gaussian of width sigma has std 1 / sqrt(2 sqrt(pi) sigma)
    return out * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


def random_path(
    rng: np.random.Generator, extent_um: np.ndarray, step_um: float, wiggle: float
) -> np.ndarray:
    """A smooth curve (N, 3) float64 in µm (z, y, x) that crosses the field from border to
    border, in steps of ``step_um``; ``extent_um`` (3,) is the field's (z, y, x) size in µm (z 0
    for a plane: then z is 0); ``wiggle`` (>= 0) is how strongly its heading wanders."""
    _, h, w = extent_um
    # start on a random border, head roughly across the field
    side = rng.integers(4)
    t = rng.uniform(0.15, 0.85)
    starts = {0: (0.0, t * w), 1: (h, t * w), 2: (t * h, 0.0), 3: (t * h, w)}
    heading = {0: np.pi / 2, 1: -np.pi / 2, 2: 0.0, 3: np.pi}
    y, x = starts[int(side)]
    theta0 = heading[int(side)] + rng.uniform(-0.6, 0.6)
    n = int(2.5 * (h + w) / step_um)
    dtheta = smooth_noise(rng, n, scale=3.0 / step_um) * wiggle * step_um
    theta = theta0 + np.cumsum(dtheta)
    ys = y + np.cumsum(np.sin(theta) * step_um)
    xs = x + np.cumsum(np.cos(theta) * step_um)
    margin = 1.0
    inside = (ys > -margin) & (ys < h + margin) & (xs > -margin) & (xs < w + margin)
    # keep the first contiguous stretch inside the field
    first_out = np.argmax(~inside[5:]) + 5 if (~inside[5:]).any() else n
    ys, xs = ys[:first_out], xs[:first_out]
    depth = extent_um[0]
    zc = (
        depth / 2 + smooth_noise(rng, len(ys), 8.0 / step_um) * depth * 0.12
        if depth > 0
        else 0 * ys
    )
    return np.stack([np.asarray(zc, dtype=float), ys, xs], axis=1)


def _capsule_distance(coords: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (µm) of points ``coords`` (..., 3) to the segment a-b."""
    ab = b - a
    denom = float(ab @ ab)
    if denom == 0:
        return _length(coords - a)
    t = np.clip(((coords - a) @ ab) / denom, 0.0, 1.0)
    closest = a + t[..., None] * ab
    return _length(coords - closest)


def _length(v: np.ndarray) -> np.ndarray:
    """Euclidean length over the last axis of ``v`` (..., 3): ``np.linalg.norm(v, axis=-1)`` to
    the bit, several times faster on the many-voxel boxes that capsules are drawn in."""
    return np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + v[..., 2] * v[..., 2])


def spine_primitives(
    rng: np.random.Generator, kind: str, base: np.ndarray, direction: np.ndarray, scale: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Capsules (a, b, radius) that make one spine of type ``kind`` (one of ``SPINE_TYPES``)
    starting at ``base`` (3,) along the unit vector ``direction`` (3,): a and b (3,) float64
    end points in µm (z, y, x), radius in µm; sizes scaled by ``scale``."""

    def unit(v: np.ndarray) -> np.ndarray:
        return v / (np.linalg.norm(v) + 1e-9)

    s = scale
    if kind == "stubby":
        head_r = rng.uniform(0.25, 0.45) * s
        length = rng.uniform(0.3, 0.6) * s
        tip = base + direction * length
        return [(base, tip, head_r)]
    if kind == "mushroom":
        neck_r = rng.uniform(0.08, 0.14) * s
        neck = rng.uniform(0.4, 1.0) * s
        head_r = rng.uniform(0.3, 0.5) * s
        neck_end = base + direction * neck
        head_c = neck_end + direction * head_r * 0.7
        return [(base, neck_end, neck_r), (head_c, head_c, head_r)]
    if kind == "thin":
        neck_r = rng.uniform(0.06, 0.11) * s
        neck = rng.uniform(0.6, 1.4) * s
        head_r = rng.uniform(0.15, 0.26) * s
        neck_end = base + direction * neck
        head_c = neck_end + direction * head_r * 0.6
        return [(base, neck_end, neck_r), (head_c, head_c, head_r)]
    if kind == "filopodium":
        r = rng.uniform(0.06, 0.1) * s
        length = rng.uniform(1.4, 2.8) * s
        return [(base, base + direction * length, r)]
    if kind == "branched":
        neck_r = rng.uniform(0.08, 0.12) * s
        stem = rng.uniform(0.3, 0.6) * s
        fork = base + direction * stem
        prims: list[tuple[np.ndarray, np.ndarray, float]] = [(base, fork, neck_r)]
        perp = unit(np.array([0.0, -direction[2], direction[1]]))
        for sign in (-1.0, 1.0):
            d = unit(direction + sign * perp * rng.uniform(0.6, 1.1))
            end = fork + d * rng.uniform(0.4, 0.8) * s
            head_r = rng.uniform(0.18, 0.32) * s
            prims.append((fork, end, neck_r))
            prims.append((end + d * head_r * 0.6, end + d * head_r * 0.6, head_r))
        return prims
    raise ValueError(f"unknown spine type {kind!r}")


def spine_geometry(
    kind: str,
    prims: list[tuple[np.ndarray, np.ndarray, float]],
    centre: np.ndarray,
    tangent: np.ndarray,
    direction: np.ndarray,
    shaft_radius: float,
    min_r: float,
    extent: np.ndarray,
    is3d: bool,
) -> SpineGeometry:
    """Ground truth of one spine from its capsules ``prims`` (as :func:`spine_primitives`).

    ``centre``, ``tangent`` (unit) and ``direction`` (unit) are (3,) float64 (z, y, x): the
    shaft's centre line point, its direction there, and the spine's; ``shaft_radius``,
    ``min_r`` (the smallest drawn radius) in µm; ``extent`` (3,) the image size in µm; ``is3d``
    whether z counts for clipping. No random draws: the generator's stream is unchanged."""
    perp = direction - tangent * float(direction @ tangent)
    surface = centre + direction * shaft_radius / max(float(np.linalg.norm(perp)), 1e-6)
    radii = [max(r, min_r) for *_, r in prims]
    length = max(
        float(np.linalg.norm(p - surface)) + r
        for (a, b, _), r in zip(prims, radii, strict=True)
        for p in (a, b)
    )
    heads = [r for (a, b, _), r in zip(prims, radii, strict=True) if np.array_equal(a, b)]
    head_d = 2 * max(heads) if heads else 2 * radii[0]
    neck_w = 2 * radii[0] if kind in ("mushroom", "thin", "branched") else float("nan")
    ends = np.array([p for a, b, _ in prims for p in (a, b)])
    rmax = max(radii)
    lo, hi = ends.min(0) - rmax, ends.max(0) + rmax
    dims = slice(0 if is3d else 1, 3)
    clipped = bool(np.any(lo[dims] < 0) or np.any(hi[dims] > extent[dims]))
    return SpineGeometry(
        tuple(float(v) for v in surface),
        tuple(float(v) for v in direction),
        length,
        float(head_d),
        float(neck_w),
        clipped,
    )


def length_inside(path: np.ndarray, extent: np.ndarray) -> float:
    """Length (µm) of the polyline ``path`` (N, 3) float64 µm (z, y, x) over the segments
    whose both ends lie inside the image in y/x; ``extent`` (3,) is the image size in µm."""
    inside = np.all((path[:, 1:] >= 0) & (path[:, 1:] <= extent[1:]), axis=1)
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    return float(seg[inside[1:] & inside[:-1]].sum())


def capsule_box(
    prims: list[tuple[np.ndarray, np.ndarray, float]], voxel: np.ndarray, shape: tuple[int, ...]
) -> tuple[slice, ...]:
    """The (z, y, x) index box, clipped to ``shape``, that :func:`draw_capsules` draws the
    capsules ``prims`` (a, b (3,) µm, radius µm) in; empty when they miss the volume."""
    pts = np.array([p for a, b, _ in prims for p in (a, b)])
    pad = max(r for *_, r in prims) + float(voxel.max())
    lo = np.clip(np.floor((pts.min(0) - pad) / voxel).astype(int), 0, shape)
    hi = np.clip(np.ceil((pts.max(0) + pad) / voxel).astype(int) + 1, 0, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def attached_piece(drawn: np.ndarray, taken: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """Of a spine's ``drawn`` voxels (bool, within its :func:`capsule_box`), the connected piece
    that touches the shaft's ``rim`` (bool) once the voxels ``taken`` by earlier spines are
    removed (``drawn`` is changed in place); all False when no piece touches it. The three
    arrays share one shape."""
    drawn &= ~taken
    lab, _ = ndi.label(drawn)
    touching = np.unique(lab[rim & drawn])
    touching = touching[touching > 0]
    return lab == touching[0] if touching.size else np.zeros_like(drawn)


def draw_capsules(
    out: np.ndarray,
    value: float | int,
    prims: list[tuple[np.ndarray, np.ndarray, float]],
    voxel: np.ndarray,
    min_radius: np.ndarray,
    only_where: np.ndarray | None = None,
) -> int:
    """Set the voxels of ``out`` (Z, Y, X), any dtype, within the capsules ``prims`` (a, b (3,)
    µm (z, y, x), radius µm) to ``value``; returns how many voxels were set.

    ``voxel`` (3,) is the voxel size in µm (z, y, x); no capsule is drawn thinner than
    ``min_radius`` µm in y/x (nor, in a stack, than 0.55 voxels in z); ``only_where`` (bool,
    shaped as ``out``) limits the voxels that may be set. Only voxels of
    :func:`capsule_box` change."""
    sl = capsule_box(prims, voxel, out.shape)
    if any(s.stop <= s.start for s in sl):
        return 0
    axes = (np.arange(s.start, s.stop) * voxel[i] for i, s in enumerate(sl))
    coords = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    hit = np.zeros(coords.shape[:-1], dtype=bool)
    is3d = out.shape[0] > 1
    for a, b, r in prims:
        # thin necks stay connected: a capsule is never thinner than ~half a voxel, in x/y and,
        # for stacks, in z (else a 0.1 µm neck between 0.5 µm planes would hit no voxel centre)
        r_xy = max(r, float(min_radius))
        r_z = max(r, 0.55 * float(voxel[0])) if is3d else r_xy
        squash = np.array([r_xy / r_z, 1.0, 1.0])
        hit |= _capsule_distance(coords * squash, a * squash, b * squash) <= r_xy
    if only_where is not None:
        hit &= only_where[sl]
    out[sl][hit] = value
    return int(hit.sum())
