"""Shared fixtures: a tiny random-weight model folder and small synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def load_script():
    """Import one of ``scripts/*.py`` or ``benchmarks/*.py`` by name (they are not packages)
    and return the module."""
    import importlib.util

    def load(name: str):
        path = next(
            p for d in ("scripts", "benchmarks") if (p := ROOT / d / f"{name}.py").is_file()
        )
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A model folder with small random-weight networks (fast on the CPU, results meaningless)."""
    import torch

    from napari_dendrite_panoptic.models import (
        ModelCard,
        NetworkCard,
        build_dendrite_model,
        build_spine_model,
        save_models,
    )

    torch.manual_seed(0)
    spine_cfg = {"fpn_channels": 32, "box_head_size": 64, "mask_head_channels": 32}
    dend_cfg = {"fpn_channels": 16}
    card = ModelCard(
        name="tiny-test-model",
        version="0",
        pixel_size_um=0.1,
        spines=NetworkCard(
            "maskrcnn_resnet18_fpn_lite", "spines.safetensors", "", spine_cfg, ("spine",)
        ),
        dendrites=NetworkCard(
            "fcn_resnet18_fpn_lite",
            "dendrites.safetensors",
            "",
            dend_cfg,
            ("background", "dendrite"),
        ),
        provenance={"note": "random weights for tests"},
    )
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_models(folder, card, build_spine_model(spine_cfg), build_dendrite_model(dend_cfg))
    return folder


@pytest.fixture(scope="session")
def small_plane():
    """A 2D synthetic sample (1, 128, 128) at 0.1 µm/px with ground truth."""
    from napari_dendrite_panoptic.data import synthetic

    cfg = synthetic.SyntheticConfig(shape=(1, 128, 128), pixel_size_um=0.1)
    return synthetic.generate(11, cfg)


@pytest.fixture(scope="session")
def small_stack():
    """A 3D synthetic sample (4, 96, 96) at 0.1 µm/px, 0.5 µm z steps."""
    from napari_dendrite_panoptic.data import synthetic

    cfg = synthetic.SyntheticConfig(shape=(4, 96, 96), pixel_size_um=0.1, z_step_um=0.5)
    return synthetic.generate(5, cfg)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
