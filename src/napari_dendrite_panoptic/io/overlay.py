"""Overlay pictures: image (max projection) with dendrite tint and spine outlines, as RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..core import atomic_path


def overlay_rgb(image: np.ndarray, dendrite: np.ndarray, spines: np.ndarray) -> np.ndarray:
    """(Y, X, 3) uint8: grey max projection of (Z, Y, X) ``image``, dendrite tinted green,
    spine outlines in colours that differ between neighbouring ids."""
    proj = np.asarray(image, dtype=np.float32).max(axis=0)
    lo, hi = (
        np.percentile(proj[np.isfinite(proj)], [0.5, 99.8]) if np.isfinite(proj).any() else (0, 1)
    )
    grey = np.clip((proj - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    dend = np.asarray(dendrite).max(axis=0) > 0
    rgb[dend] = 0.6 * rgb[dend] + 0.4 * np.array([0.1, 0.9, 0.2])
    lab = np.asarray(spines).max(axis=0).astype(np.int64)
    edge = (ndi.grey_dilation(lab, size=3) != ndi.grey_erosion(lab, size=3)) & (
        ndi.grey_dilation(lab, size=3) > 0
    )
    rng = np.random.default_rng(0)
    palette = rng.uniform(0.35, 1.0, size=(int(lab.max()) + 1, 3))
    palette[:, 0] = 1.0  # warm colours: always distinct from the green dendrite tint
    owner = ndi.grey_dilation(lab, size=3)
    rgb[edge] = palette[owner[edge]]
    return (rgb * 255).round().astype(np.uint8)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (Y, X, 3) uint8 array as PNG atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return Path(path)
