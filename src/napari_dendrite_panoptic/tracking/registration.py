"""Registration of one imaging session (moving) to another (fixed), in µm, in 3D.

Three steps, all on a working grid of about 0.2 µm pixels (z planes kept), on images normalised
by their percentiles (so a change of brightness between sessions does not matter):

1. **global**: a rotation about z searched on the maximum projections (phase correlation at each
   trial angle, the best normalised cross-correlation wins), then the 3D shift by phase
   correlation of the volumes;
2. **affine**: the fixed volume is cut into overlapping blocks (the stack's whole depth, about
   10 µm wide); each block with dendrite in it is matched by phase correlation (sub-pixel) to the
   moving volume warped by the current map; a weighted least-squares similarity map (x/y rotation,
   scale and shift, with the z shift; a single dendrite is nearly a line, which does not fix a
   full affine map) is fitted to the block matches, outliers dropped;
3. **non-rigid**: what the affine map leaves of the block matches becomes a smooth displacement
   field (Gaussian kernel regression over the blocks' centres), for tissue that swelled or shifted
   unevenly. Steps 2-3 are run three times, each on the volume warped by the result before.
   (The tracker then moves the map by the median offset of matched spines: a straight shaft does
   not fix a shift along itself.)

The result, :class:`Registration`, maps points of the fixed session (µm) to the moving session
(:meth:`Registration.forward`) and back (:meth:`Registration.inverse`), warps volumes of the moving
session onto the fixed grid, and says how well each part of the field matched
(:meth:`Registration.quality_at`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..core import percentile_normalise
from ..errors import InputError

WORK_PIXEL_UM = 0.2
"""Pixel size (µm) of the working grid registration runs on (never finer than the data)."""
BLOCK_UM = 6.0
"""Width (µm) of the blocks matched for the affine and non-rigid steps."""
MIN_OVERLAP = 0.2
"""Sessions whose fields overlap less than this fraction (of the fixed field) do not register."""
MIN_BLOCKS = 3
"""Fewer matched blocks than this and the registration fails."""


class RegistrationError(InputError):
    """Two sessions could not be registered (no overlap, or nothing matched)."""


@dataclass
class Registration:
    """Map from the fixed session's frame to the moving session's, in µm (z, y, x).

    ``forward(p) = matrix @ p + offset + residual(p)``; ``residual`` is the non-rigid part: the
    kernel regression of ``node_residual_um`` (K, 3) at ``nodes_um`` (K, 3) (in y/x, width
    ``sigma_um``; ``node_tensor`` (K, 2, 2) the blocks' normalised y/x structure tensors, the
    directions each block fixes). ``node_quality`` (K,) is each block's normalised cross-correlation after the
    match (1 = perfect); ``quality`` their median; ``rotation_deg`` the global step's angle.
    """

    matrix: np.ndarray
    offset: np.ndarray
    nodes_um: np.ndarray
    node_residual_um: np.ndarray
    node_quality: np.ndarray
    node_tensor: np.ndarray
    sigma_um: float
    quality: float
    rotation_deg: float
    fixed_extent_um: np.ndarray
    moving_extent_um: np.ndarray

    @classmethod
    def identity(cls, extent_um: np.ndarray) -> Registration:
        """The map of a session to itself."""
        e = np.asarray(extent_um, float)
        z3 = np.zeros((0, 3))
        return cls(
            np.eye(3), np.zeros(3), z3, z3, np.zeros(0), np.zeros((0, 2, 2)), 1.0, 1.0, 0.0, e, e
        )

    def moved_by(self, shift_um: np.ndarray) -> Registration:
        """The same map with its fixed-frame side moved by ``shift_um`` (3,) µm:
        ``new.forward(p) == forward(p - shift_um)``, so ``new.inverse(q) == inverse(q) + shift``."""
        c = np.asarray(shift_um, float)
        return Registration(
            self.matrix,
            self.offset - self.matrix @ c,
            self.nodes_um + c,
            self.node_residual_um,
            self.node_quality,
            self.node_tensor,
            self.sigma_um,
            self.quality,
            self.rotation_deg,
            self.fixed_extent_um,
            self.moving_extent_um,
        )

    def residual(self, pts_um: np.ndarray) -> np.ndarray:
        """(N, 3) µm non-rigid displacement at (N, 3) µm points of the fixed frame."""
        pts = np.asarray(pts_um, float).reshape(-1, 3)
        if len(self.nodes_um) == 0:
            return np.zeros_like(pts)
        out = np.zeros_like(pts)
        for start in range(0, len(pts), 65536):
            p = pts[start : start + 65536, 1:]
            d2 = ((p[:, None, :] - self.nodes_um[None, :, 1:]) ** 2).sum(-1)
            w = np.exp(-d2 / (2 * self.sigma_um**2))
            # a small prior weight pulls the field to 0 far from every block; in y/x each block
            # counts along the directions its image fixes (its structure tensor)
            out[start : start + 65536, 0] = (w @ self.node_residual_um[:, 0]) / (w.sum(1) + 0.05)
            gw = self.node_tensor + 0.05 * np.eye(2)
            lhs = np.einsum("nk,kij->nij", w, gw) + 0.05 * np.eye(2)
            rhs = np.einsum("nk,kij,kj->ni", w, gw, self.node_residual_um[:, 1:])
            out[start : start + 65536, 1:] = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        return out

    def forward(self, pts_um: np.ndarray) -> np.ndarray:
        """(N, 3) µm points of the fixed session -> (N, 3) µm in the moving session."""
        pts = np.asarray(pts_um, float).reshape(-1, 3)
        return pts @ self.matrix.T + self.offset + self.residual(pts)

    def inverse(self, pts_um: np.ndarray) -> np.ndarray:
        """(N, 3) µm points of the moving session -> (N, 3) µm in the fixed session (the
        forward map inverted by fixed-point iteration)."""
        q = np.asarray(pts_um, float).reshape(-1, 3)
        inv = np.linalg.inv(self.matrix)
        p = (q - self.offset) @ inv.T
        for _ in range(30):
            step = (q - self.forward(p)) @ inv.T
            p = p + step
            if len(p) == 0 or np.abs(step).max() < 1e-4:
                break
        return p

    def quality_at(self, pts_um: np.ndarray) -> np.ndarray:
        """(N,) match quality (0-1) of the nearest block to each (N, 3) µm fixed-frame point;
        the overall quality where no block was matched."""
        pts = np.asarray(pts_um, float).reshape(-1, 3)
        if len(self.nodes_um) == 0:
            return np.full(len(pts), self.quality)
        d2 = ((pts[:, None, 1:] - self.nodes_um[None, :, 1:]) ** 2).sum(-1)
        return self.node_quality[d2.argmin(1)]

    def inside_moving(self, pts_um: np.ndarray, margin_um: float = 0.0) -> np.ndarray:
        """(N,) bool: the fixed-frame points land inside the moving field (minus a margin in
        y/x)."""
        q = self.forward(pts_um)
        e = self.moving_extent_um
        return np.all((q[:, 1:] >= margin_um) & (q[:, 1:] <= e[1:] - margin_um), axis=1)

    def warp(
        self,
        moving: np.ndarray,
        moving_voxel_um: tuple[float, float, float],
        fixed_shape: tuple[int, int, int],
        fixed_voxel_um: tuple[float, float, float],
        order: int = 1,
    ) -> np.ndarray:
        """The (Z, Y, X) ``moving`` volume resampled onto the fixed (Z, Y, X) grid (order 0 for
        labels keeps their dtype and ids; 0 outside the moving field)."""
        coords = _fixed_to_moving_coords(self, fixed_shape, fixed_voxel_um, moving_voxel_um)
        out = np.zeros(fixed_shape, dtype=moving.dtype)
        for z in range(fixed_shape[0]):
            c = np.stack([coords[0] + z * fixed_voxel_um[0] / moving_voxel_um[0], *coords[1:]])
            c = c if moving.shape[0] > 1 else c.copy()
            if moving.shape[0] == 1:
                c[0] = 0.0
            out[z] = ndi.map_coordinates(moving, c, order=order, mode="constant", cval=0)
        return out


def _fixed_to_moving_coords(
    reg, shape, fvox, mvox, step=16, forigin=(0.0,) * 3, morigin=(0.0,) * 3
):
    """Moving voxel coordinates of every (y, x) of the fixed grid's plane z = 0 (z grows by the
    z voxel ratio per plane, as the maps here are affine in z): (3, Y, X) float32, from the map
    evaluated on a coarse grid every ``step`` pixels."""
    _, ny, nx = shape
    gy = np.arange(0, ny + step, step)
    gx = np.arange(0, nx + step, step)
    yy, xx = np.meshgrid(gy * fvox[1], gx * fvox[2], indexing="ij")
    pts = np.stack([np.zeros(yy.size), yy.ravel(), xx.ravel()], 1) + np.asarray(forigin)
    q = (reg.forward(pts) - np.asarray(morigin)) / np.asarray(mvox)
    coarse = q.T.reshape(3, len(gy), len(gx))
    fy = np.arange(ny) / step
    fx = np.arange(nx) / step
    fyy, fxx = np.meshgrid(fy, fx, indexing="ij")
    return np.stack(
        [ndi.map_coordinates(c, [fyy, fxx], order=1, mode="nearest") for c in coarse]
    ).astype(np.float32)


# --- preparing the images ------------------------------------------------------------------------


@dataclass
class _Work:
    """A session's volume on the working grid: ``data`` (Z, Y, X) float32 0..1, ``voxel`` µm,
    ``origin`` µm of voxel (0, 0, 0), ``extent`` µm of the whole field."""

    data: np.ndarray
    voxel: np.ndarray
    origin: np.ndarray
    extent: np.ndarray


def _prepare(image: np.ndarray, voxel_um: tuple[float, float, float]) -> _Work:
    from skimage.transform import downscale_local_mean

    vox = np.asarray(voxel_um, float)
    b = max(1, int(round(WORK_PIXEL_UM / vox[1])))
    img = np.asarray(image, dtype=np.float32)
    if b > 1:
        img = downscale_local_mean(img, (1, b, b)).astype(np.float32)
    img = np.clip(percentile_normalise(img, 1.0, 99.8), 0, 1)
    img = ndi.gaussian_filter(img, (0.0, 1.0, 1.0))
    wvox = vox * np.array([1, b, b])
    origin = np.array([0.0, (b - 1) / 2 * vox[1], (b - 1) / 2 * vox[2]])
    extent = np.asarray(image.shape, float) * vox
    return _Work(img, wvox, origin, extent)


def _warp_work(reg: Registration, fixed: _Work, moving: _Work) -> np.ndarray:
    """The moving working volume on the fixed working grid; -1 outside the moving field."""
    shape = fixed.data.shape
    coords = _fixed_to_moving_coords(
        reg, shape, fixed.voxel, moving.voxel, 8, fixed.origin, moving.origin
    )
    out = np.empty(shape, dtype=np.float32)
    for z in range(shape[0]):
        c = coords.copy()
        c[0] += z * fixed.voxel[0] / moving.voxel[0]
        if moving.data.shape[0] == 1:
            c[0] = 0.0
        out[z] = ndi.map_coordinates(moving.data, c, order=1, mode="constant", cval=-1.0)
    return out


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


# --- step 1: global --------------------------------------------------------------------------------


def _global(fixed: _Work, moving: _Work) -> tuple[Registration, float]:
    """Rotation about z and 3D shift; returns the map and its normalised cross-correlation."""
    from skimage.registration import phase_cross_correlation

    f2 = fixed.data.max(0)
    m2 = moving.data.max(0)
    # compare on a common 2D canvas as large as both
    ny, nx = max(f2.shape[0], m2.shape[0]), max(f2.shape[1], m2.shape[1])
    fc = np.zeros((ny, nx), np.float32)
    mc = np.zeros((ny, nx), np.float32)
    fc[: f2.shape[0], : f2.shape[1]] = f2
    mc[: m2.shape[0], : m2.shape[1]] = m2
    centre = np.array([(f2.shape[0] - 1) / 2, (f2.shape[1] - 1) / 2])

    def rotation(angle: float) -> np.ndarray:
        t = np.deg2rad(angle)
        return np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])

    def trial(angle: float):
        # rotated(p) = moving(R (p - c) + c); then fixed(p) ~ rotated(p - shift)
        r = rotation(angle)
        rot = ndi.affine_transform(mc, r, offset=centre - r @ centre, order=1) if angle else mc
        shift, _, _ = phase_cross_correlation(fc, rot, upsample_factor=4, normalization=None)
        moved = ndi.shift(rot, shift, order=1)
        valid = ndi.shift((mc > 0).astype(np.float32), shift, order=0) > 0
        return _ncc(fc[valid], moved[valid]) if valid.sum() > 16 else -1.0, shift

    best = max(((trial(a), a) for a in np.arange(-10.0, 10.1, 2.5)), key=lambda t: t[0][0])
    angle0 = best[1]
    best = max(
        ((trial(a), a) for a in np.arange(angle0 - 1.0, angle0 + 1.01, 0.5)),
        key=lambda t: t[0][0],
    )
    (_, shift), angle = best
    m_rot = rotation(angle)
    wv = fixed.voxel[1:]
    c_um = centre * wv + fixed.origin[1:]
    s_um = np.asarray(shift) * wv
    # a fixed µm point p (y, x) comes from moving µm point m_rot (p - c - s) + c (origins alike)
    matrix = np.eye(3)
    matrix[1:, 1:] = m_rot
    offset = np.zeros(3)
    offset[1:] = -m_rot @ (c_um + s_um) + c_um + (moving.origin[1:] - fixed.origin[1:])
    reg = _registration(matrix, offset, fixed, moving, angle)
    # the z (and remaining) shift by 3D phase correlation of the warped volume
    warped = _warp_work(reg, fixed, moving)
    if fixed.data.shape[0] > 1:
        s3, _, _ = phase_cross_correlation(
            fixed.data, np.clip(warped, 0, None), upsample_factor=4, normalization=None
        )
        reg.offset = reg.offset - matrix @ (np.asarray(s3) * fixed.voxel)
        warped = _warp_work(reg, fixed, moving)
    overlap = warped >= 0
    score = _ncc(fixed.data[overlap], warped[overlap]) if overlap.sum() > 64 else -1.0
    return reg, score


def _registration(matrix, offset, fixed: _Work, moving: _Work, angle: float) -> Registration:
    z3 = np.zeros((0, 3))
    return Registration(
        matrix,
        offset,
        z3,
        z3,
        np.zeros(0),
        np.zeros((0, 2, 2)),
        1.0,
        0.0,
        angle,
        fixed.extent,
        moving.extent,
    )


# --- steps 2-3: blocks, affine, non-rigid ---------------------------------------------------------


def _blocks(fixed: _Work, warped: np.ndarray):
    """Block centres (K, 3) µm, their displacement (K, 3) µm (fixed -> warped moving) and
    quality (K,)."""
    from skimage.registration import phase_cross_correlation

    _, ny, nx = fixed.data.shape
    bs = int(np.clip(round(BLOCK_UM / fixed.voxel[1]), 16, max(16, min(ny, nx) // 2)))
    step = max(6, bs // 3)
    win = np.outer(np.hanning(bs), np.hanning(bs)).astype(np.float32)[None]
    mip = fixed.data.max(0)
    gy, gx = np.gradient(ndi.gaussian_filter(mip, 1.0))
    tensors_img = (gy * gy, gy * gx, gx * gx)
    centres, shifts, quality, tensors = [], [], [], []
    for y0 in range(0, max(1, ny - bs + 1), step):
        for x0 in range(0, max(1, nx - bs + 1), step):
            fb = fixed.data[:, y0 : y0 + bs, x0 : x0 + bs]
            mb = warped[:, y0 : y0 + bs, x0 : x0 + bs]
            inside = (mb >= 0).mean()
            mb = np.clip(mb, 0, None)
            if fb.shape[1:] != (bs, bs):
                continue
            # a block needs structure (dendrite) in both, and the moving field over most of it
            if np.percentile(fb, 99) - np.median(fb) < 0.15 or inside < 0.8:
                continue
            fw = (fb - fb.mean()) * win
            mw = (mb - mb.mean()) * win
            s, _, _ = phase_cross_correlation(fw, mw, upsample_factor=10, normalization=None)
            s = np.asarray(s, float)
            if np.any(np.abs(s[1:]) > bs / 4) or abs(s[0]) > max(2.0, fb.shape[0] / 4):
                continue
            moved = ndi.shift(mb, s, order=1, mode="nearest")
            quality.append(_ncc(fb, moved))
            centres.append(
                fixed.origin
                + fixed.voxel
                * np.array([(fb.shape[0] - 1) / 2, y0 + (bs - 1) / 2, x0 + (bs - 1) / 2])
            )
            shifts.append(-s * fixed.voxel)
            wy = win[0]
            t = [float((c[y0 : y0 + bs, x0 : x0 + bs] * wy).sum()) for c in tensors_img]
            g = np.array([[t[0], t[1]], [t[1], t[2]]])
            tensors.append(g / (np.trace(g) + 1e-12))
    return (
        np.array(centres).reshape(-1, 3),
        np.array(shifts).reshape(-1, 3),
        np.array(quality),
        np.array(tensors).reshape(-1, 2, 2),
    )


def _fit(reg: Registration, fixed: _Work, moving: _Work, centres, shifts, quality, tensors, angle):
    """Affine + smooth residual fitted to where the blocks' centres land in the moving frame."""
    targets = reg.forward(centres + shifts)
    keep = quality > 0.3
    if keep.sum() < MIN_BLOCKS:
        return None
    p, q, w, g = centres[keep], targets[keep], quality[keep], tensors[keep]
    matrix, offset = np.eye(3), np.zeros(3)
    for _ in range(3):
        # a similarity map in y/x (rotation, scale, shift: a single dendrite is nearly a line,
        # which does not fix a full affine map) and a shift in z; the rest is the smooth field
        n = len(p)
        design = np.zeros((2 * n, 4))
        design[0::2] = np.column_stack([p[:, 1], -p[:, 2], np.ones(n), np.zeros(n)])
        design[1::2] = np.column_stack([p[:, 2], p[:, 1], np.zeros(n), np.ones(n)])
        # each block counts along the directions its image fixes (the structure tensor): a
        # straight piece of shaft says nothing about a shift along itself
        half = _sqrt_psd(g + 0.05 * np.eye(2)) * np.sqrt(w)[:, None, None]
        rows = np.einsum("kij,kjp->kip", half, design.reshape(n, 2, 4)).reshape(-1, 4)
        rhs = np.einsum("kij,kj->ki", half, q[:, 1:]).reshape(-1)
        a, b, ty, tx = np.linalg.lstsq(rows, rhs, rcond=None)[0]
        matrix = np.eye(3)
        matrix[1:, 1:] = [[a, -b], [b, a]]
        offset = np.array([np.average(q[:, 0] - p[:, 0], weights=w), ty, tx])
        res = q - (p @ matrix.T + offset)
        err = np.linalg.norm(res, axis=1)
        mad = np.median(np.abs(err - np.median(err))) + 1e-6
        ok = err <= max(np.median(err) + 4 * mad, 0.5)
        if ok.all() or ok.sum() < MIN_BLOCKS:
            break
        p, q, w, g = p[ok], q[ok], w[ok], g[ok]
    sigma = 1.0 * BLOCK_UM
    return Registration(
        matrix,
        offset,
        p,
        q - (p @ matrix.T + offset),
        w,
        g,
        sigma,
        float(np.median(quality[keep])),
        angle,
        fixed.extent,
        moving.extent,
    )


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """(K, 2, 2) square roots of symmetric positive semi-definite (K, 2, 2) matrices."""
    vals, vecs = np.linalg.eigh(m)
    return np.einsum("kij,kj,klj->kil", vecs, np.sqrt(np.clip(vals, 0, None)), vecs)


