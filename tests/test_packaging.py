"""The installed package's metadata: version from the git tag, project URLs, classifiers."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

import napari_dendrite_panoptic

DIST = "napari-dendrite-panoptic"


def _metadata() -> importlib.metadata.PackageMetadata:
    """This checkout's installed metadata; skips when the metadata found was installed from
    another checkout (run ``pip install -e .`` here first)."""
    dist = importlib.metadata.distribution(DIST)
    here = Path(napari_dendrite_panoptic.__file__).resolve().parents[2]
    direct = dist.read_text("direct_url.json")
    if direct and (here / "pyproject.toml").is_file():
        where = Path(urlparse(json.loads(direct)["url"]).path).resolve()
        if where != here:
            pytest.skip(f"the installed metadata is {where}'s, not {here}'s: pip install -e .")
    return dist.metadata


def test_version_is_the_installed_distributions():
    installed = importlib.metadata.version(DIST)
    assert napari_dendrite_panoptic.__version__ == installed
    assert installed[0].isdigit()


def test_metadata_names_the_project_urls_and_the_napari_classifier():
    meta = _metadata()
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Issues", "Source"} <= set(urls), urls
    assert all(u.startswith("https://github.com/napari-dendrite-panoptic/") for u in urls.values())
    classifiers = meta.get_all("Classifier") or []
    assert "Framework :: napari" in classifiers
    assert "Topic :: Scientific/Engineering :: Image Processing" in classifiers
    assert meta["License-Expression"] == "BSD-3-Clause"
