"""napari sample data: synthetic two-photon dendrite images with their ground truth.

Each command returns napari layer data: the image plus two Labels layers (dendrite mask and spine
ids), all with the voxel size in µm as ``scale``, so measurements in napari come out in µm.
"""

from __future__ import annotations

from typing import Any

from ._reader import _layers_take_units
from .data import synthetic

LayerData = tuple[Any, dict[str, Any], str]


def sample_stack() -> list[LayerData]:
    """A synthetic 3D stack (12, 256, 256) at 0.1 µm/px and 0.5 µm z steps, with ground truth.

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``synthetic stack`` (image), ``synthetic stack ground truth dendrite`` and
        ``synthetic stack ground truth spines`` (labels), scale (z, y, x) in µm.
    """
    return _layers(synthetic.sample_stack(), "synthetic stack", squeeze_z=False)


def sample_plane() -> list[LayerData]:
    """A synthetic 2D plane (384, 384) at 0.1 µm/px with two dendrites, with ground truth.

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``synthetic plane`` (image), ``synthetic plane ground truth dendrite`` and
        ``synthetic plane ground truth spines`` (labels), scale (y, x) in µm.
    """
    return _layers(synthetic.sample_plane(), "synthetic plane", squeeze_z=True)


def _layers(sample: synthetic.SyntheticSample, name: str, squeeze_z: bool) -> list[LayerData]:
    """Image + ground-truth layer data of one sample, (Y, X) when ``squeeze_z``."""
    voxel = tuple(float(v) for v in sample.voxel_size_um)
    scale = list(voxel[1:] if squeeze_z else voxel)
    common: dict[str, Any] = {"scale": scale}
    if _layers_take_units():
        common["units"] = ["µm"] * len(scale)

    def arr(a):
        return a[0] if squeeze_z else a

    image_meta = {"voxel_size_um": list(voxel), "voxel_size_source": "synthetic"}
    return [
        (arr(sample.image), {**common, "name": name, "metadata": image_meta}, "image"),
        (arr(sample.dendrite), {**common, "name": f"{name} ground truth dendrite"}, "labels"),
        (
            arr(sample.spines),
            {
                **common,
                "name": f"{name} ground truth spines",
                "metadata": {"spine_types": {str(k): v for k, v in sample.spine_types.items()}},
            },
            "labels",
        ),
    ]
