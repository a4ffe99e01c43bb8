"""Per-branch summary of a spine table: spine count, density per µm, mean size, type fractions."""

from __future__ import annotations

import numpy as np

from ..core import SPINE_TYPES, ratio
from .skeleton import DendriteSkeleton


def branch_summary(
    skeleton: DendriteSkeleton, spines: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One row per skeleton branch.

    Parameters
    ----------
    skeleton
        The dendrite's skeleton (branch ids and lengths in µm).
    spines
        Spine table with ``branch_id``, ``area_um2`` or ``volume_um3`` and, if classified,
        ``type``.

    Returns
    -------
    dict of column → (B,) array
        ``branch_id``, ``length_um``, ``branch_type`` (skan), ``spine_count``,
        ``density_per_um`` (spines per µm of branch), ``mean_spine_area_um2`` or
        ``mean_spine_volume_um3`` (NaN without spines), ``mean_spine_length_um`` and
        ``fraction_<type>`` for each spine type.
    """
    table = skeleton.branch_table()
    keep = ["branch_id", "length_um", "branch_type"]
    out = {k: table[k] for k in keep}
    bids = np.asarray(spines.get("branch_id", np.zeros(0, np.int64)))
    size_col = "area_um2" if "area_um2" in spines else "volume_um3"
    sizes = np.asarray(spines.get(size_col, np.zeros(len(bids))), dtype=float)
    lengths = np.asarray(spines.get("length_um", np.full(len(bids), np.nan)), dtype=float)
    types = np.asarray(spines["type"]) if "type" in spines else None
    count, mean_size, mean_len = [], [], []
    fractions: dict[str, list[float]] = {t: [] for t in SPINE_TYPES}
    for bid in out["branch_id"]:
        on = bids == bid
        n = int(on.sum())
        count.append(n)
        mean_size.append(float(sizes[on].mean()) if n else np.nan)
        mean_len.append(float(lengths[on].mean()) if n else np.nan)
        for t in SPINE_TYPES:
            fractions[t].append(
                float(np.mean(types[on] == t)) if n and types is not None else np.nan
            )
    out["spine_count"] = np.asarray(count, dtype=np.int64)
    length = out["length_um"]
    out["density_per_um"] = np.where(
        length > 0, out["spine_count"] / np.maximum(length, 1e-9), np.nan
    )
    out[f"mean_spine_{size_col}"] = np.asarray(mean_size)
    out["mean_spine_length_um"] = np.asarray(mean_len)
    for t in SPINE_TYPES:
        out[f"fraction_{t}"] = np.asarray(fractions[t])
    return out


def overall_density_per_um(skeleton: DendriteSkeleton, spines: dict[str, np.ndarray]) -> float:
    """Spines on the skeleton per µm of total dendrite length (NaN without a skeleton)."""
    total = skeleton.length_um
    n = int(np.sum(np.asarray(spines.get("branch_id", [])) > 0))
    return ratio(n, total)
