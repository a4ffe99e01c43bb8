"""The "Train on corrections" dock's table of corrected images: one row per (image, dendrite
labels, spine labels, held out), each layer cell a layer picker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QCheckBox, QHeaderView, QTableWidget

from ._common import layer_picker, reset_picker

if TYPE_CHECKING:
    import napari

COLUMNS = ("Image", "Dendrite labels", "Spine labels", "Held out")


class CorrectionRows(QTableWidget):
    """Rows of (image, dendrite labels, spine labels, held out) chosen among a viewer's layers.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose Image and Labels layers are offered.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(0, len(COLUMNS))
        self.viewer = viewer
        self.setHorizontalHeaderLabels(COLUMNS)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setVisible(False)
        # per table row: magicgui layer pickers of its image, dendrite and spine layers (their
        # native Qt widgets sit in the row's cells)
        self.pickers: list[tuple[Any, Any, Any]] = []

    def _names(self, kind: str) -> list[str]:
        from napari.layers import Image, Labels

        cls = Image if kind == "image" else Labels
        return [layer.name for layer in self.viewer.layers if isinstance(layer, cls)]

    def add_row(self, image: str | None = None) -> int:
        """Add a triple; its labels default to ``<image> dendrites`` / ``<image> spines``."""
        from napari.layers import Image, Labels

        row = self.rowCount()
        self.insertRow(row)
        pickers = (
            layer_picker(self.viewer, Image, optional=True),
            layer_picker(self.viewer, Labels, optional=True),
            layer_picker(self.viewer, Labels, optional=True),
        )
        self.pickers.append(pickers)
        for col, picker in enumerate(pickers):
            self.setCellWidget(row, col, picker.native)
        self.setCellWidget(row, 3, QCheckBox())
        images = self._names("image")
        taken = {self.row_names(r)[0] for r in range(row)}
        choice = image or next((n for n in images if n not in taken), None)
        if choice:
            self.set_row(row, choice, None, None, False)
        return row

    def remove_row(self) -> None:
        """Remove the selected triple (the last one when none is selected)."""
        row = self.currentRow()
        if self.rowCount():
            row = row if row >= 0 else self.rowCount() - 1
            self.removeRow(row)
            del self.pickers[row]

    def set_row(
        self, row: int, image: str, dendrite: str | None, spines: str | None, held_out: bool
    ) -> None:
        """Choose the layers of one triple; a label layer left None is the inference dock's
        (``<image> dendrites`` / ``<image> spines``), else the files ``segment`` writes as the
        reader names them (``<image>_dendrite`` / ``<image>_spines``), where the viewer has
        it."""
        pickers = self.pickers[row]
        pickers[0].value = self.viewer.layers[image]
        labels = self._names("labels")
        for picker, name, defaults in (
            (pickers[1], dendrite, (f"{image} dendrites", f"{image}_dendrite")),
            (pickers[2], spines, (f"{image} spines", f"{image}_spines")),
        ):
            name = name or next((d for d in defaults if d in labels), None)
            if name:
                picker.value = self.viewer.layers[name]
        self.cellWidget(row, 3).setChecked(held_out)

    def row_names(self, row: int) -> tuple[str, str, str, bool]:
        """(image, dendrite, spine layer names, held out) of a row; "" for none."""
        names = ["" if p.value is None else p.value.name for p in self.pickers[row]]
        return names[0], names[1], names[2], self.cellWidget(row, 3).isChecked()

    def all_names(self) -> list[tuple[str, str, str, bool]]:
        """:meth:`row_names` of every row, in order."""
        return [self.row_names(r) for r in range(self.rowCount())]

    def reset_choices(self, *_: Any) -> None:
        """Re-read the layers into every row's pickers, keeping the choices whose layers still
        exist."""
        for pickers in self.pickers:
            for picker in pickers:
                reset_picker(picker)
