"""A comparison's results as napari layers: the dendrite difference layer and the colour-coded
spine matches layer (Labels, or Points for centre ground truth), written by the Metrics dock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import evaluation as cmp
from ..evaluation import Table
from ._common import OURS, add_or_update_labels, is_ours, placement, reusable_layer

if TYPE_CHECKING:
    import napari


def show_comparison_layers(
    viewer: napari.viewer.Viewer, context: dict[str, Any], objects: Table
) -> Any:
    """Add (or update) the layers of one comparison, placed like its reference layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Receives ``<pred> vs <truth> differences`` (dendrites: 1 = FP, 2 = FN) and
        ``<pred> vs <truth> matches`` (spines: each object of ``objects`` painted with its
        ``index`` and coloured by status; a Points layer at the centres for point ground truth).
    context : dict
        The Metrics dock's job: ``layers`` (role → layer or None), ``arrays`` (role → array
        compared), ``ref`` (the layer whose scale and translate are used), ``points_layer``,
        ``ndim`` and ``plane`` (only that plane of the difference map is drawn when not None).
    objects : dict
        The per-object table of the comparison, column → array; becomes the layer features.

    Returns
    -------
    napari layer or None
        The matches layer, or None when no spines were compared.
    """
    layers, arrays, ref = context["layers"], context["arrays"], context["ref"]
    place = placement(ref)
    if "pred_dendrite" in arrays:
        diff = cmp.dendrite_diff_map(arrays["pred_dendrite"], arrays["truth_dendrite"])
        diff = _only_plane(diff, context.get("plane"))
        name = f"{layers['pred_dendrite'].name} vs {layers['truth_dendrite'].name} differences"
        meta = {"role": "differences", "values": {"1": "FP", "2": "FN"}}
        layer = add_or_update_labels(viewer, name, diff, metadata=meta, **place)
        colours = {1: cmp.STATUS_COLOURS["FP"], 2: cmp.STATUS_COLOURS["FN"]}
        layer.colormap = _direct_colormap(colours)
    if "pred_spines" not in arrays:
        return None
    import pandas as pd

    features = pd.DataFrame({c: objects[c] for c in objects})
    features = features[["index", *[c for c in features if c != "index"]]]
    pred = layers["pred_spines"]
    points_layer = context["points_layer"]
    truth_name = (points_layer or layers["truth_spines"]).name
    name = f"{pred.name} vs {truth_name} matches"
    if points_layer is None:
        status = cmp.spine_status_map(arrays["pred_spines"], arrays["truth_spines"], objects)
        meta = {"role": "matches", "colours": cmp.STATUS_COLOURS}
        layer = add_or_update_labels(
            viewer, name, status, metadata=meta, features=features, **place
        )
        colours = {
            int(i): cmp.STATUS_COLOURS[s]
            for i, s in zip(objects["index"], objects["status"], strict=True)
        }
        layer.colormap = _direct_colormap(colours)
    else:
        ndim = context["ndim"]
        cols = ["centroid_z_px", "centroid_y_px", "centroid_x_px"][-ndim:]
        data = np.column_stack([objects[c] for c in cols]) if len(features) else None
        colours = [cmp.STATUS_COLOURS[s] for s in objects["status"]]
        layer = _add_or_update_points(viewer, name, data, features, colours, ndim, place)
    return layer


def _only_plane(diff: np.ndarray, plane: int | None) -> np.ndarray:
    if plane is None:
        return diff
    out = np.zeros_like(diff)
    out[plane] = diff[plane]
    return out


def _direct_colormap(colours: dict[int, str]) -> Any:
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **colours})


def _add_or_update_points(viewer, name, data, features, colours, ndim, place) -> Any:
    """Our Points layer ``name`` (updated in place when it is ours, else a new name)."""
    from napari.layers import Points

    data = np.zeros((0, ndim)) if data is None else data
    meta = {OURS: {"role": "matches", "colours": cmp.STATUS_COLOURS}}

    def our_points(layer: Any) -> bool:
        return isinstance(layer, Points) and is_ours(layer) and layer.ndim == ndim

    existing, candidate = reusable_layer(viewer, name, our_points, "the matches go")
    if existing is not None:
        existing.data = data
        existing.features = features
        existing.face_color = colours if len(data) else "transparent"
        existing.scale, existing.translate = place["scale"], place["translate"]
        if "units" in place:
            existing.units = place["units"]
        return existing
    return viewer.add_points(
        data,
        name=candidate,
        features=features,
        face_color=colours if len(data) else "white",
        border_color="white",
        size=6,
        metadata=meta,
        **place,
    )
