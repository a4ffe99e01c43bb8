"""Time series of the same dendrites over imaging sessions, with known spine births and deaths and
a known deformation per session.

The scene is built once in the first session's frame (µm, (z, y, x)): dendrite centre lines,
spine sites along them (each with its capsules, :func:`.geometry.spine_primitives`) and the
session at which each site appears and disappears. Every later session moves the scene by a known
map ``world -> session``: a rotation about z, a slight isotropic swelling about the field's centre,
a drift (x, y and z) and a smooth non-rigid displacement; then draws it with its own brightness and
noise. Spine ``k`` carries id ``k`` in every session in which it is drawn, so the truth of a
tracker is exact: the same id is the same spine, an id that appears is a birth, one that goes is a
death. :meth:`SessionTruth.to_first` maps points of a session back to the first session's frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ...core import SPINE_TYPES
from .generator import CAMERA_OFFSET, _smooth_field
from .geometry import draw_capsules, length_inside, random_path, smooth_noise, spine_primitives


@dataclass(frozen=True)
class SeriesConfig:
    """Parameters of a generated series; lengths in µm, angles in degrees.

    ``shape`` (Z, Y, X) of every session; ``birth_rate``/``death_rate`` the chance, per session
    step, that a free site gets a spine or a spine is lost; ``drift_um`` (z, y, x) the largest
    shift, ``rotation_deg`` the largest rotation about z, ``swelling`` the largest relative
    change of scale, ``warp_um`` the amplitude of the smooth non-rigid displacement,
    ``brightness`` the largest relative change of brightness between sessions.
    """

    shape: tuple[int, int, int] = (12, 192, 192)
    pixel_size_um: float = 0.1
    z_step_um: float = 0.5
    n_sessions: int = 3
    n_dendrites: int = 1
    spine_density_per_um: float = 1.0
    initial_fraction: float = 0.75
    birth_rate: float = 0.12
    death_rate: float = 0.12
    drift_um: tuple[float, float, float] = (0.5, 2.0, 2.0)
    rotation_deg: float = 4.0
    swelling: float = 0.03
    warp_um: float = 0.4
    brightness: float = 0.25
    peak_photons: float = 60.0
    read_noise: float = 2.0
    psf_sigma_xy_um: float = 0.12
    psf_sigma_z_um: float = 0.5
    background: float = 0.05

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """(z, y, x) voxel size in µm."""
        return (self.z_step_um, self.pixel_size_um, self.pixel_size_um)


@dataclass
class SessionTruth:
    """The known map of one session: ``world -> session`` is
    ``R (p - c) * scale + c + shift + warp(p)`` in µm, with ``warp`` a smooth field sampled on a
    coarse grid (``warp_grid`` (3, gz, gy, gx) µm over the field)."""

    rotation_deg: float
    scale: float
    shift_um: np.ndarray
    centre_um: np.ndarray
    warp_grid: np.ndarray
    extent_um: np.ndarray

    def _matrix(self) -> np.ndarray:
        t = np.deg2rad(self.rotation_deg)
        rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
        return rot * self.scale

    def _warp(self, pts: np.ndarray) -> np.ndarray:
        g = np.array(self.warp_grid.shape[1:]) - 1
        idx = (pts / np.maximum(self.extent_um, 1e-9) * g).T
        return np.stack(
            [ndi.map_coordinates(w, idx, order=1, mode="nearest") for w in self.warp_grid], 1
        )

    def from_first(self, pts_um: np.ndarray) -> np.ndarray:
        """(N, 3) µm points of the first session's frame -> (N, 3) µm in this session."""
        pts = np.asarray(pts_um, float).reshape(-1, 3)
        m = self._matrix()
        return (pts - self.centre_um) @ m.T + self.centre_um + self.shift_um + self._warp(pts)

    def to_first(self, pts_um: np.ndarray) -> np.ndarray:
        """(N, 3) µm points of this session -> (N, 3) µm in the first session's frame."""
        q = np.asarray(pts_um, float).reshape(-1, 3)
        inv = np.linalg.inv(self._matrix())
        p = (q - self.centre_um - self.shift_um) @ inv.T + self.centre_um
        for _ in range(20):
            p = p + (q - self.from_first(p)) @ inv.T
        return p


