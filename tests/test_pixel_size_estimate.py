"""The pixel size of an uncalibrated image is estimated from its dendrite width, used, reported
and recorded; never silently assumed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.data.synthetic import SyntheticConfig, generate
from napari_dendrite_panoptic.errors import InputError
from napari_dendrite_panoptic.inference import (
    ESTIMATED,
    PIXEL_SIZE_RANGE_UM,
    InferenceConfig,
    estimate_pixel_size,
    predict,
)

# shafts 0.6-0.7 µm across: with the generator's blur they look as wide as the real shafts the
# typical width was measured on (the generator's default shafts, 0.9-1.6 µm, look wider)
THIN_SHAFTS = (0.3, 0.35)


def _plane(pixel_size_um: float, seed: int, field_um: float = 24.0) -> np.ndarray:
    n = int(round(field_um / pixel_size_um))
    cfg = SyntheticConfig(
        shape=(1, n, n), pixel_size_um=pixel_size_um, dendrite_radius_um=THIN_SHAFTS
    )
    return generate(seed, cfg).image[0]


@pytest.mark.parametrize("seed", [1, 2])
def test_estimate_is_within_25_percent_and_orders_two_pixel_sizes(seed):
    fine = estimate_pixel_size(_plane(0.07, seed))
    coarse = estimate_pixel_size(_plane(0.14, seed))
    assert fine.pixel_size_um == pytest.approx(0.07, rel=0.25)
    assert coarse.pixel_size_um == pytest.approx(0.14, rel=0.25)
    assert coarse.pixel_size_um > 1.5 * fine.pixel_size_um
    assert coarse.shaft_width_px < fine.shaft_width_px


def test_a_stack_is_estimated_from_its_projection():
    n = int(round(24 / 0.1))
    cfg = SyntheticConfig(
        shape=(6, n, n), pixel_size_um=0.1, z_step_um=0.5, dendrite_radius_um=THIN_SHAFTS
    )
    stack = generate(3, cfg).image
    assert estimate_pixel_size(stack).pixel_size_um == pytest.approx(0.1, rel=0.25)


def test_estimate_is_clamped_and_bad_input_gets_a_reason():
    blob = np.zeros((64, 64), np.float32)
    blob[:, 8:56] = 100  # a "shaft" 48 px wide: far below any pixel size we accept
    estimate = estimate_pixel_size(blob)
    assert estimate.clamped and estimate.pixel_size_um == PIXEL_SIZE_RANGE_UM[0]
    with pytest.raises(InputError, match="uniform"):
        estimate_pixel_size(np.full((32, 32), 7.0))
    with pytest.raises(InputError, match=r"\(Y, X\) or \(Z, Y, X\)"):
        estimate_pixel_size(np.zeros((2, 3, 32, 32)))


def test_uncalibrated_run_uses_and_records_the_estimate(tiny_model_dir):
    image = _plane(0.14, 1)
    expected = estimate_pixel_size(image).pixel_size_um
    cfg = InferenceConfig(model=str(tiny_model_dir), device="cpu")
    result = predict(image, None, cfg)
    assert result.pixel_size_source == ESTIMATED
    assert result.voxel_size_um[1:] == pytest.approx((expected, expected))
    assert result.parameters["pixel_size_estimate"]["pixel_size_um"] == pytest.approx(expected)
    assert any("estimated from the dendrite width" in w for w in result.parameters["warnings"])
    # a pixel size given wins, and nothing is estimated
    given = predict(image, None, InferenceConfig(model=str(tiny_model_dir), pixel_size_um=0.1))
    assert given.pixel_size_source == "pixel_size_um parameter"
    assert "pixel_size_estimate" not in given.parameters


def test_cli_prints_the_estimate_in_one_line_and_records_it(tiny_model_dir, tmp_path, capsys):
    image = _plane(0.14, 2)
    path = tmp_path / "uncalibrated.tif"
    tifffile.imwrite(path, image)  # no resolution, no ImageJ metadata
    expected = estimate_pixel_size(image).pixel_size_um
    args = ["segment", str(path), "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "estimated from" in ln]
    assert len(lines) == 1 and f"{expected:.3g} µm/px" in lines[0]
    record = json.loads((tmp_path / "out" / "uncalibrated_run.json").read_text())
    assert record["pixel_size"]["source"] == ESTIMATED
    assert record["pixel_size"]["used_um"][1:] == pytest.approx([expected, expected])
    assert record["pixel_size"]["estimate"]["shaft_width_px"] > 0
    # --pixel-size overrides: no estimate, the given size recorded
    out2 = tmp_path / "out2"
    assert main([*args[:3], str(out2), *args[4:], "--device", "cpu", "--pixel-size", "0.12"]) == 0
    assert "estimated from" not in capsys.readouterr().err
    record = json.loads((out2 / "uncalibrated_run.json").read_text())
    assert record["pixel_size"]["used_um"][1:] == pytest.approx([0.12, 0.12])
    assert "estimate" not in record["pixel_size"]


def test_an_estimate_far_from_the_models_pixel_size_is_reported_but_not_used(tiny_model_dir):
    """Hazy two-photon fields read as a third of their pixel size; using such an estimate would
    shrink every spine threefold, so beyond a factor of 2 the model's own size is used."""
    image = _plane(0.04, 1)  # the tiny model's pixel size is 0.1 µm
    estimate = estimate_pixel_size(image)
    assert estimate.pixel_size_um < 0.05
    result = predict(image, None, InferenceConfig(model=str(tiny_model_dir), device="cpu"))
    assert result.pixel_size_source.startswith("assumed")
    assert result.voxel_size_um[1:] == pytest.approx((0.1, 0.1))
    assert result.parameters["pixel_size_estimate"]["used"] is False
    (warning,) = [w for w in result.parameters["warnings"] if "dendrite width" in w]
    assert "using the model's 0.1 µm/px" in warning and f"{estimate.unclamped_um:.3g}" in warning
