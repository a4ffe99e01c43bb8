"""Generator of stacks that look like real two-photon z-stacks, with exact ground truth.

What makes a two-photon stack hard, and what :func:`generate_twophoton` draws:

- coarse, anisotropic sampling: 0.08-0.15 µm pixels, 0.5-2 µm between planes;
- an elongated point-spread function: 0.3-0.5 µm FWHM laterally, 1.5-3 µm FWHM along z, so a
  spine is seen, blurred, in more planes than it occupies;
- 1-3 dendrites at different depths, tilted through the stack, that may cross over or under
  each other;
- spines of the five types (:data:`~napari_dendrite_panoptic.core.SPINE_TYPES`) pointing in
  every direction around the shaft, some straight up or down (in a projection: a blob over the
  shaft);
- low photon counts (a shaft peak of a few to a few tens of photons), Poisson shot noise and
  Gaussian read noise, out-of-focus haze, a background, depth attenuation, bright puncta (some
  just above or below a shaft) and dim axons, none of them labelled.

Ground truth marks each object in the planes where it physically is, not where its blurred light
reaches: a plane's voxel is dendrite or spine when the object's geometry holds the voxel's centre
(objects thinner than a z step still reach their nearest plane, so every spine is one connected
piece touching its shaft). ``spines`` holds one id per spine through all of its planes (uint32).

The light is rendered on a finer z grid (steps of at most 0.4 µm), blurred along z and sampled
at the planes in one matrix product, then blurred laterally; everything is seeded and
deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ...core import SPINE_TYPES
from .generator import SyntheticSample, _smooth_field, camera
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

#: FWHM of a Gaussian over its standard deviation
_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: the finest z step the light is rendered at (µm)
_FINE_Z_UM = 0.4
#: distance (µm) a dendrite's centre line keeps from the stack's top and bottom planes
_DEPTH_MARGIN_UM = 1.5
#: smallest depth difference (µm) between two dendrites' centre lines
_DEPTH_SEPARATION_UM = 3.0
#: brightness levels of the rendered light (index = code of a drawn object, 0 = nothing)
_LEVELS = np.linspace(0.0, 5.0, 256).astype(np.float32)
#: mean share of each spine type (order of SPINE_TYPES: mushroom, stubby, branched, thin, filopodium)
_TYPE_WEIGHTS = (0.3, 0.3, 0.05, 0.25, 0.1)


@dataclass(frozen=True)
class TwoPhotonConfig:
    """Parameters of one two-photon-like stack. Lengths in µm unless the name says otherwise.

    ``shape`` is ``(Z, Y, X)``. ``psf_fwhm_xy_um`` / ``psf_fwhm_z_um``: full widths at half
    maximum of the Gaussian PSF. ``vertical_fraction``: share of spines drawn pointing up or
    down (elevation 45-85° out of the focal plane); the others leave the shaft within about
    ±20° of the plane. ``peak_photons``: mean photons at the brightest shaft voxels;
    ``background_photons``: mean photons of the background; ``haze``: out-of-focus light as a
    fraction of the in-focus light; ``puncta_per_100um2`` bright distractor spots per 100 µm²
    of field, ``shaft_puncta_per_um`` spots just above or below a shaft per µm of dendrite;
    ``attenuation_um``: depth over which the light falls by a factor e.
    """

    shape: tuple[int, int, int] = (20, 256, 256)
    pixel_size_um: float = 0.1
    z_step_um: float = 1.0
    psf_fwhm_xy_um: float = 0.4
    psf_fwhm_z_um: float = 2.2
    n_dendrites: int = 2
    dendrite_radius_um: tuple[float, float] = (0.4, 0.7)
    dendrite_tilt: float = 0.08
    spine_density_per_um: float = 1.5
    type_weights: tuple[float, ...] = _TYPE_WEIGHTS
    spine_scale: float = 1.0
    spine_brightness: float = 1.0
    vertical_fraction: float = 0.3
    peak_photons: float = 20.0
    read_noise: float = 1.0
    background_photons: float = 1.5
    haze: float = 0.25
    puncta_per_100um2: float = 0.4
    shaft_puncta_per_um: float = 0.05
    n_axons: int = 1
    attenuation_um: float = 150.0

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be (Z, Y, X) with positive sizes, got {self.shape}")
        if min(self.pixel_size_um, self.z_step_um, self.psf_fwhm_xy_um, self.psf_fwhm_z_um) <= 0:
            raise ValueError("pixel size, z step and PSF widths must be positive")
        if len(self.type_weights) != len(SPINE_TYPES):
            raise ValueError(f"type_weights needs one weight per type of {SPINE_TYPES}")

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """(z, y, x) voxel size in µm."""
        return (self.z_step_um, self.pixel_size_um, self.pixel_size_um)


def random_twophoton_config(
    rng: np.random.Generator, shape: tuple[int, int, int] | None = None
) -> TwoPhotonConfig:
    """Draw a varied two-photon configuration from ``rng``.

    ``shape`` (Z, Y, X); None draws 10-40 planes of 512 x 512. Pixel size 0.08-0.15 µm, z step
    0.5-2 µm, PSF FWHM 0.3-0.5 µm laterally and 1.5-3 µm axially, 1-3 dendrites (as many as
    the stack's depth holds 3 µm apart), 0.8-2.5 spines per µm (type shares around ``_TYPE_WEIGHTS``, sizes x0.9-1.4) with 15-50 % pointing up or down,
    a shaft peak of 10-60 photons, read noise 0.5-3 counts, background 0.5-3 photons, haze 0.1-0.5
    and puncta.
    """
    if shape is None:
        shape = (int(rng.integers(10, 41)), 512, 512)
    z_step = float(rng.uniform(0.5, 2.0))
    r0 = float(rng.uniform(0.35, 0.6))
    return TwoPhotonConfig(
        shape=tuple(int(s) for s in shape),
        pixel_size_um=float(rng.uniform(0.08, 0.15)),
        z_step_um=z_step,
        psf_fwhm_xy_um=float(rng.uniform(0.3, 0.5)),
        psf_fwhm_z_um=float(rng.uniform(1.5, 3.0)),
        n_dendrites=int(rng.choice([1, 2, 2, 3])),
        dendrite_radius_um=(r0, r0 + float(rng.uniform(0.1, 0.35))),
        dendrite_tilt=float(rng.uniform(0.0, 0.15)),
        spine_density_per_um=float(rng.uniform(0.8, 2.5)),
        type_weights=tuple(rng.dirichlet(np.array(_TYPE_WEIGHTS) * 12.0).tolist()),
        spine_scale=float(rng.uniform(0.9, 1.4)),
        spine_brightness=float(rng.uniform(0.8, 1.5)),
        vertical_fraction=float(rng.uniform(0.15, 0.5)),
        peak_photons=float(np.exp(rng.uniform(np.log(10.0), np.log(60.0)))),
        read_noise=float(rng.uniform(0.5, 3.0)),
        background_photons=float(rng.uniform(0.5, 3.0)),
        haze=float(rng.uniform(0.1, 0.5)),
        puncta_per_100um2=float(rng.uniform(0.1, 0.8)),
        shaft_puncta_per_um=float(rng.uniform(0.0, 0.12)),
        n_axons=int(rng.integers(0, 3)),
        attenuation_um=float(rng.uniform(60.0, 300.0)),
    )


def twophoton_stack(seed: int, shape: tuple[int, int, int] | None = None) -> SyntheticSample:
    """One stack drawn from ``seed`` alone: :func:`random_twophoton_config` from the seed, then
    :func:`generate_twophoton` with it. ``shape`` (Z, Y, X) as in the config drawer."""
    cfg = random_twophoton_config(np.random.default_rng((seed, 2)), shape)
    return generate_twophoton(seed, cfg)


def _depths(rng: np.random.Generator, n: int, depth_um: float) -> list[float]:
    """Centre-line depths (µm) of up to ``n`` dendrites in a stack ``depth_um`` deep, at least
    ``_DEPTH_SEPARATION_UM`` apart; fewer when the stack is too thin to hold ``n``."""
    lo, hi = _DEPTH_MARGIN_UM, depth_um - _DEPTH_MARGIN_UM
    if hi <= lo:
        return [depth_um / 2]
    n = max(1, min(n, int((hi - lo) // _DEPTH_SEPARATION_UM) + 1))
    slack = (hi - lo) - (n - 1) * _DEPTH_SEPARATION_UM
    gaps = np.sort(rng.uniform(0.0, slack, size=n))
    order = rng.permutation(n)
    return [float(lo + gaps[k] + order[k] * _DEPTH_SEPARATION_UM) for k in range(n)]


def _dendrite_path(
    rng: np.random.Generator, extent: np.ndarray, depth: float, tilt: float, step: float
) -> np.ndarray:
    """(N, 3) float64 µm centre line crossing the field at about ``depth`` µm, tilted by up to
    ``tilt`` µm per µm and wandering ±0.5 µm in z, kept inside the depth margins."""
    path = random_path(rng, extent, step_um=step, wiggle=rng.uniform(0.0, 0.1))
    seg = np.linalg.norm(np.diff(path[:, 1:], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    slope = rng.uniform(-tilt, tilt)
    z = depth + slope * (s - s[-1] / 2) + 0.5 * smooth_noise(rng, len(s), 10.0 / step)
    lo, hi = _DEPTH_MARGIN_UM, extent[0] - _DEPTH_MARGIN_UM
    path[:, 0] = np.clip(z, min(lo, depth), max(hi, depth))
    return path


def _code(brightness: float) -> int:
    """The ``_LEVELS`` code nearest ``brightness`` (at least 1: a drawn object is never dark)."""
    return int(np.clip(np.round(brightness / _LEVELS[-1] * 255), 1, 255))


def generate_twophoton(seed: int, config: TwoPhotonConfig | None = None) -> SyntheticSample:
    """Generate one two-photon-like stack with exact ground truth.

    Parameters
    ----------
    seed
        Seed of the random generator; the same seed and config give the same sample, to the bit.
    config
        Stack parameters (:class:`TwoPhotonConfig`); the default is 20 x 256 x 256 voxels of
        1 x 0.1 x 0.1 µm.

    Returns
    -------
    SyntheticSample
        ``image`` (Z, Y, X) uint16 counts (photons + read noise + ``CAMERA_OFFSET``),
        ``dendrite`` (Z, Y, X) uint8 0/1, ``spines`` (Z, Y, X) uint32 ids 1..N (one per spine
        through all its planes, never on a dendrite voxel), ``spine_types`` id → type,
        ``voxel_size_um`` (z, y, x), ``spine_centres_um`` id → (z, y, x) µm centroid of its
        voxels, ``spine_geometry`` id → :class:`SpineGeometry` (``direction[0]`` is the
        spine's z component: ±1 straight up or down), ``dendrite_length_um`` and
        ``expected_counts`` (Z, Y, X) float32 mean photons before noise, without the offset.
    """
    cfg = config or TwoPhotonConfig()
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in cfg.shape)
    nz = shape[0]
    voxel = np.array(cfg.voxel_size_um, dtype=float)
    extent = np.array(shape) * voxel
    px = cfg.pixel_size_um
    min_r = 0.55 * px
    step = max(0.25, 2 * px)

    # --- dendrites: centre lines at their depths, drawn as chains of capsules ------------------
    dendrite = np.zeros(shape, dtype=np.uint8)
    paths: list[tuple[np.ndarray, np.ndarray]] = []
    dendrite_prims: list[tuple[np.ndarray, np.ndarray, float]] = []
    for depth in _depths(rng, cfg.n_dendrites, float(extent[0])):
        path = _dendrite_path(rng, extent, depth, cfg.dendrite_tilt, step)
        if len(path) < 10:
            continue
        lo_r, hi_r = cfg.dendrite_radius_um
        radius = lo_r + (hi_r - lo_r) * (0.5 + 0.5 * np.tanh(smooth_noise(rng, len(path), 20.0)))
        stride = max(1, int(round(0.8 / step)))
        prims = [
            (path[j], path[min(j + stride, len(path) - 1)], float(radius[j]))
            for j in range(0, len(path) - 1, stride)
        ]
        for k in range(0, len(prims), 8):
            draw_capsules(dendrite, 1, prims[k : k + 8], voxel, min_r)
        dendrite_prims += prims
        paths.append((path, radius))

    # --- spines: five types, all around the shaft; kept when attached to it --------------------
    spines = np.zeros(shape, dtype=np.uint32)
    trial = np.zeros(shape, dtype=bool)
    free = dendrite == 0
    weights = np.asarray(cfg.type_weights, dtype=float)
    weights = weights / weights.sum()
    spine_types: dict[int, str] = {}
    centres: dict[int, tuple[float, float, float]] = {}
    geometry: dict[int, SpineGeometry] = {}
    spine_prims: list[tuple[int, list]] = []
    next_id = 1
    for path, radius in paths:
        arclen = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
        pos = rng.exponential(1.0 / cfg.spine_density_per_um)
        while pos < arclen[-1]:
            i = min(max(int(np.searchsorted(arclen, pos)), 1), len(path) - 2)
            pos += rng.exponential(1.0 / cfg.spine_density_per_um) + 0.25
            tangent = path[i + 1] - path[i - 1]
            tangent /= np.linalg.norm(tangent) + 1e-9
            lateral = np.array([0.0, -tangent[2], tangent[1]])
            lateral /= np.linalg.norm(lateral) + 1e-9
            up = np.cross(tangent, lateral)
            up *= np.sign(up[0]) if up[0] else 1.0
            if rng.random() < cfg.vertical_fraction:
                elevation = rng.uniform(np.radians(45), np.radians(85)) * rng.choice([-1.0, 1.0])
            else:
                elevation = float(np.clip(rng.normal(0.0, np.radians(20)), -0.7, 0.7))
            side = 1.0 if rng.random() < 0.5 else -1.0
            out = np.cos(elevation) * side * lateral + np.sin(elevation) * up
            direction = out + tangent * rng.normal(0.0, 0.3)
            direction /= np.linalg.norm(direction)
            kind = str(rng.choice(SPINE_TYPES, p=weights))
            base = path[i] + out * (radius[i] - 0.1)
            prims = spine_primitives(rng, kind, base, direction, cfg.spine_scale)
            gain = float(cfg.spine_brightness * rng.uniform(0.7, 1.3))
            box = capsule_box(prims, voxel, shape)
            n_set = draw_capsules(trial, True, prims, voxel, min_r, only_where=free)
            local = trial[box]
            if n_set < 3 or np.count_nonzero(local & (spines[box] > 0)) > 0.05 * n_set:
                local[:] = False
                continue
            rim = ndi.binary_dilation(dendrite[box] > 0)
            keep = attached_piece(local, spines[box] > 0, rim)
            local[:] = False
            if np.count_nonzero(keep) < 3:
                continue
            spines[box][keep] = next_id
            spine_types[next_id] = kind
            where = np.argwhere(keep) + [s.start for s in box]
            centres[next_id] = tuple(float(c) for c in where.mean(0) * voxel)
            geometry[next_id] = spine_geometry(
                kind, prims, path[i], tangent, direction, radius[i], min_r, extent, True
            )
            spine_prims.append((_code(gain), prims))
            next_id += 1

    # --- light: distractors, spines, then shafts over them, on a fine z grid -------------------
    kz = max(1, int(np.ceil(cfg.z_step_um / _FINE_Z_UM)))
    dzf = cfg.z_step_um / kz
    sigma_z = cfg.psf_fwhm_z_um / _FWHM
    margin = int(np.ceil(2.5 * sigma_z / dzf))
    fine_voxel = np.array([dzf, px, px])
    fine = np.zeros(((nz - 1) * kz + 1 + 2 * margin, *shape[1:]), dtype=np.uint8)
    shift = np.array([margin * dzf, 0.0, 0.0])

    def draw_light(prims, code: int) -> None:
        moved = [(a + shift, b + shift, r) for a, b, r in prims]
        draw_capsules(fine, code, moved, fine_voxel, min_r)

    area = float(extent[1] * extent[2])
    for _ in range(rng.poisson(cfg.puncta_per_100um2 * area / 100.0)):
        c = rng.uniform(0, 1, size=3) * extent
        draw_light([(c, c, rng.uniform(0.15, 0.35))], _code(rng.uniform(1.0, 3.5)))
    for path, radius in paths:
        length = length_inside(path, extent)
        for _ in range(rng.poisson(cfg.shaft_puncta_per_um * length)):
            j = int(rng.integers(len(path)))
            r = rng.uniform(0.15, 0.35)
            c = path[j] + [rng.choice([-1.0, 1.0]) * (radius[j] + r + rng.uniform(0.3, 1.2)), 0, 0]
            c[1:] += rng.normal(0.0, 0.2, size=2)
            draw_light([(c, c, r)], _code(rng.uniform(1.0, 3.5)))
    for _ in range(cfg.n_axons):
        path = random_path(rng, extent, step_um=0.5, wiggle=rng.uniform(0.05, 0.3))
        if len(path) < 4:
            continue
        path[:, 0] = rng.uniform(0, extent[0]) + 0.5 * smooth_noise(rng, len(path), 20.0)
        r = rng.uniform(0.08, 0.18)
        prims = [(path[j], path[j + 1], r) for j in range(len(path) - 1)]
        code = _code(rng.uniform(0.2, 0.7))
        for k in range(0, len(prims), 16):
            draw_light(prims[k : k + 16], code)
    for code, prims in spine_prims:
        draw_light(prims, code)
    for k in range(0, len(dendrite_prims), 8):
        draw_light(dendrite_prims[k : k + 8], _code(1.0))

    # z blur and sampling at the planes in one product, then the lateral blur
    plane_z = np.arange(nz) * cfg.z_step_um
    fine_z = (np.arange(fine.shape[0]) - margin) * dzf
    weights_z = np.exp(-0.5 * ((plane_z[:, None] - fine_z[None, :]) / sigma_z) ** 2)
    weights_z = (weights_z * dzf / (np.sqrt(2 * np.pi) * sigma_z)).astype(np.float32)
    light = np.empty(shape, dtype=np.float32)
    rows = max(1, 2_000_000 // max(1, fine.shape[0] * shape[2]))
    for y0 in range(0, shape[1], rows):
        chunk = _LEVELS[fine[:, y0 : y0 + rows]]
        light[:, y0 : y0 + rows] = np.tensordot(weights_z, chunk, axes=([1], [0]))
    sigma_xy = cfg.psf_fwhm_xy_um / _FWHM / px
    for axis in (1, 2):
        ndi.gaussian_filter1d(light, sigma_xy, axis=axis, output=light, truncate=3.0)

    # brightness: shaft peak in photons, expression and depth falloff, haze, background
    on_shaft = light[dendrite > 0]
    scale = cfg.peak_photons / float(np.percentile(on_shaft, 95)) if on_shaft.size else 1.0
    field = _smooth_field(rng, shape[1:], 4.0 / px).astype(np.float32)
    depth_gain = np.exp(-plane_z / cfg.attenuation_um).astype(np.float32)
    light *= scale
    light *= np.clip(1.0 + 0.2 * field, 0.3, None)[None]
    light *= depth_gain[:, None, None]
    if cfg.haze > 0:
        light += cfg.haze * _haze(light, voxel)
    light += cfg.background_photons * np.clip(1.0 - 0.3 * field, 0.2, None)[None]
    expected = light
    image = camera(rng, expected, cfg.read_noise, round_counts=True)
    return SyntheticSample(
        image=image,
        dendrite=dendrite,
        spines=spines,
        spine_types=spine_types,
        voxel_size_um=tuple(float(v) for v in cfg.voxel_size_um),
        spine_centres_um=centres,
        config=cfg,
        spine_geometry=geometry,
        dendrite_length_um=sum(length_inside(p, extent) for p, _ in paths),
        expected_counts=expected,
    )


def _haze(light: np.ndarray, voxel: np.ndarray) -> np.ndarray:
    """(Z, Y, X) float32 out-of-focus light of ``light``: blurred over ~6 µm along z and ~3 µm
    laterally, with the same total; computed on a 4x coarser lateral grid."""
    f = 4
    small = light[:, ::f, ::f]
    sigma = (6.0 / voxel[0], 3.0 / (voxel[1] * f), 3.0 / (voxel[2] * f))
    small = ndi.gaussian_filter(small, sigma, mode="nearest")
    zoom = (1.0, light.shape[1] / small.shape[1], light.shape[2] / small.shape[2])
    big = ndi.zoom(small, zoom, order=1, mode="nearest", grid_mode=True)
    out = np.zeros_like(light)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(out.shape, big.shape, strict=True))
    out[sl] = big[sl]
    return out
