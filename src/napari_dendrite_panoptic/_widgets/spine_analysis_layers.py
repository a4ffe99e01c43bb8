"""A spine analysis in napari layers: the table as the spine layer's ``features``, the skeleton as
a Shapes layer ``<spines> skeleton``, and the spine colours by type or by a measurement. Written
by the Spine analysis dock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import OURS, is_ours, placement, reusable_layer
from .spine_analysis_view import TYPE_COLOURS

if TYPE_CHECKING:
    import napari
    import pandas as pd


def spine_features(layer: Any, table: dict[str, np.ndarray]) -> pd.DataFrame:
    """The analysis table joined by ``id`` with the layer's other feature columns (e.g. the
    inference dock's ``score``), with napari's ``index`` column (label value of each row)."""
    import pandas as pd

    feats = pd.DataFrame(table)
    old = layer.features
    if "id" in old.columns and len(old):
        keep = [c for c in old.columns if c not in feats.columns and c != "index"]
        if keep:
            extra = old[["id", *keep]].drop_duplicates("id")
            extra = extra.astype({"id": feats["id"].dtype})
            feats = feats.merge(extra, on="id", how="left")
    feats.insert(0, "index", feats["id"].astype(int))
    return feats


def show_skeleton(viewer: napari.viewer.Viewer, spines_layer: Any, skeleton: Any) -> None:
    """Add (or refill) ``<spines> skeleton``: one cyan path per dendrite branch of ``skeleton``,
    placed like ``spines_layer``, with a ``branch_id`` feature per path.

    Only our own skeleton layer, with no paths drawn or changed by the user since, is refilled;
    else the skeleton goes into ``"<spines> skeleton [2]"`` (see :func:`reusable_layer`)."""
    from napari.layers import Shapes

    name = f"{spines_layer.name} skeleton"
    is2d = spines_layer.ndim == 2
    paths = [b.voxels[:, 1:] if is2d else b.voxels for b in skeleton.branches if len(b.voxels) > 1]

    def our_skeleton(layer: Any) -> bool:
        return (
            isinstance(layer, Shapes)
            and is_ours(layer)
            and layer.ndim == spines_layer.ndim
            and layer.metadata[OURS].get("paths_hash") == _paths_hash(layer.data)
        )

    layer, free = reusable_layer(viewer, name, our_skeleton, "the skeleton goes")
    place = placement(spines_layer)
    if layer is not None:
        layer.data = []
        if paths:
            layer.add_paths(paths, edge_color="cyan", edge_width=1.0)
        layer.scale, layer.translate = place["scale"], place["translate"]
        if "units" in place:
            layer.units = place["units"]
    elif paths:
        layer = viewer.add_shapes(
            paths, shape_type="path", name=free, edge_color="cyan", edge_width=1.0, **place
        )
    else:
        return
    layer.features = {"branch_id": [b.id for b in skeleton.branches if len(b.voxels) > 1]}
    layer.metadata = {
        **layer.metadata,
        OURS: {"role": "skeleton", "paths_hash": _paths_hash(layer.data)},
    }


def _paths_hash(data: list[np.ndarray]) -> str:
    """A digest of a Shapes layer's paths: tells later whether the user changed our skeleton."""
    import hashlib

    digest = hashlib.sha1()
    for path in data:
        arr = np.ascontiguousarray(np.asarray(path, dtype=np.float64))
        digest.update(str(arr.shape).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def spine_colormap(table: dict[str, np.ndarray], what: str) -> Any:
    """A label colormap of the spines of ``table``: by :data:`TYPE_COLOURS` when ``what`` is
    "type", else by the measurement ``what`` (viridis from its least to its greatest value)."""
    from napari.utils.colormaps import DirectLabelColormap
    from napari.utils.colormaps.colormap_utils import ensure_colormap

    ids = np.asarray(table["id"])
    colours: dict[Any, Any] = {None: "transparent", 0: "transparent"}
    if what == "type":
        for i, t in zip(ids, table["type"], strict=True):
            colours[int(i)] = TYPE_COLOURS.get(str(t), "white")
    else:
        v = np.asarray(table[what], dtype=float)
        finite = np.isfinite(v)
        lo, hi = (np.nanmin(v), np.nanmax(v)) if finite.any() else (0.0, 1.0)
        cmap = ensure_colormap("viridis")
        scaled = np.where(finite, (v - lo) / (hi - lo if hi > lo else 1.0), 0.0)
        for i, s in zip(ids, scaled, strict=True):
            colours[int(i)] = cmap.map(np.array([s]))[0]
    return DirectLabelColormap(color_dict=colours)
