"""Training data from the layers of the "Train on corrections" dock: each chosen (image, dendrite
labels, spine labels, held out) row of layer names becomes a checked
:class:`~napari_dendrite_panoptic.data.CorrectedVolume`, plus the raw arrays that are saved
with the new model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import (
    edited_by_user,
    edited_planes_of,
    scale_is_calibrated,
    spatial_data,
    voxel_size_from_scale,
)

if TYPE_CHECKING:
    import napari


def collect_training_data(
    viewer: napari.viewer.Viewer,
    rows: Sequence[tuple[str, str, str, bool]],
    which: str,
    only_edited: bool,
    on_semantic: Callable[[int], None],
) -> tuple[list[Any], list[Any], list[dict[str, Any]], list[str]]:
    """Check the dock's rows and turn their layers into training data.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Holds the named layers; 4D+ layers give the volume at its current position.
    rows : sequence of (image, dendrite, spines, held out)
        Layer names per row ("" for none); rows without an image are skipped.
    which : str
        "both", "spines" or "dendrites": the networks that will train.
    only_edited : bool
        Train only on the planes edited since the inference dock wrote the labels (held-out rows
        always use every plane).
    on_semantic : callable
        Called with the row index when its spine layer is a semantic mask, before the
        :class:`~napari_dendrite_panoptic.data.SemanticSpinesError` is raised.

    Returns
    -------
    train, held_out, raw, notes
        Volumes to train on, held-out volumes, the training rows' arrays (``name``, ``image``,
        ``dendrite``, ``spines``, ``voxel_size_um``) and notes for the user.

    Raises
    ------
    InputError
        With a message for the user: no image, a missing or repeated labels layer, an RGB image,
        nothing left to train on, or a triple that :func:`prepare_volume` refuses.
    """
    from ..data import SemanticSpinesError, prepare_volume
    from ..errors import InputError

    train, held, raw, notes = [], [], [], []
    if not any(r[0] for r in rows):
        raise InputError("Add at least one corrected image (image, dendrite and spine labels).")
    for row, (image_name, den_name, spi_name, held_out) in enumerate(rows):
        if not image_name:
            continue
        if not den_name or not spi_name:
            raise InputError(
                f"'{image_name}': choose its dendrite and its spine Labels layer "
                "(the same layer cannot be both)."
            )
        if den_name == spi_name:
            raise InputError(f"'{image_name}': the dendrite and spine layers are the same layer")
        image_layer = viewer.layers[image_name]
        if getattr(image_layer, "rgb", False):
            raise InputError(f"'{image_name}' is an RGB image: split the channels first.")
        image, _ = spatial_data(image_layer, viewer)
        den_layer, spi_layer = viewer.layers[den_name], viewer.layers[spi_name]
        dendrite = np.asarray(spatial_data(den_layer, viewer)[0])
        spines = np.asarray(spatial_data(spi_layer, viewer)[0])
        scale = [float(s) for s in image_layer.scale[-image.ndim :]]
        voxel = voxel_size_from_scale(scale) if scale_is_calibrated(scale) else None
        planes = None
        if only_edited and not held_out:
            planes, note = edited_planes(image_name, den_layer, spi_layer, which)
            if note:
                notes.append(note)
        try:
            volume, more = prepare_volume(
                image_name,
                image,
                dendrite,
                spines,
                voxel[1] if voxel else None,
                which,
                planes,
                z_step_um=voxel[0] if voxel and np.ndim(image) == 3 else None,
            )
        except SemanticSpinesError:
            on_semantic(row)
            raise
        notes += more
        if held_out:
            volume, note = _judged_layers(volume, den_layer, spi_layer, which)
            notes += [note] if note else []
        (held if held_out else train).append(volume)
        if not held_out:
            raw.append(
                {
                    "name": image_name,
                    "image": np.array(image),
                    "dendrite": dendrite.copy(),
                    "spines": spines.copy(),
                    "voxel_size_um": voxel,
                }
            )
    if not train:
        raise InputError("Every chosen image is held out: leave at least one to train on.")
    return train, held, raw, notes


def _judged_layers(
    volume: Any, den_layer: Any, spi_layer: Any, which: str
) -> tuple[Any, str | None]:
    """A held-out row's volume with its ``unedited`` layers (those still as the model drew
    them), by :func:`~napari_dendrite_panoptic.data.judged_held_out`."""
    from ..data import judged_held_out

    layers = {"spines": spi_layer, "dendrites": den_layer}
    unedited = [role for role, layer in layers.items() if not edited_by_user(layer)]
    return judged_held_out(volume, unedited, which)


def edited_planes(
    name: str, den_layer: Any, spi_layer: Any, which: str
) -> tuple[list[int] | None, str | None]:
    """The planes of a row edited since the inference dock wrote its labels (of the layers whose
    network trains, ``which``), and a note.

    Returns (None, note) when a layer carries no record of what was written (every plane is then
    used); raises :class:`~napari_dendrite_panoptic.errors.InputError` when no plane was edited.
    """
    from ..errors import InputError

    layers = {"both": (den_layer, spi_layer), "spines": (spi_layer,)}.get(which, (den_layer,))
    found = [edited_planes_of(layer) for layer in layers]
    if any(f is None for f in found):
        return None, (
            f"'{name}': a chosen labels layer was not written by the inference dock, so "
            "every plane is used."
        )
    planes = sorted(set().union(*found))
    if not planes:
        raise InputError(
            f"'{name}': no plane was edited since the model segmented it. Correct some "
            "planes first, or untick 'Only planes I edited'."
        )
    return planes, None
