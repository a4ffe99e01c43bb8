"""Writing the analysis: spine CSV (segmentation table + measurements + type), branch CSV and
the Fiji ROI set, all atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import write_table_csv
from .pipeline import SpineAnalysis, analyse
from .roi_export import write_roi_zip


def analysis_paths(out: str | Path, stem: str) -> dict[str, Path]:
    """The files :func:`write_analysis_outputs` writes: ``<stem>_spines.csv``,
    ``<stem>_dendrites.csv``, ``<stem>_spines_roi.zip``."""
    out = Path(out)
    return {
        "csv": out / f"{stem}_spines.csv",
        "dendrites_csv": out / f"{stem}_dendrites.csv",
        "roi": out / f"{stem}_spines_roi.zip",
    }


def merged_spine_table(
    base: dict[str, np.ndarray] | None, analysis: SpineAnalysis
) -> dict[str, np.ndarray]:
    """The segmentation's table (``id``, centroids, size, score …) joined by ``id`` with the
    measurements and ``type``; measurement columns come after the base columns."""
    meas = analysis.spines
    if base is None or len(base.get("id", [])) == 0:
        return dict(meas)
    ids = np.asarray(base["id"])
    pos = {int(i): k for k, i in enumerate(meas["id"])}
    rows = np.array([pos.get(int(i), -1) for i in ids])
    out = dict(base)
    for col, values in meas.items():
        if col in out:
            continue
        values = np.asarray(values)
        if values.dtype.kind in "US":
            taken = np.where(rows >= 0, values[np.maximum(rows, 0)], "")
        else:
            fill = np.nan if values.dtype.kind == "f" else -1
            taken = np.where(rows >= 0, values[np.maximum(rows, 0)], fill)
        out[col] = taken
    return out


def write_tables(
    paths: dict[str, Path], analysis: SpineAnalysis, base_table: dict | None = None
) -> dict[str, Path]:
    """Write the spine and branch CSVs (units in the column names)."""
    write_table_csv(paths["csv"], merged_spine_table(base_table, analysis))
    write_table_csv(paths["dendrites_csv"], analysis.branches)
    return {"csv": paths["csv"], "dendrites_csv": paths["dendrites_csv"]}


def write_analysis_outputs(
    out: str | Path,
    stem: str,
    dendrite: np.ndarray,
    spines: np.ndarray,
    voxel_size_um: tuple[float, float, float],
    image: np.ndarray | None = None,
    base_table: dict[str, np.ndarray] | None = None,
) -> dict[str, Path]:
    """Analyse one segmentation and write ``<stem>_spines.csv`` (the segmentation's table with
    the measurements and ``type``), ``<stem>_dendrites.csv`` (one row per branch) and
    ``<stem>_spines_roi.zip`` (Fiji ROI set) into ``out``; returns the written paths.

    Arrays are (Y, X) or (Z, Y, X); ``voxel_size_um`` (z, y, x) in µm.
    """
    result = analyse(dendrite, spines, voxel_size_um, image)
    paths = analysis_paths(out, stem)
    written = write_tables(paths, result, base_table)
    types = {
        int(i): str(t) for i, t in zip(result.spines["id"], result.spines["type"], strict=True)
    }
    written["roi"] = write_roi_zip(paths["roi"], spines, types)
    return written