@dataclass
class SeriesSession:
    """One generated session: ``image`` (Z, Y, X) uint16, ``dendrite`` uint8 0/1, ``spines``
    uint32 with the spine's id of the whole series, ``truth`` its map from the first session."""

    image: np.ndarray
    dendrite: np.ndarray
    spines: np.ndarray
    voxel_size_um: tuple[float, float, float]
    truth: SessionTruth
    day: float


@dataclass
class SyntheticSeries:
    """A generated series: its sessions, the types of the spines by id, and ``base_um`` (id ->
    (3,) µm point on the shaft surface in the first session's frame) of every spine site."""

    sessions: list[SeriesSession]
    spine_types: dict[int, str]
    base_um: dict[int, np.ndarray]
    config: SeriesConfig
    extra: dict = field(default_factory=dict)

    def present(self, k: int) -> set[int]:
        """Ids of the spines drawn in session ``k``."""
        ids = np.unique(self.sessions[k].spines)
        return {int(i) for i in ids if i}


def _sites(rng, cfg: SeriesConfig, extent: np.ndarray):
    """Dendrite paths with radii, and spine sites (kind, capsules, base) along them."""
    paths, sites = [], []
    for _ in range(cfg.n_dendrites):
        # a dendrite that crosses the field (not one that clips a corner): a few tries
        for _ in range(20):
            path = random_path(rng, extent, step_um=cfg.pixel_size_um * 0.4, wiggle=0.06)
            if len(path) >= 10 and length_inside(path, extent) >= 0.8 * min(extent[1:]):
                break
        if len(path) < 10:
            continue
        radius = 0.5 + 0.25 * (0.5 + 0.5 * np.tanh(smooth_noise(rng, len(path), 300)))
        paths.append((path, radius))
        arclen = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
        pos = rng.exponential(1.0 / cfg.spine_density_per_um)
        while pos < arclen[-1]:
            i = min(max(int(np.searchsorted(arclen, pos)), 1), len(path) - 2)
            tangent = path[i + 1] - path[i - 1]
            tangent /= np.linalg.norm(tangent) + 1e-9
            normal = np.array([0.0, -tangent[2], tangent[1]])
            normal /= np.linalg.norm(normal) + 1e-9
            direction = (1.0 if rng.random() < 0.5 else -1.0) * normal
            direction = direction + tangent * rng.normal(0, 0.3)
            direction[0] = rng.normal(0, 0.2) if extent[0] > 0 else 0.0
            direction /= np.linalg.norm(direction)
            kind = str(rng.choice(SPINE_TYPES[:3] + ("stubby",)))
            base = path[i] + direction * (radius[i] - 0.1)
            prims = spine_primitives(rng, kind, base, direction, 1.0)
            sites.append((kind, prims, base))
            pos += 0.9 + rng.exponential(1.0 / cfg.spine_density_per_um)
    return paths, sites


def _lifetimes(rng, n_sites: int, cfg: SeriesConfig) -> np.ndarray:
    """(n_sites, n_sessions) bool: whether each site has its spine in each session. A spine once
    lost stays lost; a site not yet used may get a spine at any session."""
    alive = np.zeros((n_sites, cfg.n_sessions), dtype=bool)
    state = rng.random(n_sites) < cfg.initial_fraction
    used = state.copy()
    alive[:, 0] = state
    for s in range(1, cfg.n_sessions):
        dies = state & (rng.random(n_sites) < cfg.death_rate)
        born = ~used & (rng.random(n_sites) < cfg.birth_rate)
        state = (state & ~dies) | born
        used |= born
        alive[:, s] = state
    return alive


def _session_map(rng, cfg: SeriesConfig, extent: np.ndarray, first: bool) -> SessionTruth:
    centre = extent / 2
    grid = np.zeros((3, 3, 5, 5))
    if first:
        return SessionTruth(0.0, 1.0, np.zeros(3), centre, grid, extent)
    drift = np.asarray(cfg.drift_um) * rng.uniform(-1, 1, 3)
    grid = rng.normal(0, cfg.warp_um / 2, size=grid.shape)
    grid[0] *= 0.3  # less warp along z
    if extent[0] == 0:
        drift[0] = 0.0
        grid[0] = 0.0
    return SessionTruth(
        float(rng.uniform(-1, 1) * cfg.rotation_deg),
        float(1.0 + rng.uniform(-1, 1) * cfg.swelling),
        drift,
        centre,
        grid,
        extent,
    )


