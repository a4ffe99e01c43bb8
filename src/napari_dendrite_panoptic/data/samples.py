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
