"""Spine analysis: dendrite skeleton and length, per-spine measurements, spine types, per-branch
density, and the tables and ROI sets users export. Plain numpy/scipy/skan; no napari or Qt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .branch_summary import branch_summary, overall_density_per_um
from .skeleton import DendriteSkeleton, skeletonize_dendrite
from .spine_measurements import measure_spines
from .spine_types import TypeRules, classify


@dataclass
class SpineAnalysis:
    """Result of :func:`analyse`: ``spines`` and ``branches`` are column tables (units in the
    column names), ``skeleton`` the dendrite skeleton, ``type_method`` "learned" or "rules"."""

    spines: dict[str, np.ndarray]
    branches: dict[str, np.ndarray]
    skeleton: DendriteSkeleton
    voxel_size_um: tuple[float, float, float]
    type_method: str
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def density_per_um(self) -> float:
        """Spines per µm of dendrite, over all branches."""
        return overall_density_per_um(self.skeleton, self.spines)


def analyse(
    dendrite: np.ndarray,
    spines: np.ndarray,
    voxel_size_um: tuple[float, float, float],
    image: np.ndarray | None = None,
    type_method: str = "auto",
    rules: TypeRules | None = None,
) -> SpineAnalysis:
    """Skeleton, spine measurements and types, and the branch summary of one image.

    Parameters
    ----------
    dendrite, spines, image
        (Y, X) or (Z, Y, X) arrays of one shape: dendrite mask (non-zero = shaft), spine labels
        (int ids), intensities (optional; the learned type classifier needs it).
    voxel_size_um
        (z, y, x) in µm.
    type_method
        ``"auto"`` (learned when possible), ``"learned"`` or ``"rules"``.
    """
    t0 = time.perf_counter()
    dendrite = np.asarray(dendrite)
    spines = np.asarray(spines)
    skel = skeletonize_dendrite(dendrite, voxel_size_um)
    table = measure_spines(dendrite, spines, voxel_size_um, image, skeleton=skel)
    types, method = classify(table, image, dendrite, spines, voxel_size_um, type_method, rules)
    table["type"] = types
    branches = branch_summary(skel, table)
    return SpineAnalysis(
        table,
        branches,
        skel,
        tuple(float(v) for v in voxel_size_um),
        method,
        time.perf_counter() - t0,
    )
