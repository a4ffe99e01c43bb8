"""A finished inference run in the viewer: ``<image> dendrites`` and ``<image> spines`` Labels
layers (one ``features`` row per spine, the run record in the metadata) placed on the image's
grid, and the dock's one-line summary of the run. Written by the "Panoptic inference" dock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._common import add_or_update_labels

if TYPE_CHECKING:
    import napari


def show_result(viewer: napari.viewer.Viewer, result: Any, job: dict[str, Any]) -> str:
    """Add (or update) the two Labels layers of one run; returns the dock's status line.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Receives the layers.
    result : PanopticResult
        The engine's result for the image (or the time point) of ``job``.
    job : dict
        The dock's job: ``image_name``, ``index``, ``n_time``, ``config``, ``voxel``, ``scale``,
        ``translate``, ``units``, ``ndim``, ``input``, ``started``, ``t0``.
    """
    import pandas as pd

    dendrite, spines = result.dendrite, result.spines
    if job["ndim"] == 2:
        dendrite, spines = dendrite[0], spines[0]
    features = pd.DataFrame(result.table)
    features.insert(0, "index", features["id"].astype(int))
    info = _info(job, result, list(job["index"]), run_record=run_record(result, job))
    place = {"scale": job["scale"], "translate": job["translate"], "units": job["units"]}
    spines = spines.astype("uint32", copy=False)
    _add_layers(viewer, job["image_name"], dendrite, spines, features, info, place)
    stack = ""
    if job["ndim"] == 3 and dendrite.shape[0] > 1:  # which stack path ran, and why
        params = result.parameters
        stack = f" Stack mode {params['stack_mode_used']}: {params['stack_mode_reason']}."
    where = ""
    if job["index"]:
        where = f" at time point {job['index'][0]} (of {job['n_time']})"
    return (
        f"Done{where}: {len(features)} spine(s), model '{result.model_name}', "
        f"pixel size {result.voxel_size_um[-1]:g} µm ({result.pixel_size_source}).{stack}"
    )


def show_series(viewer: napari.viewer.Viewer, results: list[Any], job: dict[str, Any]) -> str:
    """Every time point's result as 4D+ Labels layers (leading axes as the image's); spine
    ids are made unique across time points, and each spine's row names its time point.
    Returns the dock's status line; ``job`` as for :func:`show_result`, with ``indices`` and
    ``lead`` (``scale``, ``translate``, ``unit`` of the image's time axis)."""
    import numpy as np
    import pandas as pd

    dendrite = np.stack([r.dendrite for r in results])
    spines = np.zeros((len(results), *results[0].spines.shape), np.uint32)
    tables, offset = [], 0
    for t, result in enumerate(results):
        spines[t] = np.where(result.spines > 0, result.spines.astype(np.uint32) + offset, 0)
        table = pd.DataFrame(result.table)
        table["id"] = table["id"].astype(int) + offset
        table.insert(0, "time_point", job["indices"][t][0])
        tables.append(table)
        offset = max(offset, int(spines[t].max()))
    features = pd.concat(tables, ignore_index=True)
    features.insert(0, "index", features["id"].astype(int))
    # the time axis is the layer's first (as recorded when the run started: the image may have
    # been renamed or removed since); other leading axes (a channel) stay as viewed
    lead = job["lead"]
    place = {
        "scale": [lead["scale"], *job["scale"]],
        "translate": [lead["translate"], *job["translate"]],
        "units": (
            None if job["units"] is None or lead["unit"] is None else [lead["unit"], *job["units"]]
        ),
    }
    records = [run_record(r, job) for r in results]
    info = _info(job, results[0], [list(i) for i in job["indices"]], run_records=records)
    _add_layers(viewer, job["image_name"], dendrite, spines, features, info, place)
    counts = features["time_point"].value_counts()
    per_t = ", ".join(str(int(counts.get(i[0], 0))) for i in job["indices"])
    return (
        f"Done: all {len(results)} time points, {len(features)} spine(s) ({per_t} per time "
        f"point), model '{results[0].model_name}', pixel size "
        f"{results[0].voxel_size_um[-1]:g} µm ({results[0].pixel_size_source})."
    )


def run_record(result: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The same run record the CLI writes to ``<stem>_run.json`` (see provenance.py)."""
    from ..inference import run_record as engine_run_record
    from ..models import load_models

    models = load_models(job["config"].model, job["config"].device)  # cached: no reload
    voxel = job["voxel"]
    return engine_run_record(
        result,
        models,
        input_path=job["input"]["path"],
        input_shape=job["input"]["shape"],
        input_dtype=job["input"]["dtype"],
        input_voxel_size_um=tuple(voxel) if voxel is not None else None,
        input_voxel_size_source="layer scale" if voxel is not None else "none (scale 1)",
        started=job["started"],
        duration_s=time.perf_counter() - job["t0"],
    )


def _info(job: dict[str, Any], result: Any, source_index: list, **records: Any) -> dict[str, Any]:
    """The metadata both result layers carry: source, model, pixel size, parameters, run
    record(s) of ``result`` (the first time point's for a series)."""
    return {
        "source_layer": job["image_name"],
        "source_index": source_index,
        "model_name": result.model_name,
        "model_folder": job["config"].model,
        "pixel_size_source": result.pixel_size_source,
        "voxel_size_um": list(result.voxel_size_um),
        "parameters": dict(result.parameters),
        **records,
    }


def _add_layers(
    viewer: Any,
    image_name: str,
    dendrite: Any,
    spines: Any,
    features: Any,
    info: dict[str, Any],
    place: dict[str, Any],
) -> None:
    """``<image> dendrites`` and ``<image> spines`` (with ``features``), each with ``info`` and
    its role as metadata, placed by ``place`` (scale, translate, units)."""
    for role, data, extra in (
        ("dendrites", dendrite, {}),
        ("spines", spines, {"features": features}),
    ):
        name = f"{image_name} {role}"
        meta = {**info, "role": role}
        add_or_update_labels(viewer, name, data, metadata=meta, **place, **extra)