def _render(rng, cfg, shape, voxel, paths, prims_by_id, truth: SessionTruth, gain: float):
    """Draw one session: the scene moved by ``truth``, blurred, with shot and read noise."""
    is3d = shape[0] > 1
    min_r = 0.55 * cfg.pixel_size_um
    centre = np.zeros(shape, dtype=bool)
    radius_at = np.zeros(shape, dtype=np.float32)
    for path, radius in paths:
        moved = truth.from_first(path)
        idx = np.round(moved / voxel).astype(int)
        if not is3d:
            idx[:, 0] = 0
        ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
        centre[tuple(idx[ok].T)] = True
        radius_at[tuple(idx[ok].T)] = radius[ok] * truth.scale
    dendrite = np.zeros(shape, dtype=np.uint8)
    if centre.any():
        dist, inds = ndi.distance_transform_edt(~centre, sampling=voxel, return_indices=True)
        dendrite = (dist <= radius_at[tuple(inds)]).astype(np.uint8)
        del dist, inds
    spines = np.zeros(shape, dtype=np.uint32)
    free = dendrite == 0
    for sid, prims in prims_by_id.items():
        moved = [(*truth.from_first(np.array([a, b])), r * truth.scale) for a, b, r in prims]
        trial = np.zeros(shape, dtype=bool)
        draw_capsules(trial, True, moved, voxel, min_r, only_where=free & (spines == 0))
        if trial.sum() >= 3:
            spines[trial] = sid
    signal = dendrite.astype(np.float32)
    signal *= (1.0 + 0.2 * _smooth_field(rng, shape, 30.0)).astype(np.float32)
    signal[spines > 0] = rng.uniform(0.7, 1.2)
    sigma_px = [cfg.psf_sigma_xy_um / cfg.pixel_size_um] * 2
    sigma = ([cfg.psf_sigma_z_um / cfg.z_step_um] if is3d else [0.0]) + sigma_px
    blurred = ndi.gaussian_filter(signal, sigma=sigma)
    blurred += 0.3 * ndi.gaussian_filter(signal, sigma=[s * 6 for s in sigma])
    blurred += cfg.background
    expected = blurred * cfg.peak_photons * gain
    counts = rng.poisson(expected).astype(np.float32)
    counts += rng.normal(0, cfg.read_noise, size=shape).astype(np.float32) + CAMERA_OFFSET
    return np.clip(counts, 0, 65535).astype(np.uint16), dendrite, spines


def generate_series(
    seed: int, config: SeriesConfig | None = None, days: list[float] | None = None
) -> SyntheticSeries:
    """Generate a series of sessions of the same dendrites (see the module's docstring).

    Returns a :class:`SyntheticSeries`; each session's ``image`` is (Z, Y, X) uint16, ``dendrite``
    uint8 and ``spines`` uint32 (the spine's id is the same in every session); voxel size in µm.
    ``days`` (one per session, default 0, 2, 4, ...) are the sessions' days.
    """
    cfg = config or SeriesConfig()
    rng = np.random.default_rng(seed)
    shape = tuple(cfg.shape)
    voxel = np.array(cfg.voxel_size_um)
    extent = np.array(shape) * voxel
    if shape[0] == 1:
        extent[0] = 0.0
    paths, sites = _sites(rng, cfg, extent)
    alive = _lifetimes(rng, len(sites), cfg)
    days = list(days) if days is not None else [2.0 * k for k in range(cfg.n_sessions)]
    sessions = []
    for s in range(cfg.n_sessions):
        truth = _session_map(rng, cfg, extent, first=s == 0)
        gain = 1.0 + (rng.uniform(-1, 1) * cfg.brightness if s else 0.0)
        prims = {k + 1: sites[k][1] for k in range(len(sites)) if alive[k, s]}
        image, dendrite, spines = _render(rng, cfg, shape, voxel, paths, prims, truth, gain)
        sessions.append(
            SeriesSession(image, dendrite, spines, tuple(float(v) for v in voxel), truth, days[s])
        )
    return SyntheticSeries(
        sessions=sessions,
        spine_types={k + 1: sites[k][0] for k in range(len(sites))},
        base_um={k + 1: np.asarray(sites[k][2], float) for k in range(len(sites))},
        config=cfg,
    )
