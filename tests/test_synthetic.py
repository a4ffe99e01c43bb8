from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dendrite_panoptic.core import SPINE_TYPES
from napari_dendrite_panoptic.data import synthetic


def test_same_seed_same_sample_and_exact_ground_truth():
    cfg = synthetic.SyntheticConfig(shape=(1, 160, 160), spine_density_per_um=2.0)
    a = synthetic.generate(3, cfg)
    b = synthetic.generate(3, cfg)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.spines, b.spines)
    assert a.image.dtype == np.uint16 and a.image.shape == (1, 160, 160)
    assert a.dendrite.any() and len(a.spine_types) > 3
    # panoptic: no voxel is dendrite and spine at once
    assert not np.any((a.dendrite > 0) & (a.spines > 0))
    # ids are 1..N and every spine is one connected piece touching the shaft
    ids = np.unique(a.spines[a.spines > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(a.spine_types) + 1))
    shaft = ndi.binary_dilation(a.dendrite[0] > 0, iterations=1)
    for i in ids:
        mask = a.spines[0] == i
        assert ndi.label(mask)[1] == 1
        assert (mask & shaft).any(), f"spine {i} floats free of the dendrite"


def test_spines_are_brighter_than_background():
    s = synthetic.generate(1, synthetic.SyntheticConfig(shape=(1, 128, 128), n_puncta=0, n_axons=0))
    img = s.image.astype(float)
    assert img[s.spines > 0].mean() > 2 * img[(s.spines == 0) & (s.dendrite == 0)].mean()


def test_expected_counts_are_the_noise_free_image_and_spines_alone_add_light():
    cfg = synthetic.SyntheticConfig(
        shape=(1, 128, 128), peak_photons=200.0, read_noise=2.0, haze=0.0
    )
    s = synthetic.generate(5, cfg)
    assert s.expected_counts.shape == s.image.shape and s.expected_counts.dtype == np.float32
    photons = s.image.astype(float) - synthetic.CAMERA_OFFSET
    # the image is Poisson + read noise around the expected counts (minus < 1 count of rounding)
    residual = (photons - s.expected_counts) / np.sqrt(s.expected_counts + cfg.read_noise**2)
    assert abs(residual.mean()) < 0.15 and 0.8 < residual.std() < 1.2
    # the same seed without the spines' light differs only near the spines (no haze here)
    dark = synthetic.generate(5, replace(cfg, spine_brightness=0.0))
    np.testing.assert_array_equal(dark.spines, s.spines)
    added = s.expected_counts - dark.expected_counts
    assert added[s.spines > 0].min() > 0
    far = ndi.distance_transform_edt(s.spines[0] == 0) > 15
    assert np.abs(added[0][far]).max() < 1e-3 * cfg.peak_photons


def test_3d_stack_with_anisotropic_voxels():
    cfg = synthetic.SyntheticConfig(shape=(6, 96, 96), pixel_size_um=0.1, z_step_um=0.5)
    s = synthetic.generate(2, cfg)
    assert s.image.shape == (6, 96, 96)
    assert s.voxel_size_um == (0.5, 0.1, 0.1)
    assert s.dendrite[:, :, :].sum(axis=(1, 2)).max() > 0
    assert set(s.spine_types.values()) <= set(SPINE_TYPES)


def test_random_configs_vary_within_documented_ranges():
    rng = np.random.default_rng(0)
    cfgs = [synthetic.random_config(rng) for _ in range(50)]
    px = [c.pixel_size_um for c in cfgs]
    dens = [c.spine_density_per_um for c in cfgs]
    assert min(px) >= 0.06 and max(px) <= 0.2 and max(px) - min(px) > 0.08
    assert min(dens) >= 0.5 and max(dens) <= 3.0


@pytest.mark.parametrize(("shape", "scale"), [((1, 97, 130), 30.0), ((9, 64, 50), 12.0)])
def test_smooth_field_is_the_cubic_spline_zoom_of_its_coarse_grid(shape, scale):
    # the field is built one axis at a time; it must equal scipy's n-D cubic zoom, which the
    # generator used before (the held-out generator images must not change)
    small = tuple(max(2, int(np.ceil(s / scale)) + 2) for s in shape)
    coarse = np.random.default_rng(5).normal(size=small)
    zoomed = ndi.zoom(coarse, [s / c for s, c in zip(shape, small, strict=True)], order=3)
    expected = (zoomed - zoomed.mean()) / (zoomed.std() + 1e-9)
    got = synthetic._smooth_field(np.random.default_rng(5), shape, scale)
    assert got.shape == shape
    np.testing.assert_allclose(got, expected, atol=1e-10)
