"""The npe2 manifest: it validates, and the docks sit under napari's Layers menus as well as
under Plugins."""

from __future__ import annotations

from importlib.resources import files

import pytest
from npe2 import PluginManifest

PLUGIN = "napari-dendrite-panoptic"
MENUS = {
    "napari/layers/segment": {"Panoptic inference", "Train on corrections"},
    "napari/layers/measure": {"Metrics", "Spine analysis"},
    "napari/layers/track": {"Spines over time"},
}


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_file(str(files("napari_dendrite_panoptic") / "napari.yaml"))


def test_manifest_validates_and_lists_the_layers_menus(manifest):
    PluginManifest.model_validate(
        manifest.model_dump()
    )  # from_file validated it; once more from data
    titles = {c.id: c.title for c in manifest.contributions.commands}
    widgets = {w.command for w in manifest.contributions.widgets}
    menus = {
        menu: {titles[item.command] for item in items}
        for menu, items in manifest.contributions.menus.items()
    }
    assert menus == MENUS
    # every menu entry is a dock (so napari opens it) and the Plugins menu still lists all five
    assert {i.command for items in manifest.contributions.menus.values() for i in items} == widgets
    assert len(widgets) == 5


def test_napari_accepts_the_menus_and_shows_the_docks_there(make_napari_viewer, manifest):
    from napari._app_model import get_app_model
    from napari._app_model.constants._menus import is_menu_contributable

    assert all(is_menu_contributable(menu) for menu in MENUS)
    make_napari_viewer()
    app = get_app_model()

    def commands(menu_id: str) -> set[str]:
        return {item.command.id for item in app.menus.get_menu(menu_id) if hasattr(item, "command")}

    titles = {c.id: c.title for c in manifest.contributions.commands}
    for menu, expected in MENUS.items():
        assert expected <= {titles.get(c) for c in commands(menu)}, menu
    plugins = set().union(*(commands(m) for m, _ in app.menus if m.startswith("napari/plugins")))
    assert {w.command for w in manifest.contributions.widgets} <= plugins
