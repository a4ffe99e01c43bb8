"""Per-spine measurements from a dendrite mask, spine labels and the image, in µm.

For each spine (one id of the spine label image):

- **base** (attachment point): halfway between the centroid of the spine voxels that touch the
  dendrite (full connectivity) and the centroid of the dendrite voxels they touch; a spine that touches no dendrite voxel is based at its voxel closest to the
  dendrite (``attached`` False).
- **length**: distance (µm, anisotropic voxels respected) from the base to the spine's farthest
  voxel, plus half a pixel for the voxel's own extent.
- **width profile**: the spine is projected onto the x/y plane (a stack's spine along z) and cut
  into one-pixel slabs across its axis (base → tip in x/y); each slab's width is its longest run
  of pixels (so the two arms of a branched spine are not added up).
- **head diameter**: the largest slab width; **neck length**: from the base to the start of the
  head (head centre − half the head diameter), 0 for a spine without a neck; **neck width**:
  the median slab width along the neck (NaN without a neck).
- **tips**: end points of the projected spine's skeleton away from the base (2+ suggests a
  branched spine).
- area (a plane) or volume (a stack), mean and max intensity, parent branch and the distance of
  the base along it (from :class:`~.skeleton.DendriteSkeleton`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from .skeleton import DendriteSkeleton, skeletonize_dendrite

_STRUCT3 = np.ones((3, 3, 3), dtype=bool)


def _zyx(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{name} must be (Y, X) or (Z, Y, X), got shape {a.shape}")
    return a


def _runs_width(s_bins: np.ndarray) -> int:
    """Longest run of consecutive integer bins (gaps of one bin are bridged), in bins."""
    u = np.unique(s_bins)
    if u.size == 0:
        return 0
    breaks = np.flatnonzero(np.diff(u) > 2)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [u.size - 1]])
    return int((u[ends] - u[starts]).max()) + 1


def width_profile(
    yx_um: np.ndarray, base_yx_um: np.ndarray, axis_yx: np.ndarray, px_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """Widths (µm) of one-pixel slabs across a spine's axis.

    Parameters
    ----------
    yx_um
        (N, 2) pixel centres of the spine's x/y projection in µm.
    base_yx_um, axis_yx
        The base point (µm) and the unit axis direction in the plane.
    px_um
        Pixel size in µm (slab thickness and width quantum).

    Returns
    -------
    t_um, width_um
        Slab centre positions along the axis (µm from the base) and their widths (µm).
    """
    rel = yx_um - base_yx_um
    perp = np.array([-axis_yx[1], axis_yx[0]])
    t = rel @ axis_yx
    s = rel @ perp
    tb = np.round(t / px_um).astype(int)
    sb = np.round(s / px_um).astype(int)
    order = np.argsort(tb, kind="stable")
    tb, sb = tb[order], sb[order]
    keys, first = np.unique(tb, return_index=True)
    widths = [
        _runs_width(sb[a:b]) * px_um
        for a, b in zip(first, list(first[1:]) + [len(tb)], strict=True)
    ]
    return keys * px_um, np.asarray(widths, dtype=float)


def _count_tips(proj: np.ndarray, base_rc: np.ndarray, min_branch_px: float) -> int:
    """End points of the skeleton of a 2D spine mask, excluding the one nearest the base."""
    from skimage.morphology import skeletonize

    if proj.sum() < 4:
        return 1
    sk = skeletonize(ndi.binary_fill_holes(proj))
    if sk.sum() < 2:
        return 1
    neigh = ndi.convolve(sk.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    ends = np.argwhere(sk & (neigh == 1))
    if len(ends) == 0:
        return 1
    d = np.linalg.norm(ends - base_rc, axis=1)
    far = ends[d > min_branch_px]
    if len(far) <= 1:
        return 1
    # end points that lie close together (a forked pixel tip) count once
    keep: list[np.ndarray] = []
    for e in far[np.argsort(-np.linalg.norm(far - base_rc, axis=1))]:
        if all(np.linalg.norm(e - k) > min_branch_px for k in keep):
            keep.append(e)
    return max(len(keep), 1)


SPINE_COLUMNS_2D = (
    "id",
    "area_um2",
    "length_um",
    "head_diameter_um",
    "neck_length_um",
    "neck_width_um",
    "tips",
    "base_z_um",
    "base_y_um",
    "base_x_um",
    "tip_z_um",
    "tip_y_um",
    "tip_x_um",
    "attached",
    "branch_id",
    "distance_along_branch_um",
    "mean_intensity",
    "max_intensity",
)


def measure_spines(
    dendrite: np.ndarray,
    spines: np.ndarray,
    voxel_size_um: tuple[float, float, float],
    image: np.ndarray | None = None,
    skeleton: DendriteSkeleton | None = None,
) -> dict[str, np.ndarray]:
    """Measure every spine of a label image.

    Parameters
    ----------
    dendrite
        (Y, X) or (Z, Y, X) mask, non-zero on the dendrite shaft.
    spines
        Label image of the same shape, one integer id per spine (0 = none).
    voxel_size_um
        (z, y, x) voxel size in µm (z unused for a plane).
    image
        Optional intensities of the same shape for ``mean_intensity`` / ``max_intensity``
        (NaN without).
    skeleton
        The dendrite's skeleton; computed from ``dendrite`` when not given.

    Returns
    -------
    dict of column name → (N,) array
        One row per spine id (ascending). Columns: ``id``, ``area_um2`` (plane) or
        ``volume_um3`` (stack), ``length_um``, ``head_diameter_um``, ``neck_length_um``,
        ``neck_width_um``, ``tips``, ``base_{z,y,x}_um`` (attachment point), ``tip_{z,y,x}_um``,
        ``attached`` (touches the dendrite), ``branch_id`` (0 = none), ``distance_along_branch_um``,
        ``mean_intensity``, ``max_intensity``.
    """
    dend = _zyx(dendrite, "the dendrite mask") > 0
    lab = _zyx(spines, "the spine labels")
    if lab.shape != dend.shape:
        raise InputError(f"dendrite mask {dend.shape} and spine labels {lab.shape} differ in shape")
    img = None
    if image is not None:
        img = _zyx(image, "the image")
        if img.shape != lab.shape:
            raise InputError(f"image {img.shape} and spine labels {lab.shape} differ in shape")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"spine labels must be integers, got {lab.dtype}")
    voxel = np.asarray(voxel_size_um, dtype=float)
    is3d = lab.shape[0] > 1
    if not is3d:
        voxel = np.array([1.0, voxel[1], voxel[2]])
    px = float(np.sqrt(voxel[1] * voxel[2]))
    if skeleton is None:
        skeleton = skeletonize_dendrite(dend, tuple(voxel))

    contact = lab * ndi.binary_dilation(dend, _STRUCT3 if is3d else _STRUCT3[1:2])
    dist_to_dend = ndi.distance_transform_edt(~dend, sampling=voxel) if dend.any() else None
    objects = ndi.find_objects(lab)
    size_col = "volume_um3" if is3d else "area_um2"
    rows: dict[str, list] = {(size_col if c == "area_um2" else c): [] for c in SPINE_COLUMNS_2D}
    for idx, sl in enumerate(objects):
        if sl is None:
            continue
        sid = idx + 1
        # a margin of one voxel so the contact ring is inside the crop
        sl = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n))
            for s, n in zip(sl, lab.shape, strict=True)
        )
        off = np.array([s.start for s in sl])
        mask = lab[sl] == sid
        vox = np.argwhere(mask) + off
        pts = vox * voxel
        touch = np.argwhere(contact[sl] == sid) + off
        attached = len(touch) > 0
        if attached:
            # the interface: halfway between the spine's and the shaft's touching voxels
            ring = ndi.binary_dilation(mask, _STRUCT3 if is3d else _STRUCT3[1:2]) & dend[sl]
            shaft_side = np.argwhere(ring) + off
            base = 0.5 * (touch.mean(0) + shaft_side.mean(0)) * voxel
        elif dist_to_dend is not None:
            base = pts[np.argmin(dist_to_dend[tuple(vox.T)])]
        else:
            base = pts[np.argmax(np.linalg.norm(pts - pts.mean(0), axis=1))]
        d = np.linalg.norm(pts - base, axis=1)
        tip = pts[np.argmax(d)]
        length = float(d.max()) + 0.5 * px
        # x/y projection and width profile
        proj = mask.any(axis=0)
        yx = (np.argwhere(proj) + off[1:]) * voxel[1:]
        axis = tip[1:] - base[1:]
        norm = float(np.linalg.norm(axis))
        if norm < 0.5 * px:  # pointing along z: a round cross-section
            head_d = 2.0 * np.sqrt(proj.sum() * voxel[1] * voxel[2] / np.pi)
            neck_len, neck_w = 0.0, np.nan
        else:
            axis = axis / norm
            t, w = width_profile(yx, base[1:], axis, px)
            head_i = int(np.flatnonzero(w >= w.max() - 1e-9)[-1])
            head_d = float(w[head_i])
            head_start = float(t[head_i]) - head_d / 2
            neck = (t >= px) & (t < head_start)
            neck_len = max(head_start, 0.0)
            neck_w = float(np.median(w[neck])) if neck.any() and neck_len >= px else np.nan
            if np.isnan(neck_w):
                neck_len = 0.0
        base_rc = (base[1:] / voxel[1:]) - off[1:]
        tips = _count_tips(proj, base_rc, min_branch_px=max(2.0, 0.25 / px))
        n_vox = len(vox)
        rows["id"].append(sid)
        rows[size_col].append(n_vox * float(np.prod(voxel)) if is3d else n_vox * px * px)
        rows["length_um"].append(length)
        rows["head_diameter_um"].append(float(head_d))
        rows["neck_length_um"].append(float(neck_len))
        rows["neck_width_um"].append(float(neck_w))
        rows["tips"].append(tips)
        for j, a in enumerate("zyx"):
            rows[f"base_{a}_um"].append(float(base[j]))
            rows[f"tip_{a}_um"].append(float(tip[j]))
        rows["attached"].append(attached)
        if img is not None:
            vals = img[tuple(vox.T)].astype(float)
            rows["mean_intensity"].append(float(vals.mean()))
            rows["max_intensity"].append(float(vals.max()))
        else:
            rows["mean_intensity"].append(np.nan)
            rows["max_intensity"].append(np.nan)
    table = {k: np.asarray(v) for k, v in rows.items()}
    table["id"] = table["id"].astype(np.int64)
    table["tips"] = table["tips"].astype(np.int64)
    table["attached"] = table["attached"].astype(bool)
    n = len(table["id"])
    bases = np.stack([table[f"base_{a}_um"] for a in "zyx"], axis=1).reshape(n, 3)
    bid, along, _ = skeleton.nearest(bases)
    table["branch_id"] = bid
    table["distance_along_branch_um"] = along
    for k in list(table):
        if table[k].dtype == object or table[k].size == 0:
            table[k] = table[k].astype(
                np.int64 if k in ("id", "tips", "branch_id") else bool if k == "attached" else float
            )
    return table
