"""Training data from user-corrected segmentations (the correct-and-retrain loop).

A :class:`CorrectedVolume` is one image with the user's dendrite mask and spine instances, as
(Z, Y, X) arrays (a 2D plane is Z = 1). :func:`prepare_volume` checks a triple and says exactly
what is wrong with it; :func:`correction_source` turns volumes into the training engine's
:data:`~napari_dendrite_panoptic.data.SampleSource` (random crops at the model's pixel
size: of single planes and, for stacks, of the slab projections the stack path segments);
:func:`edited_planes` finds the planes a user changed since the model wrote them, from the
per-plane hashes the plugin stores with its result layers.

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

from ..core import (
    IGNORE,  # dendrite target of padding outside the image
    SLAB_UM,
    as_zyx,
    percentile_normalise,
    sampled_percentiles,
    slab_planes,
    slab_ranges,
)
from ..errors import InputError
from .samples import (
    WHOLE_STACK_SHARE,
    SampleSource,
    TrainingSample,
    plane_neighbours,
    projected_spines,
)

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


def steps_per_epoch(
    volumes: Sequence[CorrectedVolume], crop: int, native_px_um: float, batch_size: int
) -> int:
    """Batches that show the model about every chosen pixel once (at the model's pixel size)."""
    area = 0.0
    for v in volumes:
        zoom = (v.pixel_size_um or native_px_um) / native_px_um
        area += len(v.planes) * v.image.shape[1] * v.image.shape[2] * zoom * zoom
    return max(1, int(np.ceil(area / (crop * crop) / batch_size)))


def _crop_window(
    rng: np.random.Generator, mask: np.ndarray, size: int
) -> tuple[int, int]:  # top-left corner of a ``size`` window, biased to annotated pixels
    h, w = mask.shape
    if rng.random() < 0.8:
        ys, xs = np.nonzero(mask)
        if ys.size:
            k = int(rng.integers(ys.size))
            cy, cx = ys[k], xs[k]
            y0 = int(np.clip(cy - int(rng.integers(size)), 0, max(h - size, 0)))
            x0 = int(np.clip(cx - int(rng.integers(size)), 0, max(w - size, 0)))
            return y0, x0
    return int(rng.integers(max(h - size, 0) + 1)), int(rng.integers(max(w - size, 0) + 1))


def _pad_to(a: np.ndarray, size: int, value: float) -> np.ndarray:
    ph, pw = size - a.shape[0], size - a.shape[1]
    if ph <= 0 and pw <= 0:
        return a
    return np.pad(a, ((0, max(ph, 0)), (0, max(pw, 0))), constant_values=value)


STACK_SLAB_SHARE = 1.0
"""Share of a corrected stack's crops cut from projections of its slabs (the view the default
stack path segments, ``inference/slabs.py``); the others are single planes (the ``planes``
path's view). All of them: on two-photon-like stacks of an unseen style, 150 steps on plane
crops cost the stack path 0.13 spine F1, on half slab crops 0.02, on slab crops alone nothing;
600 steps on slab crops gained 0.04 (``benchmarks/bench_finetune.py --stacks``,
docs/fine_tuning_measurements.md)."""


@dataclass(frozen=True)
class _Projection:
    """One view of a corrected stack as the stack path sees it: the maximum projection of
    planes [first, last), normalised with the other views of its kind, and where it holds
    annotations (to centre crops on)."""

    first: int
    last: int
    lo: float
    span: float
    annotated: np.ndarray


def stack_projections(
    volume: CorrectedVolume, slab_um: float = SLAB_UM
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The [first, last) plane ranges of ``volume`` whose projections it trains on: the slabs
    the stack path cuts it into (``slab_um`` thick at its z-step, 4 planes when unknown) and
    the whole stack (the view the stack path finds the dendrite on). Only ranges of which
    every plane is one of ``volume.planes``: a plane nobody corrected still holds the model's
    own answer. Returns (slabs, whole); both empty for a single plane."""
    nz = volume.image.shape[0]
    if nz < 2:
        return [], []
    chosen = set(volume.planes)
    planes = slab_planes(nz, volume.z_step_um, slab_um)
    slabs = [r for r in slab_ranges(nz, planes) if chosen.issuperset(range(*r))]
    whole = [(0, nz)] if len(chosen) == nz else []
    return [r for r in slabs if r != (0, nz)], whole


def _projection_views(volume: CorrectedVolume, slab_um: float) -> tuple[list, list]:
    """:class:`_Projection` s of the slabs and of the whole stack; the slabs normalised
    together, the whole stack on its own (as ``inference/slabs.py`` does)."""
    out = []
    for ranges in stack_projections(volume, slab_um):
        views = []
        if ranges:
            images = np.stack([volume.image[a:b].max(0) for a, b in ranges])
            lo, hi = sampled_percentiles(images, 1.0, 99.8) or (0.0, 1.0)
            for a, b in ranges:
                marks = (volume.dendrite[a:b] > 0).any(0) | (volume.spines[a:b] > 0).any(0)
                views.append(_Projection(a, b, lo, max(hi - lo, 1e-6), marks))
        out.append(views)
    return out[0], out[1]


def correction_source(
    volumes: Sequence[CorrectedVolume],
    crop: int,
    native_px_um: float,
    neighbours: bool = False,
    slab_share: float = STACK_SLAB_SHARE,
    slab_um: float = SLAB_UM,
) -> SampleSource:
    """A sample source drawing ``crop`` × ``crop`` crops at ``native_px_um`` from the chosen
    planes of ``volumes``, each volume and plane in proportion to its area, mostly around
    annotated pixels. Regions outside the image are padded (dendrite target ignored there).
    ``neighbours``: crops of stacks carry the planes below and above (3-plane networks).

    ``slab_share`` of a stack's crops are cut from maximum projections of its slabs
    (``slab_um`` thick, as the stack path cuts it; :func:`stack_projections`), 30 % of those
    from the whole stack's: the spines of a projection are those with at least a third of
    their voxels in the slab (the brightest one in each column), the dendrite is taught on the
    whole stack's projection only."""
    if not volumes:
        raise InputError("no corrected image to train on")
    entries = [(v, z) for v in volumes for z in v.planes]
    weights = np.array([v.image.shape[1] * v.image.shape[2] for v, _ in entries], float)
    weights /= weights.sum()
    masks = {(id(v), z): (v.dendrite[z] > 0) | (v.spines[z] > 0) for v, z in entries}
    views = {id(v): _projection_views(v, slab_um) for v in volumes if v.image.shape[0] > 1}

    def draw(rng: np.random.Generator) -> TrainingSample:
        v, z = entries[int(rng.choice(len(entries), p=weights))]
        scale = (v.pixel_size_um or native_px_um) / native_px_um  # output px per input px
        size = max(8, int(round(crop / scale)))
        view = _pick_view(rng, views.get(id(v)), slab_share)
        if view is not None:
            return _projection_crop(rng, v, view, size, scale, crop)
        y0, x0 = _crop_window(rng, masks[(id(v), z)], size)
        window = np.s_[y0 : y0 + size, x0 : x0 + size]
        img, den, spi = v.image[z][window], v.dendrite[z][window], v.spines[z][window]
        around = []
        if neighbours and v.image.shape[0] > 1:
            around = [a[window] for a in plane_neighbours(v.image, z)]
        return _finish(img, den, spi, around, scale, crop, "corrections")

    return draw


def _pick_view(
    rng: np.random.Generator, views: tuple[list, list] | None, share: float
) -> _Projection | None:
    """A projection view of a stack for ``share`` of its crops, or None (a plane crop)."""
    if not views or not (views[0] or views[1]) or rng.random() >= share:
        return None
    slabs, whole = views
    if whole and (not slabs or rng.random() < WHOLE_STACK_SHARE):
        return whole[0]
    return slabs[int(rng.integers(len(slabs)))]


def _projection_crop(
    rng: np.random.Generator,
    v: CorrectedVolume,
    view: _Projection,
    size: int,
    scale: float,
    crop: int,
) -> TrainingSample:
    """A crop of one projection view of stack ``v`` with its spines and (for the whole stack)
    its dendrite."""
    y0, x0 = _crop_window(rng, view.annotated, size)
    rows, cols = slice(y0, y0 + size), slice(x0, x0 + size)
    slab = slice(view.first, view.last)
    light = v.image[slab, rows, cols]  # only the slab's planes are read
    img = (light.max(0) - view.lo) / view.span
    spi = projected_spines(light, v.spines[:, rows, cols], slab)
    if view.first == 0 and view.last == v.image.shape[0]:
        den = (v.dendrite[:, rows, cols].any(0) & (spi == 0)).astype(np.uint8)
    else:  # the stack path finds the dendrite on the whole stack's projection only
        den = np.full(spi.shape, IGNORE, np.uint8)
    return _finish(img, den, spi, [], scale, crop, "corrections (slab projections)")


def _finish(
    img: np.ndarray,
    den: np.ndarray,
    spi: np.ndarray,
    around: list[np.ndarray],
    scale: float,
    crop: int,
    source: str,
) -> TrainingSample:
    """Resample a window to the model's pixel size and pad it to ``crop`` × ``crop``."""
    if abs(scale - 1) > 0.02:
        img = ndi.zoom(img, scale, order=1)
        den = ndi.zoom(den, scale, order=0)
        spi = ndi.zoom(spi, scale, order=0)
        around = [ndi.zoom(a, scale, order=1) for a in around]
    img = _pad_to(img, crop, 0.0)[:crop, :crop]
    den = _pad_to(den, crop, IGNORE)[:crop, :crop]
    spi = _pad_to(spi, crop, 0)[:crop, :crop]
    around = [_pad_to(a, crop, 0.0)[:crop, :crop] for a in around]
    return TrainingSample(
        img.astype(np.float32),
        den.astype(np.uint8),
        spi.astype(np.int32),
        1.0,
        source,
        np.stack(around).astype(np.float32) if around else None,
    )


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
