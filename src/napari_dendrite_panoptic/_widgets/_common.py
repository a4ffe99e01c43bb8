"""Helpers shared by the plugin's widgets: layer pickers, layer scale ↔ voxel size, result layers
in the viewer, a model folder picker.

Result layers that this plugin writes carry ``metadata["dendrite_panoptic"]``; only those are
ever updated in place, so a layer the user made is never overwritten.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..core import LAYER_KEY
from ..errors import ModelError

if TYPE_CHECKING:
    import napari
    import napari.layers

logger = logging.getLogger(__name__)

OURS = LAYER_KEY
"""Metadata key that marks a layer as written by this plugin."""
BROWSE = "Browse…"
NONE = "(none)"
"""First entry of a layer picker that may be left empty."""


class _VerticalScrollArea(QScrollArea):
    """A scroll area that scrolls up and down only: it is as wide as its content needs."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is not None:
            bar = self.verticalScrollBar().sizeHint().width()
            hint.setWidth(content.minimumSizeHint().width() + bar)
        return hint


def scrolling_layout(dock: QWidget) -> QVBoxLayout:
    """The layout to fill a dock with, inside a scroll area that fills the dock: a dock then
    needs little room of its own (two docks, or all of them, fit one 1400 x 900 screen) and
    its content scrolls when the dock is shorter or narrower than the content."""
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = _VerticalScrollArea(dock)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setFrameShape(QFrame.NoFrame)
    content = QWidget(scroll)
    scroll.setWidget(content)
    outer.addWidget(scroll)
    dock.scroll_area = scroll  # for tests and for scrolling to a section
    return QVBoxLayout(content)


def form(rows: Sequence[tuple[str, Any]]) -> QFormLayout:
    """A form of (label, widget or layout) rows, in order."""
    layout = QFormLayout()
    for label, field in rows:
        layout.addRow(label, field)
    return layout


def button_row(*buttons: QWidget) -> QHBoxLayout:
    """The buttons side by side."""
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    return row


def spin_box(lo: float, hi: float, value: float, step: float, decimals: int) -> QDoubleSpinBox:
    """A float spin box on [lo, hi] showing ``decimals`` decimals, stepping by ``step``."""
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


def layer_picker(
    viewer: napari.viewer.Viewer,
    kinds: type | tuple[type, ...],
    *,
    optional: bool = False,
    keep: Callable[[Any], bool] | None = None,
    tooltip: str | None = None,
) -> ComboBox:
    """A magicgui ``ComboBox`` offering the viewer's layers of ``kinds`` (in layer-list order).

    Its ``value`` is the chosen layer object (None for :data:`NONE`, offered first when
    ``optional``); ``keep`` leaves out layers for which it returns False. The choices are
    re-read by ``reset_choices()``: a dock holding pickers has a ``reset_choices`` method that
    calls :func:`reset_picker` on each, and napari connects that method to the layer list's
    inserted, removed, reordered and renamed events when it docks the widget, as it does for
    magicgui widgets.
    """

    def layers(_widget: Any) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if isinstance(layer, kinds) and (keep is None or keep(layer))
        ]

    picker = ComboBox(choices=layers, nullable=optional, tooltip=tooltip)
    if optional:
        picker.null_string = NONE
        picker.reset_choices()
    return picker


def reset_picker(picker: ComboBox) -> None:
    """Re-read a layer picker's choices, in layer-list order, keeping the chosen layer while it
    is offered (also when it was renamed), else choosing the first layer (or :data:`NONE`).
    ``picker.changed`` is emitted once, and only when the chosen layer changed.

    magicgui's own ``reset_choices`` matches entries by name, so a renamed layer would move to
    the end of the list and, when chosen, lose its place as the choice.
    """
    before = picker.value
    with picker.changed.blocked():
        picker.native.blockSignals(True)
        picker.native.clear()  # re-listed in layer order below
        picker.native.blockSignals(False)
        picker.reset_choices()
        if before is not None and any(layer == before for layer in picker.choices):
            picker.value = before
    if picker.value != before:  # == not `is`: napari hands plugins proxies of its layers
        picker.changed.emit(picker.value)


def offered(picker: ComboBox) -> list[str]:
    """The names a layer picker offers (without :data:`NONE`), in order."""
    return [layer.name for layer in picker.choices if layer is not None]


def voxel_size_from_scale(scale: Sequence[float]) -> tuple[float, float, float]:
    """(z, y, x) voxel size of a layer's ``scale``: the last three axes, z = 1.0 for 2D.

    Parameters
    ----------
    scale : sequence of float
        A layer's scale, one value per axis (at least two).
    """
    values = [float(s) for s in scale]
    if len(values) < 2:
        raise ValueError(f"a spatial layer has at least two axes, got scale {values}")
    if len(values) == 2:
        return (1.0, values[0], values[1])
    return (values[-3], values[-2], values[-1])


def scale_is_calibrated(scale: Sequence[float]) -> bool:
    """True unless every axis of ``scale`` (the last three at most) is 1.0: napari's default
    when the pixel size is unknown."""
    return not np.allclose([float(s) for s in scale][-3:], 1.0)


