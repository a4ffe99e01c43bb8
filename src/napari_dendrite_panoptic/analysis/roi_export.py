"""ImageJ/Fiji ROI set of spine outlines (``roifile``): one polygon per spine and plane."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..core import atomic_path
from ..errors import InputError


def spine_rois(spines: np.ndarray, types: dict[int, str] | None = None) -> list:
    """``roifile.ImagejRoi`` polygons: the outer contour of each spine in each plane.

    ``spines`` is a (Y, X) or (Z, Y, X) label image. A spine is one object through its planes:
    every ROI of it has the same name, ``spine-<id>`` (plus ``-<type>`` when ``types`` is
    given), so Fiji's ROI Manager lists its planes together; stacks set the ROI's
    ``z_position`` and ``position`` (1-based, as in Fiji) so each shows on its plane.
    """
    from roifile import ImagejRoi
    from skimage.measure import find_contours

    lab = np.asarray(spines)
    if lab.ndim == 2:
        lab = lab[None]
    if lab.ndim != 3:
        raise InputError(f"spine labels must be (Y, X) or (Z, Y, X), got shape {lab.shape}")
    is3d = lab.shape[0] > 1
    from scipy import ndimage as ndi

    rois = []
    for idx, sl in enumerate(ndi.find_objects(lab)):
        if sl is None:
            continue
        sid = idx + 1
        for z in range(sl[0].start, sl[0].stop):
            ys, xs = sl[1], sl[2]
            m = lab[z, ys, xs] == sid
            if not m.any():
                continue
            padded = np.pad(m, 1).astype(float)
            contours = find_contours(padded, 0.5)
            if not contours:
                continue
            c = max(contours, key=len)  # (row, col) in the padded crop
            xy = np.stack([c[:, 1] - 1 + xs.start + 0.5, c[:, 0] - 1 + ys.start + 0.5], axis=1)
            name = f"spine-{sid}"
            if types and sid in types:
                name += f"-{types[sid]}"
            roi = ImagejRoi.frompoints(xy.astype(np.float32), name=name)
            if is3d:
                roi.z_position = z + 1
                roi.position = z + 1
            rois.append(roi)
    return rois


def write_roi_zip(
    path: str | Path, spines: np.ndarray, types: dict[int, str] | None = None
) -> Path:
    """Write the spine outlines as an ImageJ ROI set (zip, opens in Fiji's ROI Manager),
    atomically; a spine's per-plane ROIs share its name, their files are ``<name>-z<plane>``."""
    rois = spine_rois(spines, types)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        used: set[str] = set()
        for roi in rois:
            name = roi.name + (f"-z{roi.z_position}" if roi.z_position else "")
            k = 2
            while name in used:
                name = f"{roi.name}-{k}"
                k += 1
            used.add(name)
            zf.writestr(f"{name}.roi", roi.tobytes())
    return Path(path)
