"""The "Spines over time" dock: choose one spine Labels layer per imaging session (with its
dendrite layer and image beside it), track in a worker (progress, cancel), and get one Labels
layer with a session axis (every session registered to the first, the same id and colour for the
same spine), a Points layer of gained (green), lost (red) and missed (orange) spines, and the
table of fates: a row click goes to that spine in that session. Two ids chosen in the table can
be merged into one; the rows of one id chosen in some sessions can be split off under a new id;
the labels, the points and the tables follow. The tables export as CSV.

Layers are paired by name: for a spine layer ``X spines`` the dendrite layer is ``X dendrites``
(or ``X dendrite``) and the image ``X``, as the inference dock names them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ..errors import DendritePanopticError, InputError, OutputExistsError
from ._common import (
    OURS,
    add_or_update_labels,
    button_row,
    camera,
    is_ours,
    relabel_in_place,
    reusable_layer,
    scrolling_layout,
    voxel_size_from_scale,
)

logger = logging.getLogger(__name__)

EVENT_COLOURS = {"gained": "lime", "lost": "red", "missed": "orange"}
LABELS, IMAGES, EVENTS = "spines over time", "sessions registered", "gained and lost"
"""The dock's result layers; a layer of that name that is not this dock's unedited result is
kept, and the result goes into "<name> [2]" instead."""
TABLES = ("spines_over_time.csv", "turnover.csv")
TABLE_COLUMNS = ("id", "session", "fate", "call", "branch_id", "z_um", "y_um", "x_um")


def _partner(viewer, spine_name: str, suffixes: tuple[str, ...]):
    base = spine_name[: -len(" spines")] if spine_name.endswith(" spines") else spine_name
    for s in suffixes:
        name = f"{base}{s}"
        if name in viewer.layers:
            return viewer.layers[name]
    return None


def _job(sessions):
    """The worker: yields TrackProgress, returns (result, registered labels, images)."""
    from ..tracking import TrackResult, iter_track

    result = None
    for event in iter_track(sessions):
        if isinstance(event, TrackResult):
            result = event
        else:
            yield event
    first = result.sessions[0]
    shape, voxel = first.spines.shape, first.voxel_size_um
    labels, images = [], []
    for lab, s, reg in zip(result.labels, result.sessions, result.registrations, strict=True):
        labels.append(reg.warp(lab, s.voxel_size_um, shape, voxel, order=0))
        img = s.registration_image()
        images.append(reg.warp(img, s.voxel_size_um, shape, voxel, order=1))
    return result, np.stack(labels), np.stack(images)


class SpinesOverTimeWidget(QWidget):
    """The "Spines over time" dock (see the module's docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result = None
        self.labels_layer: Any = None
        """The tracked labels (the layer itself: renaming it does not lose it)."""
        layout = scrolling_layout(self)
        layout.addWidget(QLabel("Spine layers, one per session, in time order:"))
        self.session_list = QListWidget()
        self.session_list.setSelectionMode(QAbstractItemView.MultiSelection)
        self.session_list.setDragDropMode(QAbstractItemView.InternalMove)
        layout.addWidget(self.session_list)
        self.days_edit = QLineEdit()
        self.days_edit.setPlaceholderText("days, e.g. 0,2,7 (optional)")
        layout.addWidget(self.days_edit)
        self.run_button = QPushButton("Track")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        layout.addLayout(button_row(self.run_button, self.cancel_button, self.export_button))
        self.progress = QProgressBar()
        layout.addWidget(self.progress)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.cellClicked.connect(self._on_row_clicked)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        layout.addWidget(self.table)
        self.merge_button = QPushButton("Merge ids")
        self.merge_button.setToolTip("the two ids of the chosen rows become one, in every session")
        self.split_button = QPushButton("Split id")
        self.split_button.setToolTip("the chosen rows' spine, in their sessions, gets a new id")
        for b in (self.merge_button, self.split_button):
            b.setEnabled(False)
        layout.addLayout(button_row(self.merge_button, self.split_button))
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self._export_clicked)
        self.merge_button.clicked.connect(self._merge_clicked)
        self.split_button.clicked.connect(self._split_clicked)
        self.reset_choices()

    # The session list stays a QListWidget rather than a magicgui picker: the user drags the
    # sessions into time order and chooses several, and magicgui's Select widget has no
    # reordering (its value follows the order of its choices). It follows the layer list the
    # way magicgui pickers do: napari calls reset_choices on every change of the layer list.
    def reset_choices(self, *_: Any) -> None:
        """List the Labels layers whose names end in "spines" (not this dock's own), keeping
        the order the user dragged them into and the chosen ones; a renamed layer keeps its
        place under its new name, new layers are added at the end."""
        import napari

        spine_layers = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, napari.layers.Labels) and layer.name.endswith("spines")
        ]
        listed = self._listed_ids()
        chosen = {listed[i] for i in self._chosen_sessions()}
        by_id = {layer.unique_id: layer for layer in spine_layers}
        order = [i for i in listed if i in by_id] + [i for i in by_id if i not in listed]
        self._list_sessions([by_id[i] for i in order], chosen)

    def _list_sessions(self, layers: list[Any], chosen: set[Any]) -> None:
        """List ``layers`` in this order, those whose ``unique_id`` is in ``chosen`` selected
        (ids, not the layer objects: napari hands plugins a new proxy of a layer each time)."""
        self.session_list.clear()
        for layer in layers:
            item = QListWidgetItem(layer.name)
            item.setData(Qt.ItemDataRole.UserRole, layer.unique_id)
            self.session_list.addItem(item)
        for row, layer in enumerate(layers):
            self.session_list.item(row).setSelected(layer.unique_id in chosen)

    def _listed_ids(self) -> list[Any]:
        """The ``unique_id`` of the listed layers, in list order (as dragged)."""
        count = self.session_list.count()
        return [self.session_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(count)]

    def _chosen_sessions(self) -> list[int]:
        count = self.session_list.count()
        return [i for i in range(count) if self.session_list.item(i).isSelected()]

    def selected_names(self) -> list[str]:
        """The chosen spine layers, in list order."""
        return [self.session_list.item(i).text() for i in self._chosen_sessions()]

    def select(self, names: list[str]) -> None:
        """Choose these spine layers as the sessions, in this order (listed first)."""
        first = [self.viewer.layers[n] for n in names]
        self._list_sessions(first, {layer.unique_id for layer in first})
        self.reset_choices()  # the other spine layers after them, unchosen

    def _sessions(self):
        from ..tracking import Session

        names = self.selected_names()
        if len(names) < 2:
            raise InputError("choose at least two spine layers (one per session)")
        days_text = self.days_edit.text().strip()
        try:
            days = [float(v) for v in days_text.split(",")] if days_text else [None] * len(names)
        except ValueError:
            raise InputError(
                f"days must be numbers separated by commas (e.g. 0,2,7), not {days_text!r}"
            ) from None
        if len(days) != len(names):
            raise InputError(f"{len(days)} days for {len(names)} sessions")
        sessions = []
        for name, day in zip(names, days, strict=True):
            spines = self.viewer.layers[name]
            dend = _partner(self.viewer, name, (" dendrites", " dendrite"))
            if dend is None:
                raise InputError(f"no dendrite layer for {name!r} (expected '… dendrites')")
            image = _partner(self.viewer, name, ("",))
            data = np.asarray(spines.data)
            img = None
            if image is not None and np.shape(image.data) == data.shape:
                img = np.asarray(image.data)
            scores = {}
            feats = getattr(spines, "features", None)
            if feats is not None and {"id", "score"} <= set(feats.columns):
                scores = {
                    int(i): float(s) for i, s in zip(feats["id"], feats["score"], strict=True)
                }
            sessions.append(
                Session(
                    np.asarray(dend.data),
                    data.astype(np.uint32),
                    voxel_size_from_scale(spines.scale),
                    image=img,
                    day=day,
                    name=name,
                    scores=scores,
                )
            )
        return sessions

    def run(self) -> None:
        """Start tracking the chosen sessions in a worker."""
        if self.worker is not None:
            return
        try:
            sessions = self._sessions()
        except DendritePanopticError as exc:
            show_error(str(exc))
            self.status_label.setText(str(exc))
            return
        self.result = None
        self.status_label.setText("Tracking…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker = create_worker(_job, sessions, _start_thread=False)
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def cancel(self) -> None:
        """Stop the running job at its next step."""
        if self.worker is not None:
            self.worker.quit()
            self.status_label.setText("Cancelled.")

    def _on_progress(self, event) -> None:
        self.progress.setMaximum(event.total)
        self.progress.setValue(event.done)
        self.status_label.setText(event.step)

    def _on_error(self, exc: Exception) -> None:
        if not isinstance(exc, DendritePanopticError):
            logger.error("tracking failed", exc_info=exc)
        show_error(f"Tracking failed: {exc}")
        self.status_label.setText(f"Failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_returned(self, out) -> None:
        result, labels, images = out
        self.result = result
        self.progress.setValue(self.progress.maximum())
        voxel = result.sessions[0].voxel_size_um
        scale = (1.0, *voxel)
        self.viewer.add_image(
            images,
            name=self._take_name(IMAGES, "the registered sessions go", Image),
            scale=scale,
            blending="additive",
            metadata={OURS: {"role": IMAGES}},
        )
        layer = add_or_update_labels(
            self.viewer,
            LABELS,
            labels,
            scale=scale,
            translate=(0.0,) * labels.ndim,
            metadata={"role": LABELS},
        )
        self.labels_layer = layer
        self.viewer.dims.axis_labels = ("session", "z", "y", "x")
        self._show(result)
        self.export_button.setEnabled(True)
        self.merge_button.setEnabled(True)
        self.split_button.setEnabled(True)
        t = result.spines
        n = len(set(t["id"].tolist()))
        gained, lost = int((t["call"] == "gained").sum()), int((t["call"] == "lost").sum())
        notes = "; ".join(result.notes)
        self.status_label.setText(
            f"{n} spines over {len(result.sessions)} sessions: {gained} gained, {lost} lost"
            + (f". {notes}" if notes else "")
        )

    def _show(self, result) -> None:
        """The "gained and lost" points and the table, from ``result``'s spine table."""
        self.result = result
        t = result.spines
        ev = np.isin(t["call"], list(EVENT_COLOURS))
        pts = (
            np.column_stack(
                [
                    t["session"][ev] - 1,
                    t["first_z_um"][ev],
                    t["first_y_um"][ev],
                    t["first_x_um"][ev],
                ]
            )
            .astype(float)
            .reshape(-1, 4)
        )
        colours = [EVENT_COLOURS[c] for c in t["call"][ev]]
        self.viewer.add_points(
            pts,
            name=self._take_name(EVENTS, "the gained and lost spines go", Points),
            metadata={OURS: {"role": EVENTS}},
            scale=(1.0, 1.0, 1.0, 1.0),
            size=1.0,
            face_color=colours if colours else "white",
            border_color="white",
            features={"id": t["id"][ev], "call": t["call"][ev], "fate": t["fate"][ev]},
        )
        self._fill(t)

    def _take_name(self, name: str, what: str, kind: type) -> str:
        """The name for this dock's new ``kind`` layer (Image, Points) ``name``: its earlier
        one is removed; a layer of the user's of that name is kept, and a warning says where
        ``what`` instead."""

        def earlier_result(layer: Any) -> bool:
            return isinstance(layer, kind) and is_ours(layer) and layer.ndim == 4

        earlier, free = reusable_layer(self.viewer, name, earlier_result, what)
        if earlier is not None:
            self.viewer.layers.remove(earlier)
        return free

    def _relabel_layer(self, old: int, new: int, sessions=None) -> None:
        layer = self._labels()
        if layer is None:
            return
        data = np.asarray(layer.data).copy()
        for k in range(data.shape[0]) if sessions is None else [s - 1 for s in sessions]:
            data[k][data[k] == old] = new
        relabel_in_place(layer, data)

    def merge(self, a: int, b: int) -> int:
        """Give spines ``a`` and ``b`` one id (the smaller) in every session; returns it."""
        from ..tracking import merge_ids

        keep, other = sorted((int(a), int(b)))
        result = merge_ids(self.result, keep, other)
        self._relabel_layer(other, keep)
        self._show(result)
        self.status_label.setText(f"Spine {other} is now spine {keep} in every session.")
        return keep

    def split(self, sid: int, sessions) -> int:
        """Give spine ``sid`` a new id in ``sessions`` (numbered from 1); returns the new id."""
        from ..tracking import split_id

        sessions = sorted({int(s) for s in sessions})
        result, new = split_id(self.result, sid, sessions)
        self._relabel_layer(int(sid), new, sessions)
        self._show(result)
        where = ", ".join(str(s) for s in sessions)
        self.status_label.setText(f"Spine {sid} in session(s) {where} is now spine {new}.")
        return new

    def _chosen_rows(self) -> list[tuple[int, int]]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [
            (int(self.table.item(r, 0).text()), int(self.table.item(r, 1).text())) for r in rows
        ]

    def _merge_clicked(self) -> None:
        ids = sorted({sid for sid, _ in self._chosen_rows()})
        try:
            if len(ids) != 2:
                raise InputError(f"choose rows of exactly two ids to merge ({len(ids)} chosen)")
            self.merge(*ids)
        except DendritePanopticError as exc:
            show_error(str(exc))
            self.status_label.setText(str(exc))

    def _split_clicked(self) -> None:
        chosen = self._chosen_rows()
        ids = {sid for sid, _ in chosen}
        try:
            if len(ids) != 1:
                raise InputError("choose the rows of one id, in the sessions to split off")
            self.split(ids.pop(), [s for _, s in chosen])
        except DendritePanopticError as exc:
            show_error(str(exc))
            self.status_label.setText(str(exc))

    def _fill(self, t: dict[str, np.ndarray]) -> None:
        n = len(t["id"])
        self.table.setSortingEnabled(False)
        self.table.setRowCount(n)
        for i in range(n):
            for j, c in enumerate(TABLE_COLUMNS):
                v = t[c][i]
                text = f"{v:.2f}" if isinstance(v, (float, np.floating)) else str(v)
                self.table.setItem(i, j, QTableWidgetItem(text))

    def _on_row_clicked(self, row: int, _col: int) -> None:
        """Go to the spine of this row: its session, its plane, centred."""
        if self.result is None:
            return
        t = self.result.spines
        sid = int(self.table.item(row, 0).text())
        session = int(self.table.item(row, 1).text())
        pick = np.flatnonzero((t["id"] == sid) & (t["session"] == session))
        if not len(pick):
            return
        i = pick[0]
        z, y, x = (float(t[f"first_{a}_um"][i]) for a in "zyx")
        vz = self.result.sessions[0].voxel_size_um[0]
        step = list(self.viewer.dims.current_step)
        step[0] = session - 1
        if len(step) > 1:
            step[1] = int(round(z / vz))
        self.viewer.dims.current_step = tuple(step)
        camera(self.viewer).center = (z, y, x)
        layer = self._labels()
        if layer is not None:
            layer.selected_label = sid

    def _labels(self) -> Any:
        """The tracked labels layer, None before tracking or once the user removed it."""
        layer = self.labels_layer
        return layer if layer is not None and layer in self.viewer.layers else None

    def export_csv(self, folder: str | Path) -> list[Path]:
        """Write ``spines_over_time.csv`` and ``turnover.csv`` into ``folder``; tables already
        there are refused (nothing is written), not replaced."""
        from ..io import write_table_csv

        paths = [Path(folder) / name for name in TABLES]
        taken = [p for p in paths if p.exists()]
        if taken:
            raise OutputExistsError(f"{taken[0]} exists already: choose another folder")
        tables = (self.result.spines, self.result.turnover)
        return [write_table_csv(p, t) for p, t in zip(paths, tables, strict=True)]

    def _export_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the CSV tables")
        if not folder:
            return
        try:
            written = self.export_csv(folder)
        except (OSError, DendritePanopticError) as exc:
            show_error(f"Export failed: {exc}")
            self.status_label.setText(f"Export failed: {exc}")
            return
        self.status_label.setText(f"Wrote {', '.join(p.name for p in written)} to {folder}")