def spatial_data(
    layer: napari.layers.Image, viewer: napari.viewer.Viewer
) -> tuple[Any, tuple[int, ...]]:
    """A layer's (Y, X) or (Z, Y, X) data; for 4D+ layers the volume at the viewer's current
    position on the leading axes (time, ...).

    Returns
    -------
    data, index
        The (possibly lazy) array and the indices taken on the leading axes (empty for 2D/3D).
        A multiscale layer gives its full-resolution level.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    n_lead = max(len(data.shape) - 3, 0)
    if n_lead == 0:
        return data, ()
    point = layer.world_to_data(viewer.dims.point)[:n_lead]
    index = tuple(
        int(np.clip(round(float(p)), 0, size - 1))
        for p, size in zip(point, data.shape[:n_lead], strict=True)
    )
    return data[index], index


def is_ours(layer: Any) -> bool:
    """True for a layer this plugin wrote (its metadata holds the :data:`OURS` key)."""
    return bool(getattr(layer, "metadata", {}).get(OURS))


def camera(viewer: Any) -> Any:
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9 (``viewer.camera`` is
    deprecated there), ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def layer_units(layer: Any, ndim: int | None = None) -> list[Any] | None:
    """The units of a layer's last ``ndim`` axes (all axes by default), None where the installed
    napari has no layer units: a result layer given its image's units keeps napari from warning
    about "inconsistent units across layers"."""
    units = getattr(layer, "units", None)
    if units is None:
        return None
    units = list(units)
    return units[-ndim:] if ndim else units


def placement(layer: Any, ndim: int | None = None) -> dict[str, Any]:
    """``scale``, ``translate`` and (where napari has them) ``units`` of a layer's last ``ndim``
    axes: keyword arguments that put a result layer on that layer's grid."""
    n = ndim or len(layer.scale)
    place: dict[str, Any] = {
        "scale": [float(v) for v in layer.scale[-n:]],
        "translate": [float(v) for v in layer.translate[-n:]],
    }
    units = layer_units(layer, n)
    if units is not None:
        place["units"] = units
    return place


def add_or_update_labels(
    viewer: napari.viewer.Viewer,
    name: str,
    data: np.ndarray,
    *,
    scale: Sequence[float],
    translate: Sequence[float],
    metadata: Mapping[str, Any],
    features: Any = None,
    units: Sequence[Any] | None = None,
) -> napari.layers.Labels:
    """Put ``data`` in the viewer as the Labels layer ``name``, replacing our previous result.

    A Labels layer with that name written by this plugin, and not edited since, is updated in
    place (same position in the layer list). When the name belongs to another layer (the user's
    own, or our result with the user's corrections painted in), ``"<name> [2]"``,
    ``"<name> [3]"``, ... is used instead and a warning says so. ``metadata`` is stored under
    ``layer.metadata["dendrite_panoptic"]``, with the per-plane hashes of ``data``
    (``plane_hashes``) that tell later whether the user edited the layer. ``units``: those of the
    image the result belongs to (see :func:`placement`).

    Returns
    -------
    napari.layers.Labels
        The updated or newly added layer.
    """
    from napari.layers import Labels

    from ..data import plane_hashes

    layer_metadata = {OURS: {**dict(metadata), "plane_hashes": plane_hashes(_planes(data))}}

    def unedited_result(layer: Any) -> bool:
        return isinstance(layer, Labels) and is_ours(layer) and not edited_by_user(layer)

    existing, candidate = reusable_layer(viewer, name, unedited_result, "the result goes")
    if existing is None:
        return _new_labels(
            viewer, candidate, data, scale, translate, layer_metadata, features, units
        )
    if existing.ndim == data.ndim:
        existing.data = data
        existing.scale = list(scale)
        existing.translate = list(translate)
        if units is not None:
            existing.units = list(units)
        existing.metadata = layer_metadata
        if features is not None:
            existing.features = features
        return existing
    position = viewer.layers.index(existing)
    viewer.layers.remove(existing)
    layer = _new_labels(viewer, candidate, data, scale, translate, layer_metadata, features, units)
    viewer.layers.move(viewer.layers.index(layer), position)
    return layer


def reusable_layer(
    viewer: napari.viewer.Viewer, name: str, ours: Callable[[Any], bool], what: str
) -> tuple[Any | None, str]:
    """The layer named ``name`` (or ``"<name> [2]"``, ``"<name> [3]"``, ...) that ``ours`` says
    this plugin may replace, with its name; else ``None`` and the first free name of those.

    A layer that ``ours`` refuses (the user's own, or our result with the user's edits) is never
    touched; when ``name`` is taken so, a warning says where ``what`` (e.g. "the result goes")
    instead.
    """
    candidate, k = name, 1
    while candidate in viewer.layers:
        if ours(viewer.layers[candidate]):
            return viewer.layers[candidate], candidate
        k += 1
        candidate = f"{name} [{k}]"
    if candidate != name:
        show_warning(
            f"A layer named '{name}' exists already and holds your own data or edits: "
            f"{what} into '{candidate}' instead."
        )
    return None, candidate


