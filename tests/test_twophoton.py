"""The two-photon-like stack generator: determinism, exact truth, depths and noise."""

from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from napari_dendrite_panoptic.core import SPINE_TYPES
from napari_dendrite_panoptic.data import synthetic

TINY = (12, 96, 96)


def test_same_seed_same_stack_and_truth_types():
    a = synthetic.twophoton_stack(5, TINY)
    b = synthetic.twophoton_stack(5, TINY)
    c = synthetic.twophoton_stack(6, TINY)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.spines, b.spines)
    np.testing.assert_array_equal(a.dendrite, b.dendrite)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == a.dendrite.shape == a.spines.shape == TINY
    assert a.image.dtype == np.uint16 and a.dendrite.dtype == np.uint8
    assert a.spines.dtype == np.uint32 and a.expected_counts.dtype == np.float32
    cfg = a.config
    assert a.voxel_size_um == (cfg.z_step_um, cfg.pixel_size_um, cfg.pixel_size_um)
    assert 0.08 <= cfg.pixel_size_um <= 0.15 and 0.5 <= cfg.z_step_um <= 2.0
    assert 1.5 <= cfg.psf_fwhm_z_um <= 3.0 and 0.3 <= cfg.psf_fwhm_xy_um <= 0.5
    assert set(a.spine_types.values()) <= set(SPINE_TYPES)


def test_one_id_per_spine_through_its_planes_attached_to_the_shaft():
    cfg = synthetic.TwoPhotonConfig(
        shape=(14, 128, 128), z_step_um=0.6, spine_density_per_um=2.5, vertical_fraction=0.5
    )
    s = synthetic.generate_twophoton(3, cfg)
    ids = np.unique(s.spines[s.spines > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(s.spine_types) + 1))
    assert len(ids) >= 5
    assert not np.any((s.dendrite > 0) & (s.spines > 0))
    rim = ndi.binary_dilation(s.dendrite > 0)
    several_planes = 0
    for i, box in enumerate(ndi.find_objects(s.spines), start=1):
        mask = s.spines[box] == i
        assert ndi.label(mask)[1] == 1, f"spine {i} is more than one piece"
        assert (mask & rim[box]).any(), f"spine {i} floats free of the dendrite"
        planes = np.flatnonzero(mask.any(axis=(1, 2)))
        assert np.array_equal(planes, np.arange(planes[0], planes[-1] + 1))
        several_planes += len(planes) > 1
    assert several_planes >= 1


def test_some_spines_point_up_or_down_over_the_shaft():
    cfg = synthetic.TwoPhotonConfig(
        shape=(16, 128, 128), z_step_um=0.5, n_dendrites=1, vertical_fraction=1.0
    )
    s = synthetic.generate_twophoton(1, cfg)
    dz = np.array([s.spine_geometry[i].direction[0] for i in s.spine_types])
    assert (dz > 0.7).any() and (dz < -0.7).any()
    # a spine straight above or below the shaft: in the projection it lies over the shaft,
    # in depth it is in planes the shaft's column does not reach
    shaft = s.dendrite.any(0)
    found = False
    for i in np.flatnonzero(np.abs(dz) > 0.7) + 1:
        zs, ys, xs = np.nonzero(s.spines == i)
        over = shaft[ys, xs].mean() > 0.5
        off_plane = not s.dendrite[:, ys, xs].any(1).all() or np.ptp(zs) >= 1
        found |= bool(over and off_plane)
    assert found


def test_two_dendrites_at_different_depths():
    cfg = synthetic.TwoPhotonConfig(shape=(16, 96, 96), z_step_um=1.0, n_dendrites=2)
    for seed in range(6):
        s = synthetic.generate_twophoton(seed, cfg)
        lab, n = ndi.label(s.dendrite)
        if n < 2:
            continue
        depths = [np.nonzero(lab == k)[0].mean() for k in range(1, n + 1)]
        if max(depths) - min(depths) >= 2.5:  # planes of 1 µm: centre lines >= 3 µm apart
            return
    raise AssertionError("no seed gave two dendrites at different depths")


def test_noise_is_poisson_plus_read_noise_at_low_counts():
    cfg = synthetic.TwoPhotonConfig(shape=(10, 96, 96), peak_photons=15.0, read_noise=1.0)
    s = synthetic.generate_twophoton(2, cfg)
    photons = s.image.astype(float) - synthetic.CAMERA_OFFSET
    expected = s.expected_counts.astype(float)
    assert expected[s.dendrite > 0].mean() < 40  # low counts, as in real stacks
    residual = (photons - expected) / np.sqrt(expected + cfg.read_noise**2 + 1 / 12)
    assert abs(residual.mean()) < 0.1 and 0.9 < residual.std() < 1.1
    # variance grows with the mean as shot noise does (slope ~ 1)
    bright = expected > np.percentile(expected, 99)
    dim = expected < np.percentile(expected, 20)
    slope = (np.var(photons[bright] - expected[bright]) - np.var(photons[dim] - expected[dim])) / (
        expected[bright].mean() - expected[dim].mean()
    )
    assert 0.7 < slope < 1.3
    # the same stack without noise sources but the PSF keeps its light: blur reaches planes
    # the shaft is not in (the axial PSF is wider than the shaft)
    quiet = synthetic.generate_twophoton(2, replace(cfg, haze=0.0, background_photons=0.0))
    column = quiet.dendrite.any(0)
    off = ~quiet.dendrite.astype(bool) & column[None]
    assert quiet.expected_counts[off].max() > 0.3 * quiet.expected_counts[quiet.dendrite > 0].max()
