"""Training samples: one (image, dendrite mask, spine instance labels) triple per draw.

Every source yields :class:`TrainingSample` crops at the model's native pixel size. The generator
source draws a new random configuration per sample (morphology, optics, noise, distractors) with
pixel-size jitter around the native size; exact masks supervise both networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from ..core import percentile_normalise
from ..errors import InputError
from . import synthetic


@dataclass
class TrainingSample:
    """One 2D crop: ``image`` (H, W) float32 normalised, ``dendrite`` (H, W) uint8 0/1 (255 where
    the dendrite is not annotated), ``spines`` (H, W) int32 ids (0 none), ``spine_weight`` 1.0
    when spine masks are exact, lower for pseudo-masks grown from centres. ``neighbours``
    (2, H, W) float32: the planes below and above in a stack (normalised as ``image``; at the
    stack's ends the plane itself), or None for a 2D image."""

    image: np.ndarray
    dendrite: np.ndarray
    spines: np.ndarray
    spine_weight: float = 1.0
    source: str = ""
    neighbours: np.ndarray | None = None

    def __post_init__(self) -> None:
        shapes = {k: tuple(np.shape(getattr(self, k))) for k in ("image", "dendrite", "spines")}
        if self.neighbours is not None:
            shapes["neighbours"] = tuple(np.shape(self.neighbours))[1:]
        if (
            len(set(shapes.values())) != 1
            or len(shapes["image"]) != 2
            or (self.neighbours is not None and len(self.neighbours) != 2)
        ):
            described = ", ".join(f"{k} {v}" for k, v in shapes.items())
            where = f" ({self.source})" if self.source else ""
            around = "" if self.neighbours is None else " with two neighbouring planes"
            raise InputError(
                f"a training sample{where} needs 2D image, dendrite and spine layers of one "
                f"shape{around}; got {described}"
            )


def network_input(sample: TrainingSample, planes: int) -> np.ndarray:
    """(planes, H, W) float32 that a network with ``planes`` input planes (1 or 3) sees: the
    plane alone, or the planes below, at and above it (a 2D image repeats its plane)."""
    if planes == 1:
        return sample.image[None]
    if planes != 3:
        raise InputError(f"training supports 1 or 3 input planes, not {planes}")
    if sample.neighbours is None:
        return np.repeat(sample.image[None], 3, axis=0)
    return np.stack([sample.neighbours[0], sample.image, sample.neighbours[1]])


def plane_neighbours(stack: np.ndarray, z: int) -> np.ndarray:
    """(2, H, W) planes ``z - 1`` and ``z + 1`` of a (Z, H, W) ``stack``, each clamped to the
    stack (an end plane stands in for the missing one)."""
    last = stack.shape[0] - 1
    return stack[[max(z - 1, 0), min(z + 1, last)]]


def generator_sample(
    rng: np.random.Generator,
    crop: int,
    native_px_um: float,
    p3d: float = 0.25,
    neighbours: bool = False,
) -> TrainingSample:
    """A crop from a freshly generated image at ``native_px_um`` × jitter (0.75-1.35).

    With probability ``p3d`` the crop is one plane of a generated 3D stack (out-of-focus light
    from neighbouring planes included); otherwise a 2D plane. ``neighbours``: a 3D crop also
    carries the planes below and above (for networks with 3 input planes).
    """
    is3d = rng.random() < p3d
    shape = (int(rng.integers(5, 10)), crop, crop) if is3d else (1, crop, crop)
    cfg = synthetic.random_config(rng, shape=shape)
    px = native_px_um * float(rng.uniform(0.75, 1.35))
    cfg = replace(cfg, pixel_size_um=px)
    sample = synthetic.generate(int(rng.integers(2**31)), cfg)
    z = int(rng.integers(shape[0]))
    if is3d:  # prefer planes that cut through the dendrite
        per_plane = sample.dendrite.reshape(shape[0], -1).sum(1)
        if per_plane.max() > 0:
            z = int(rng.choice(np.flatnonzero(per_plane >= 0.3 * per_plane.max())))
    image = percentile_normalise(sample.image[z])
    around = None
    if neighbours and is3d:
        around = percentile_normalise(plane_neighbours(sample.image, z), reference=sample.image[z])
    return TrainingSample(image, sample.dendrite[z], sample.spines[z], 1.0, "generator", around)


SLAB_UM = (2.0, 6.0)
"""Range (µm) of the slab thicknesses :func:`slab_sample` projects: around the 3 µm slabs of
the stack path and up to a thin stack projected whole."""

WHOLE_STACK_SHARE = 0.3
"""Share of :func:`slab_sample` crops that project the whole stack (the only view the stack
path finds the dendrite on, and a thin stack's one view)."""

SLAB_SPINE_SHARE = 1 / 3
"""A spine is a spine of a slab's projection when at least this share of its voxels lies in
the slab; the others are left to the slabs that hold them (their blur is background here)."""


def slab_sample(rng: np.random.Generator, crop: int, native_px_um: float) -> TrainingSample:
    """A crop of a generated stack's maximum-intensity projection over a slab of planes, as
    the stack path segments a stack (slabs normalised together, each spine found in the slab
    that holds it).

    Half the stacks are two-photon-like (:func:`.synthetic.generate_twophoton`: axial blur
    1.5-3 µm, spines pointing up or down, puncta, haze), half from :func:`.synthetic.generate`;
    pixel size ``native_px_um`` × jitter (0.75-1.35); slabs 2-6 µm thick (:data:`SLAB_UM`).
    :data:`WHOLE_STACK_SHARE` of the crops project the whole stack. Truth: a pixel is the spine
    whose in-slab voxel is brightest in its column (spines with at least
    :data:`SLAB_SPINE_SHARE` of their voxels in the slab); the dendrite where the slab holds
    dendrite voxels on a whole-stack projection, not annotated (255) on a thinner slab.
    """
    stack = _generated_stack(rng, crop, native_px_um)
    z_step = float(stack.voxel_size_um[0])
    nz = stack.image.shape[0]
    planes = int(np.clip(round(rng.uniform(*SLAB_UM) / z_step), 2, nz))
    if rng.random() < WHOLE_STACK_SHARE:
        planes = nz
    starts = list(range(0, nz - planes + 1, max(1, planes // 2)))
    light = stack.image.astype(np.float32)
    # the slabs of a stack are normalised together, as the stack path does
    reference = np.stack([light[s : s + planes].max(0) for s in starts])
    per_slab = [stack.dendrite[s : s + planes].sum() for s in starts]
    cut = [s for s, n in zip(starts, per_slab, strict=True) if n >= 0.3 * max(per_slab)]
    z0 = int(rng.choice(cut)) if max(per_slab) > 0 else int(rng.choice(starts))
    slab = slice(z0, z0 + planes)
    image = percentile_normalise(reference[starts.index(z0)], reference=reference)
    spines = projected_spines(light[slab], stack.spines, slab)
    dendrite = (stack.dendrite[slab].any(0) & (spines == 0)).astype(np.uint8)
    if planes < nz:  # the stack path finds the dendrite on the whole stack's projection only
        dendrite[:] = 255
    return TrainingSample(image, dendrite, spines, 1.0, "generator-slabs")


def _generated_stack(
    rng: np.random.Generator, crop: int, native_px_um: float
) -> synthetic.SyntheticSample:
    """A (Z, crop, crop) stack 4-12 µm deep from one of the two generators, at
    ``native_px_um`` × jitter (0.75-1.35)."""
    px = native_px_um * float(rng.uniform(0.75, 1.35))
    seed = int(rng.integers(2**31))
    if rng.random() < 0.5:
        draw, make = synthetic.random_twophoton_config, synthetic.generate_twophoton
    else:
        draw, make = synthetic.random_config, synthetic.generate
    cfg = draw(rng, (1, crop, crop))
    nz = max(3, int(np.ceil(rng.uniform(4.0, 12.0) / cfg.z_step_um)))
    return make(seed, replace(cfg, shape=(nz, crop, crop), pixel_size_um=px))


def projected_spines(light: np.ndarray, labels: np.ndarray, slab: slice) -> np.ndarray:
    """(H, W) int32 spine ids of a slab's maximum projection (also the truth of a corrected
    stack's slab crops, :func:`.correction_crops.correction_source`): in each column the spine
    whose voxel in the slab is brightest in ``light`` ((planes, H, W), the slab's planes);
    spines with less than :data:`SLAB_SPINE_SHARE` of their voxels (of the whole (Z, H, W)
    ``labels``) in the slab are left out."""
    inside = labels[slab]
    ids, in_slab = np.unique(inside[inside > 0], return_counts=True)
    total = ndi.sum_labels(np.ones_like(labels, dtype=np.int32), labels, ids)
    kept = ids[in_slab >= SLAB_SPINE_SHARE * np.asarray(total)]
    inside = np.where(np.isin(inside, kept), inside, 0)
    brightest = np.where(inside > 0, light, -np.inf).argmax(0)
    return np.take_along_axis(inside, brightest[None], 0)[0].astype(np.int32)


def augment(sample: TrainingSample, rng: np.random.Generator) -> TrainingSample:
    """Flips, 90° rotations, gamma, contrast/offset, extra Gaussian noise and blur."""
    k = int(rng.integers(4))
    flip = rng.random() < 0.5

    def geo(a: np.ndarray) -> np.ndarray:  # (..., H, W): the last two axes
        a = np.rot90(a, k, axes=(-2, -1))
        return np.ascontiguousarray(a[..., ::-1] if flip else a)

    # the plane and its neighbours (if any) change together; each gets its own noise
    img = sample.image if sample.neighbours is None else network_input(sample, 3)
    img = geo(img)
    if rng.random() < 0.5:
        gamma = float(np.exp(rng.uniform(-0.4, 0.4)))
        img = np.sign(img) * np.abs(img) ** gamma
    if rng.random() < 0.5:
        img = img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.3:
        sigma = rng.uniform(0.3, 1.2)
        img = ndi.gaussian_filter(img, (0.0, sigma, sigma) if img.ndim == 3 else sigma)
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(0.01, 0.08), size=img.shape)
    img = img.astype(np.float32)
    return TrainingSample(
        img if img.ndim == 2 else img[1],
        geo(sample.dendrite),
        geo(sample.spines),
        sample.spine_weight,
        sample.source,
        None if img.ndim == 2 else img[[0, 2]],
    )


SampleSource = Callable[[np.random.Generator], TrainingSample]