def relabel_in_place(layer: Any, data: np.ndarray) -> None:
    """Give one of our Labels layers new ``data`` that this plugin made (an id merged or split),
    keeping the record of what was written up to date, so that a later run may still replace the
    layer; a layer the user has painted on stays marked as edited."""
    from ..data import plane_hashes

    clean = is_ours(layer) and not edited_by_user(layer)
    layer.data = data
    if clean:
        layer.metadata = {
            **layer.metadata,
            OURS: {**layer.metadata[OURS], "plane_hashes": plane_hashes(_planes(data))},
        }


def edited_planes_of(layer: Any) -> list[int] | None:
    """Planes (z indices; [0] for a 2D layer) of one of our Labels layers that differ from what
    the plugin wrote, or None when the layer carries no record of what was written."""
    from ..data import edited_planes

    hashes = getattr(layer, "metadata", {}).get(OURS, {}).get("plane_hashes")
    if not hashes:
        return None
    return edited_planes(_planes(layer.data), hashes)


def _planes(data: Any) -> Any:
    """A label array as its (Y, X) planes: a 4D+ result (time, Z, Y, X) flattened to
    (T·Z, Y, X) for the per-plane hashes; 2D and 3D arrays as they are."""
    return data if data.ndim <= 3 else np.asarray(data).reshape(-1, *data.shape[-2:])


def edited_by_user(layer: Any) -> bool:
    """True when a layer we wrote has been painted on since (or has no record to compare)."""
    planes = edited_planes_of(layer)
    return planes is None or bool(planes)


def _new_labels(
    viewer, name, data, scale, translate, metadata, features, units=None
) -> napari.layers.Labels:
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": list(scale),
        "translate": list(translate),
        "metadata": metadata,
    }
    if features is not None:
        kwargs["features"] = features
    if units is not None:
        kwargs["units"] = list(units)
    logger.debug("adding labels layer %r with shape %s", name, data.shape)
    return viewer.add_labels(data, **kwargs)


_PICKERS: weakref.WeakSet[ModelPicker] = weakref.WeakSet()


def refresh_model_pickers() -> None:
    """Re-list the model folders in every open model picker (after a new model was saved)."""
    for picker in list(_PICKERS):
        try:
            picker.refresh()
        except RuntimeError:  # its Qt widget was deleted with its dock
            _PICKERS.discard(picker)


class ModelPicker(QComboBox):
    """Model folders by card name: bundled and user folders, folders chosen before, ``Browse…``.

    Listing the folders imports the model store (and so torch). Every picker is re-listed by
    :func:`refresh_model_pickers`.
    """

    def __init__(self) -> None:
        super().__init__()
        _PICKERS.add(self)
        self._extra: list[str] = []
        self._last: str | None = None
        self.activated.connect(self._on_activated)
        self.currentIndexChanged.connect(self._remember)
        self.refresh()

    def folder(self) -> str | None:
        """The selected model folder, or None when none is selected."""
        data = self.currentData()
        return data if isinstance(data, str) and data != BROWSE else None

    def refresh(self) -> None:
        """Re-list the model folders, keeping the selection when it still exists."""
        from ..models import list_model_folders

        current = self.folder()
        folders = [str(p) for p in list_model_folders()]
        folders += [f for f in self._extra if f not in folders]
        self.clear()
        if not folders:
            self.addItem("(no model installed: Browse… for a folder)", None)
        for folder in folders:
            self.addItem(_model_label(folder), folder)
            self.setItemData(self.count() - 1, folder, Qt.ItemDataRole.ToolTipRole)
        self.addItem(BROWSE, BROWSE)
        self.setCurrentIndex(max(self.findData(current), 0))

    def set_folder(self, path: str | Path) -> None:
        """Add a model folder (if new) and select it; raises ModelError without a valid card."""
        from ..models import ModelCard

        folder = str(Path(path))
        ModelCard.load(Path(folder))
        if self.findData(folder) < 0:
            self._extra.append(folder)
            self.refresh()
        self.setCurrentIndex(self.findData(folder))

    def _remember(self, _index: int) -> None:
        if self.folder() is not None:
            self._last = self.folder()

    def _on_activated(self, index: int) -> None:
        if self.itemData(index) != BROWSE:
            return
        self.setCurrentIndex(max(self.findData(self._last), 0))
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        if folder:
            try:
                self.set_folder(folder)
            except ModelError as exc:
                show_error(str(exc))


def _model_label(folder: str) -> str:
    from ..models import ModelCard

    try:
        card = ModelCard.load(Path(folder))
    except ModelError:
        return f"(unreadable card) {folder}"
    from ..models import bundled_model_dir

    where = (
        "bundled" if Path(folder).resolve() == bundled_model_dir().resolve() else Path(folder).name
    )
    return f"{card.name} v{card.version} ({where})"
