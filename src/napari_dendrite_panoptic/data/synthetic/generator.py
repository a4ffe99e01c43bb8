"""Generator of two-photon-like dendrite images with exact ground truth.

Every image is drawn from a seeded random generator: dendrite centre lines with smoothly varying
radius, spines of five types (stubby, mushroom, thin, branched, filopodium) built from capsules and
spheres in µm, distractors that are *not* labelled (axons, bright puncta, out-of-focus haze), a
Gaussian point-spread function, Poisson shot noise and Gaussian read noise.

Ground truth is exact by construction: ``dendrite`` is 1 inside the shaft, ``spines`` holds one id
per spine, and no voxel is both (spine voxels are the spine geometry minus the shaft).

The geometry (dendrite and axon paths, spine capsules and rasterising them, the ground truth of a
drawn spine, :class:`SpineGeometry`) lives in :mod:`napari_dendrite_panoptic.synthetic_geometry`;
:class:`SpineGeometry` is re-exported here. This module keeps the configurations, the sample type
and :func:`generate`, which composes geometry, fluorescence, optics and noise.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ...core import SPINE_TYPES
from .geometry import (
    SpineGeometry,
    attached_piece,
    capsule_box,
    draw_capsules,
    length_inside,
    random_path,
    smooth_noise,
    spine_geometry,
    spine_primitives,
)

logger = logging.getLogger(__name__)

#: counts every generated voxel gets on top of its photons, as a camera's offset does
CAMERA_OFFSET = 10.0
"""Spine type names; the index is the class id used everywhere (same order as the YOLO11 set)."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of one synthetic image. Lengths in µm unless the name says px.

    ``shape`` is ``(Z, Y, X)``; ``Z == 1`` gives a 2D plane.
    """

    shape: tuple[int, int, int] = (1, 256, 256)
    pixel_size_um: float = 0.1
    z_step_um: float = 0.5
    n_dendrites: int = 1
    dendrite_radius_um: tuple[float, float] = (0.45, 0.8)
    spine_density_per_um: float = 1.5
    type_weights: tuple[float, ...] = (0.3, 0.3, 0.05, 0.25, 0.1)
    spine_scale: float = 1.0
    spine_brightness: float = 1.0
    psf_sigma_xy_um: float = 0.12
    psf_sigma_z_um: float = 0.5
    peak_photons: float = 60.0
    read_noise: float = 2.0
    background: float = 0.05
    n_axons: int = 1
    n_puncta: int = 8
    haze: float = 0.15
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be (Z, Y, X) with positive sizes, got {self.shape}")
        if self.pixel_size_um <= 0 or self.z_step_um <= 0:
            raise ValueError("pixel_size_um and z_step_um must be positive")

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """(z, y, x) voxel size in µm."""
        return (self.z_step_um, self.pixel_size_um, self.pixel_size_um)


@dataclass
class SyntheticSample:
    """One generated image with its ground truth, all ``(Z, Y, X)``.

    ``spine_geometry`` (per spine id) and ``dendrite_length_um`` (total centre-line length of the
    dendrites inside the image) are the geometry the analysis is tested against.
    """

    image: np.ndarray  # uint16 photon counts
    dendrite: np.ndarray  # uint8 0/1
    spines: np.ndarray  # int32 spine ids, 0 = none
    spine_types: dict[int, str]
    voxel_size_um: tuple[float, float, float]
    spine_centres_um: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    config: SyntheticConfig | None = None
    spine_geometry: dict[int, SpineGeometry] = field(default_factory=dict)
    dendrite_length_um: float = 0.0
    #: (Z, Y, X) float32 mean photon counts before shot and read noise, without CAMERA_OFFSET
    expected_counts: np.ndarray | None = None


def random_config(
    rng: np.random.Generator, shape: tuple[int, int, int] = (1, 256, 256)
) -> SyntheticConfig:
    """Draw a varied configuration (morphology, optics, noise, distractors) for training.

    Pixel size 0.06-0.2 µm, spine density 0.5-3 per µm, PSF, noise, background, distractors and
    spine-to-dendrite brightness all vary.
    """
    r0 = rng.uniform(0.3, 0.7)
    return SyntheticConfig(
        shape=shape,
        pixel_size_um=float(rng.uniform(0.06, 0.2)),
        z_step_um=float(rng.uniform(0.3, 1.0)),
        n_dendrites=int(rng.choice([1, 1, 1, 2, 2, 3])),
        dendrite_radius_um=(r0, r0 + rng.uniform(0.1, 0.5)),
        spine_density_per_um=float(rng.uniform(0.5, 3.0)),
        type_weights=tuple(rng.dirichlet(np.ones(5) * 2.0).tolist()),
        spine_scale=float(rng.uniform(0.7, 1.4)),
        spine_brightness=float(rng.uniform(0.35, 1.5)),
        psf_sigma_xy_um=float(rng.uniform(0.07, 0.25)),
        psf_sigma_z_um=float(rng.uniform(0.3, 1.0)),
        peak_photons=float(np.exp(rng.uniform(np.log(8), np.log(400)))),
        read_noise=float(rng.uniform(0.5, 6.0)),
        background=float(rng.uniform(0.0, 0.3)),
        n_axons=int(rng.integers(0, 4)),
        n_puncta=int(rng.integers(0, 30)),
        haze=float(rng.uniform(0.0, 0.5)),
        gamma=float(rng.uniform(0.7, 1.4)),
    )


def generate(seed: int, config: SyntheticConfig | None = None) -> SyntheticSample:
    """Generate one image with exact ground truth.

    Parameters
    ----------
    seed
        Seed of the random generator; the same seed and config give the same sample.
    config
        Image parameters; the default is a 256x256 2D plane at 0.1 µm/px.

    Returns
    -------
    SyntheticSample
        ``image`` (Z, Y, X) uint16, ``dendrite`` (Z, Y, X) uint8, ``spines`` (Z, Y, X) int32.
    """
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    shape = cfg.shape
    is3d = shape[0] > 1
    voxel = np.array(cfg.voxel_size_um if is3d else (1.0, cfg.pixel_size_um, cfg.pixel_size_um))
    extent = np.array(shape) * voxel
    if not is3d:
        extent[0] = 0.0
    # the smallest radius a drawn capsule gets: keeps one-voxel-wide necks connected
    min_r = 0.55 * cfg.pixel_size_um

    # --- dendrite centre lines and radii -------------------------------------------------------
    centre = np.zeros(shape, dtype=bool)
    radius_at = np.zeros(shape, dtype=np.float32)
    paths = []
    for _ in range(cfg.n_dendrites):
        path = random_path(
            rng, extent, step_um=cfg.pixel_size_um * 0.4, wiggle=rng.uniform(0.0, 0.12)
        )
        if len(path) < 10:
            continue
        lo_r, hi_r = cfg.dendrite_radius_um
        radius = lo_r + (hi_r - lo_r) * (0.5 + 0.5 * np.tanh(smooth_noise(rng, len(path), 300)))
        idx = np.round(path / voxel).astype(int)
        if not is3d:
            idx[:, 0] = 0
        ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
        centre[tuple(idx[ok].T)] = True
        radius_at[tuple(idx[ok].T)] = radius[ok]
        paths.append((path, radius))
    dendrite = np.zeros(shape, dtype=np.uint8)
    if centre.any():
        dist, inds = ndi.distance_transform_edt(~centre, sampling=voxel, return_indices=True)
        nearest_r = radius_at[tuple(inds)]
        dendrite = (dist <= nearest_r).astype(np.uint8)

    # --- spines ----------------------------------------------------------------------------------
    spines = np.zeros(shape, dtype=np.int32)
    spine_types: dict[int, str] = {}
    spine_centres: dict[int, tuple[float, float, float]] = {}
    geometry: dict[int, SpineGeometry] = {}
    weights = np.asarray(cfg.type_weights, dtype=float)
    weights = weights / weights.sum()
    next_id = 1
    free = dendrite == 0
    shaft_rim = ndi.binary_dilation(dendrite > 0)
    trial = np.zeros(shape, dtype=bool)
    for path, radius in paths:
        seglen = np.linalg.norm(np.diff(path, axis=0), axis=1)
        arclen = np.concatenate([[0.0], np.cumsum(seglen)])
        pos = rng.exponential(1.0 / cfg.spine_density_per_um)
        while pos < arclen[-1]:
            i = int(np.searchsorted(arclen, pos))
            i = min(max(i, 1), len(path) - 2)
            tangent = path[i + 1] - path[i - 1]
            tangent /= np.linalg.norm(tangent) + 1e-9
            normal = np.array([0.0, -tangent[2], tangent[1]])
            normal /= np.linalg.norm(normal) + 1e-9
            side = 1.0 if rng.random() < 0.5 else -1.0
            direction = side * normal + tangent * rng.normal(0, 0.35)
            if is3d:
                direction[0] = rng.normal(0, 0.3)
            else:
                direction[0] = 0.0
            direction /= np.linalg.norm(direction)
            kind = str(rng.choice(SPINE_TYPES, p=weights))
            base = path[i] + direction * (radius[i] - 0.1)
            prims = spine_primitives(rng, kind, base, direction, cfg.spine_scale)
            # the spine's voxels are worked on inside its box only (the rest of trial stays
            # False): the same result as on the whole volume, without a pass over it per spine
            box = capsule_box(prims, voxel, shape)
            n_set = draw_capsules(trial, True, prims, voxel, min_r, only_where=free)
            local = trial[box]
            if n_set >= 3 and np.count_nonzero(local & (spines[box] > 0)) <= 0.05 * n_set:
                # keep the piece attached to the shaft; a spine cut off from it is dropped
                keep = attached_piece(local, spines[box] > 0, shaft_rim[box])
                if np.count_nonzero(keep) >= 3:
                    spines[box][keep] = next_id
                    spine_types[next_id] = kind
                    where = np.argwhere(keep) + [s.start for s in box]
                    spine_centres[next_id] = tuple(float(c) for c in where.mean(0) * voxel)
                    geometry[next_id] = spine_geometry(
                        kind, prims, path[i], tangent, direction, radius[i], min_r, extent, is3d
                    )
                    next_id += 1
            local[:] = False
            pos += rng.exponential(1.0 / cfg.spine_density_per_um) + 0.25

    # --- fluorescence, distractors, optics, noise ------------------------------------------------
    signal = np.zeros(shape, dtype=np.float32)
    signal[dendrite > 0] = 1.0
    signal *= (1.0 + 0.25 * _smooth_field(rng, shape, 30.0)).astype(np.float32)
    spine_gain = cfg.spine_brightness * rng.uniform(0.7, 1.3, size=next_id).astype(np.float32)
    spine_gain[0] = 0.0
    signal += np.where(spines > 0, spine_gain[spines], 0.0).astype(np.float32)
    for _ in range(cfg.n_axons):
        path = random_path(
            rng, extent, step_um=cfg.pixel_size_um * 0.5, wiggle=rng.uniform(0.05, 0.3)
        )
        if len(path) < 4:
            continue
        r = rng.uniform(0.08, 0.2)
        bright = rng.uniform(0.2, 0.8)
        stride = max(1, len(path) // 200)
        prims = [
            (path[j], path[min(j + stride, len(path) - 1)], r)
            for j in range(0, len(path) - 1, stride)
        ]
        axon = np.zeros(shape, dtype=bool)
        for k in range(0, len(prims), 20):
            draw_capsules(axon, True, prims[k : k + 20], voxel, min_r)
        signal[axon & (signal == 0)] += bright
    for _ in range(cfg.n_puncta):
        c = rng.uniform(0, 1, size=3) * extent
        r = rng.uniform(0.1, 0.35)
        blob = np.zeros(shape, dtype=bool)
        draw_capsules(blob, True, [(c, c, r)], voxel, min_r)
        signal[blob & (signal == 0)] += rng.uniform(0.3, 1.5)
    sigma_px = [cfg.psf_sigma_xy_um / cfg.pixel_size_um] * 2
    sigma = ([cfg.psf_sigma_z_um / cfg.z_step_um] if is3d else [0.0]) + sigma_px
    blurred = ndi.gaussian_filter(signal, sigma=sigma)
    if cfg.haze > 0:  # out-of-focus light from the same structures and from elsewhere
        far = [s * 6 for s in sigma]
        blurred += cfg.haze * ndi.gaussian_filter(signal, sigma=far) * 3
    blurred += cfg.background * (1.0 + 0.5 * _smooth_field(rng, shape, 60.0))
    blurred = np.clip(blurred, 0, None) ** cfg.gamma
    expected = (blurred * cfg.peak_photons).astype(np.float32, copy=False)
    image = camera(rng, expected, cfg.read_noise)
    return SyntheticSample(
        image=image,
        dendrite=dendrite,
        spines=spines,
        spine_types=spine_types,
        voxel_size_um=tuple(float(v) for v in cfg.voxel_size_um),
        spine_centres_um=spine_centres,
        config=cfg,
        spine_geometry=geometry,
        dendrite_length_um=sum(length_inside(p, extent) for p, _ in paths),
        expected_counts=expected,
    )


def camera(
    rng: np.random.Generator, expected: np.ndarray, read_noise: float, round_counts: bool = False
) -> np.ndarray:
    """A camera's uint16 image of ``expected`` photon counts (any shape, float32): Poisson shot
    noise, Gaussian read noise of ``read_noise`` counts, :data:`CAMERA_OFFSET`, clipped to
    0-65535 (rounded, or cut to whole counts)."""
    counts = rng.poisson(expected).astype(np.float32)
    counts += rng.normal(0, read_noise, size=expected.shape).astype(np.float32) + CAMERA_OFFSET
    return np.clip(np.round(counts) if round_counts else counts, 0, 65535).astype(np.uint16)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], scale_px: float) -> np.ndarray:
    """Smooth random field of unit standard deviation, correlated over ``scale_px`` pixels.

    A coarse normal grid enlarged by cubic-spline zoom (``ndi.zoom(coarse, shape / coarse.shape,
    order=3)``), done one axis at a time: the spline is a tensor product, so this gives the
    same field to ~1e-14, 20-250 times faster on a stack.
    """
    small = tuple(max(2, int(np.ceil(s / scale_px)) + 2) for s in shape)
    field_ = rng.normal(size=small)
    for axis, (size, coarse) in enumerate(zip(shape, small, strict=True)):
        along = _spline_zoom_matrix(coarse, size)
        field_ = np.moveaxis(np.tensordot(along, field_, axes=([1], [axis])), 0, axis)
    return (field_ - field_.mean()) / (field_.std() + 1e-9)


@functools.lru_cache(maxsize=64)
def _spline_zoom_matrix(coarse: int, size: int) -> np.ndarray:
    """``(size, coarse)`` float64 matrix of the 1D cubic-spline zoom from ``coarse`` to ``size``."""
    eye = np.eye(coarse)
    columns = [ndi.zoom(eye[k], size / coarse, order=3) for k in range(coarse)]
    matrix = np.stack(columns, axis=1)[:size]
    matrix.setflags(write=False)
    return matrix


def sample_stack(seed: int = 4) -> SyntheticSample:
    """The bundled sample: a (12, 256, 256) stack at 0.1 µm/px and 0.5 µm z steps."""
    cfg = SyntheticConfig(
        shape=(12, 256, 256), pixel_size_um=0.1, z_step_um=0.5, n_axons=1, n_puncta=10
    )
    return generate(seed, cfg)


def sample_plane(seed: int = 3) -> SyntheticSample:
    """The bundled 2D sample: a (1, 384, 384) plane at 0.1 µm/px."""
    cfg = SyntheticConfig(shape=(1, 384, 384), pixel_size_um=0.1, n_dendrites=2, n_puncta=12)
    return generate(seed, cfg)