def register(
    fixed_image: np.ndarray,
    moving_image: np.ndarray,
    fixed_voxel_um: tuple[float, float, float],
    moving_voxel_um: tuple[float, float, float] | None = None,
    name: str = "the sessions",
) -> Registration:
    """Register ``moving_image`` to ``fixed_image``, both (Z, Y, X) (any real dtype), voxel sizes
    (z, y, x) µm (the moving one defaults to the fixed one). Returns the :class:`Registration`
    (fixed µm -> moving µm). Raises :class:`RegistrationError` naming ``name`` when the fields do
    not overlap or nothing matched."""
    fixed = _prepare(np.asarray(fixed_image), fixed_voxel_um)
    moving = _prepare(np.asarray(moving_image), moving_voxel_um or fixed_voxel_um)
    reg, score = _global(fixed, moving)
    grid = np.stack(
        np.meshgrid(*(np.linspace(0, e, 9) for e in fixed.extent), indexing="ij"), -1
    ).reshape(-1, 3)
    overlap = reg.inside_moving(grid).mean()
    if overlap < MIN_OVERLAP or score < 0.05:
        raise RegistrationError(
            f"{name} do not overlap or do not look alike (overlap {overlap:.0%}, "
            f"correlation {score:.2f} after the best shift and rotation): cannot register them"
        )
    angle = reg.rotation_deg
    for _ in range(3):
        warped = _warp_work(reg, fixed, moving)
        centres, shifts, quality, tensors = _blocks(fixed, warped)
        fitted = _fit(reg, fixed, moving, centres, shifts, quality, tensors, angle)
        if fitted is None:
            break
        reg = fitted
    if len(reg.nodes_um) < MIN_BLOCKS:
        raise RegistrationError(
            f"{name} could not be registered: fewer than {MIN_BLOCKS} parts of the dendrite "
            "matched between them"
        )
    return reg
