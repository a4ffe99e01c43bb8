"""Training data from user-corrected segmentations (the correct-and-retrain loop).

A :class:`CorrectedVolume` is one image with the user's dendrite mask and spine instances, as
(Z, Y, X) arrays (a 2D plane is Z = 1). :func:`prepare_volume` checks a triple and says exactly
what is wrong with it; :func:`judged_held_out` marks a held-out volume's layers left as the
model drew them; :func:`edited_planes` finds the planes a user changed since the model wrote
them, from the per-plane hashes the plugin stores with its result layers and ``segment``'s run
records; :func:`save_corrections` writes the triples before training. The crops a training run
draws from the volumes are :mod:`.correction_crops`'.

No napari, no Qt: the training dock only translates layers into these calls.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..core import as_zyx, percentile_normalise
from ..errors import InputError

logger = logging.getLogger(__name__)


class SemanticSpinesError(InputError):
    """The spine layer holds one label for several separate objects (a semantic 0/1 mask).

    The GUI offers :func:`~napari_dendrite_panoptic.core.mask_to_instances`; ``n_objects`` says how many objects it would give.
    """

    def __init__(self, message: str, n_objects: int) -> None:
        super().__init__(message)
        self.n_objects = n_objects


@dataclass(frozen=True)
class CorrectedVolume:
    """One corrected image, ready to train on.

    ``image`` (Z, Y, X) float32 normalised like inference does (percentiles 1-99.8 → 0-1);
    ``dendrite`` (Z, Y, X) uint8 0/1; ``spines`` (Z, Y, X) int32 instance ids (0 = none);
    ``pixel_size_um`` the in-plane pixel size (None: unknown, taken as the model's);
    ``planes`` the z indices to train on; ``z_step_um`` the distance between planes of a stack
    (None: unknown; the stack path then takes 4-plane slabs); ``unedited`` the layers
    (``"spines"``, ``"dendrites"``) left as the model drew them: a held-out volume is not
    scored on those, since the base model would only be scored on its own answer there.
    """

    name: str
    image: np.ndarray
    dendrite: np.ndarray
    spines: np.ndarray
    pixel_size_um: float | None
    planes: tuple[int, ...]
    z_step_um: float | None = None
    unedited: tuple[str, ...] = ()


_ROLES = {"spines": "spine", "dendrites": "dendrite"}


def judged_held_out(
    volume: CorrectedVolume, unedited: Sequence[str], which: str
) -> tuple[CorrectedVolume, str | None]:
    """A held-out volume marked with its ``unedited`` layers ("spines", "dendrites": those still
    as the model drew them, which would only score the base model on its own answer), and a
    note when one of the networks that train (``which``) is therefore not judged. Raises
    :class:`InputError` when none of them can be."""
    trained = ("spines", "dendrites") if which == "both" else (which,)
    left = [role for role in trained if role in unedited]
    if len(left) == len(trained):
        what = " and ".join(f"{_ROLES[r]} labels" for r in left)
        raise InputError(
            f"'{volume.name}' is held out, but its {what} are as the model drew them, so they "
            "cannot judge the new model: correct them first, or do not hold it out."
        )
    note = None
    if left:
        judged = next(role for role in trained if role not in unedited)
        note = (
            f"'{volume.name}': its {_ROLES[left[0]]} labels are as the model drew them, so the "
            f"held-out scores judge the {_ROLES[judged]} network only."
        )
    return replace(volume, unedited=tuple(unedited)), note


def plane_hash(plane: Any) -> str:
    """A short hash of the values of one (Y, X) label plane, whatever its integer dtype (a file
    saved as uint16 that held uint8 labels hashes the same)."""
    values = np.ascontiguousarray(plane, dtype=np.int64)
    return hashlib.blake2b(values.tobytes(), digest_size=12).hexdigest()


def plane_hashes(labels: Any) -> list[str]:
    """One :func:`plane_hash` per plane of a (Y, X) or (Z, Y, X) label array (a plane: one entry).

    Stored with the plugin's result layers and in ``segment``'s run records so that
    :func:`edited_planes` can tell which planes the user changed afterwards.
    """
    return [plane_hash(p) for p in as_zyx(np.asarray(labels))]


def edited_planes(labels: Any, hashes: Sequence[str]) -> list[int]:
    """Indices of the planes of ``labels`` (Y, X) or (Z, Y, X) whose content differs from
    ``hashes`` (as written by :func:`plane_hashes`); every plane when the plane count differs."""
    now = plane_hashes(labels)
    if len(now) != len(hashes):
        return list(range(len(now)))
    return [i for i, (a, b) in enumerate(zip(now, hashes, strict=True)) if a != b]


def _shape_text(arr: Any) -> str:
    return " × ".join(str(int(s)) for s in np.shape(arr))


def prepare_volume(
    name: str,
    image: Any,
    dendrite: Any,
    spines: Any,
    pixel_size_um: float | None,
    which: str = "both",
    planes: Sequence[int] | None = None,
    z_step_um: float | None = None,
) -> tuple[CorrectedVolume, list[str]]:
    """Check one (image, dendrite labels, spine labels) triple and make a training volume.

    Parameters
    ----------
    name
        How the triple is named in messages (the image layer's name).
    image, dendrite, spines
        (Y, X) or (Z, Y, X) arrays of the same shape; any real dtype for ``image``, integer
        labels (dendrite: 0 background, > 0 dendrite; spines: one id per spine).
    pixel_size_um
        In-plane pixel size in µm, or None when unknown (the model's is assumed).
    which
        "both", "spines" or "dendrites": the networks to be trained (an empty layer is only an
        error when its network trains).
    planes
        z indices to use; None for all.
    z_step_um
        Distance in µm between the planes of a stack, or None when unknown (ignored for a
        plane).

    Returns
    -------
    volume, notes
        The volume and human-readable notes (e.g. dendrite ids > 1 read as one dendrite).

    Raises
    ------
    InputError
        Mismatched shapes, an empty layer, non-integer labels, a non-finite image, no plane.
    SemanticSpinesError
        The spine layer is a semantic 0/1 mask of several objects.
    """
    notes: list[str] = []
    img, den, spi = (as_zyx(np.asarray(a)) for a in (image, dendrite, spines))
    if img.ndim != 3 or img.shape[-2] < 8 or img.shape[-1] < 8:
        raise InputError(
            f"'{name}': the image must be a 2D plane or a 3D stack of at least 8 × 8 pixels, "
            f"not {_shape_text(image)}"
        )
    for role, arr, given in (("dendrite", den, dendrite), ("spine", spi, spines)):
        if arr.shape != img.shape:
            raise InputError(
                f"'{name}': the {role} layer is {_shape_text(given)} but the image is "
                f"{_shape_text(image)}; pick the labels that belong to this image"
            )
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise InputError(
                f"'{name}': the {role} layer must hold integer labels, not {arr.dtype}"
            )
    if not np.issubdtype(img.dtype, np.number) and img.dtype != bool:
        raise InputError(f"'{name}': the image has a non-numeric dtype {img.dtype}")
    which_spines = which in ("both", "spines")
    which_dendrites = which in ("both", "dendrites")
    if which_dendrites and not den.any():
        raise InputError(
            f"'{name}': the dendrite layer is empty. Paint the dendrite, or train the spine "
            "model only."
        )
    if which_spines and not spi.any():
        raise InputError(
            f"'{name}': the spine layer is empty. Paint the spines, or train the dendrite "
            "model only."
        )
    if int(den.max()) > 1:
        notes.append(
            f"'{name}': the dendrite layer has labels up to {int(den.max())}; every non-zero "
            "pixel is taken as dendrite."
        )
    if spi.any() and int(spi.max()) == 1:
        n_objects = int(ndi.label(spi > 0)[1])
        if n_objects > 1:
            raise SemanticSpinesError(
                f"'{name}': the spine layer labels all {n_objects} separate spines with the same "
                "id 1 (a semantic mask). Spines must be instances: split it into connected "
                "components first.",
                n_objects,
            )
    if int(spi.min()) < 0:
        raise InputError(f"'{name}': the spine layer has negative labels")
    chosen = tuple(range(img.shape[0])) if planes is None else tuple(sorted(set(planes)))
    if not chosen:
        raise InputError(f"'{name}': no plane to train on")
    if chosen[0] < 0 or chosen[-1] >= img.shape[0]:
        raise InputError(f"'{name}': plane index out of range 0..{img.shape[0] - 1}")
    if img.shape[0] > 1 and z_step_um is None:
        notes.append(
            f"'{name}': the stack has no z-step; it trains on projections of 4-plane slabs, "
            "as the stack path segments such a stack. Set the layer's scale to fit the slabs."
        )
    floats = img.astype(np.float32, copy=False)
    if not np.isfinite(floats).all():
        notes.append(f"'{name}': NaN or infinite pixels are read as 0.")
    volume = CorrectedVolume(
        name=name,
        image=percentile_normalise(floats),
        dendrite=(den > 0).astype(np.uint8),
        spines=spi.astype(np.int32),
        pixel_size_um=pixel_size_um,
        planes=chosen,
        z_step_um=z_step_um if img.shape[0] > 1 else None,
    )
    return volume, notes


def pixel_size_notes(
    train: Sequence[CorrectedVolume], held_out: Sequence[CorrectedVolume], native_px_um: float
) -> list[str]:
    """Sentences on the pixel sizes of a fine-tuning run's volumes: which are resampled to the
    model's ``native_px_um`` (µm) for training, and that training volumes without a pixel size
    are taken at the model's."""
    moved = [
        f"'{v.name}' ({v.pixel_size_um:g} µm)"
        for v in (*train, *held_out)
        if v.pixel_size_um is not None and abs(v.pixel_size_um / native_px_um - 1) > 0.02
    ]
    notes = []
    if moved:
        notes.append(
            f"Resampling {', '.join(moved)} to the model's pixel size of {native_px_um:g} µm "
            "for training."
        )
    unknown = [f"'{v.name}'" for v in train if v.pixel_size_um is None]
    if unknown:
        notes.append(
            f"{', '.join(unknown)} without a pixel size: taken at the model's {native_px_um:g} µm."
        )
    return notes


def save_corrections(folder: str | Path, volumes_raw: Sequence[dict[str, Any]]) -> list[Path]:
    """Write each corrected triple as TIFFs in ``folder`` (atomic writes), before training.

    ``volumes_raw``: dicts with ``name``, ``image``, ``dendrite``, ``spines`` (the arrays as the
    user has them) and ``voxel_size_um`` ((z, y, x) or None). Files:
    ``<name>_image.tif``, ``<name>_dendrite.tif``, ``<name>_spines.tif``. Returns the paths.
    """
    from ..io import write_labels_tiff, write_tiff_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used: set[str] = set()
    for entry in volumes_raw:
        stem = _safe_stem(entry["name"], used)
        voxel = entry.get("voxel_size_um")
        written.append(write_tiff_atomic(folder / f"{stem}_image.tif", entry["image"], voxel))
        for role in ("dendrite", "spines"):
            path = folder / f"{stem}_{role}.tif"
            written.append(write_labels_tiff(path, entry[role], voxel))
    return written


def _safe_stem(name: str, used: set[str]) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "image"
    candidate, k = stem, 1
    while candidate in used:
        k += 1
        candidate = f"{stem}_{k}"
    used.add(candidate)
    return candidate


"""Whether fine-tuning keeps the base model's BatchNorm statistics (docs/fine_tuning_measurements.md)."""
