"""Training samples: one (image, dendrite mask, spine instance labels) triple per draw.

Every source yields :class:`TrainingSample` crops at the model's native pixel size. The generator
source draws a new random configuration per sample (morphology, optics, noise, distractors) with
pixel-size jitter around the native size; exact masks supervise both networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import ndimage as ndi

from . import synthetic
from .errors import InputError
from .normalise import percentile_normalise


@dataclass
class TrainingSample:
    """One 2D crop: ``image`` (H, W) float32 normalised, ``dendrite`` (H, W) uint8 0/1 (255 where
    the dendrite is not annotated), ``spines`` (H, W) int32 ids (0 none), ``spine_weight`` 1.0
    when spine masks are exact, lower for pseudo-masks grown from centres."""

    image: np.ndarray
    dendrite: np.ndarray
    spines: np.ndarray
    spine_weight: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        shapes = {k: tuple(np.shape(getattr(self, k))) for k in ("image", "dendrite", "spines")}
        if len(set(shapes.values())) != 1 or len(shapes["image"]) != 2:
            described = ", ".join(f"{k} {v}" for k, v in shapes.items())
            where = f" ({self.source})" if self.source else ""
            raise InputError(
                f"a training sample{where} needs 2D image, dendrite and spine layers of one "
                f"shape; got {described}"
            )


def generator_sample(
    rng: np.random.Generator, crop: int, native_px_um: float, p3d: float = 0.25
) -> TrainingSample:
    """A crop from a freshly generated image at ``native_px_um`` × jitter (0.75-1.35).

    With probability ``p3d`` the crop is one plane of a generated 3D stack (out-of-focus light
    from neighbouring planes included); otherwise a 2D plane.
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
    return TrainingSample(image, sample.dendrite[z], sample.spines[z], 1.0, "generator")


def augment(sample: TrainingSample, rng: np.random.Generator) -> TrainingSample:
    """Flips, 90° rotations, gamma, contrast/offset, extra Gaussian noise and blur."""
    k = int(rng.integers(4))
    flip = rng.random() < 0.5

    def geo(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k)
        return np.ascontiguousarray(a[:, ::-1] if flip else a)

    img = geo(sample.image)
    if rng.random() < 0.5:
        gamma = float(np.exp(rng.uniform(-0.4, 0.4)))
        img = np.sign(img) * np.abs(img) ** gamma
    if rng.random() < 0.5:
        img = img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.3:
        img = ndi.gaussian_filter(img, rng.uniform(0.3, 1.2))
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(0.01, 0.08), size=img.shape)
    return TrainingSample(
        img.astype(np.float32),
        geo(sample.dendrite),
        geo(sample.spines),
        sample.spine_weight,
        sample.source,
    )


def instance_targets(spines: np.ndarray) -> dict[str, torch.Tensor]:
    """Mask R-CNN targets from an (H, W) instance label image: boxes (N, 4) xyxy float32,
    labels (N,) int64 (all 1 = spine), masks (N, H, W) uint8. Instances under 2 px are dropped."""
    boxes, masks = [], []
    for i, sl in enumerate(ndi.find_objects(spines), start=1):
        if sl is None:  # no pixel carries this id
            continue
        m = spines == i
        if m.sum() < 2:
            continue
        y0, y1 = sl[0].start, sl[0].stop
        x0, x1 = sl[1].start, sl[1].stop
        boxes.append([x0, y0, x1, y1])
        masks.append(m)
    h, w = spines.shape
    if not boxes:
        return {
            "boxes": torch.zeros((0, 4), dtype=torch.float32),
            "labels": torch.zeros((0,), dtype=torch.int64),
            "masks": torch.zeros((0, h, w), dtype=torch.uint8),
        }
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.ones(len(boxes), dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks).astype(np.uint8)),
    }


SampleSource = Callable[[np.random.Generator], TrainingSample]
