"""The live loss curve of the "Train on corrections" dock: training losses per step and the
held-out validation scores, drawn with matplotlib in a Qt widget."""

from __future__ import annotations

import time

from qtpy.QtWidgets import QVBoxLayout, QWidget


class LossPlot(QWidget):
    """A small matplotlib plot of the training losses (and validation scores) per step."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot(111)
        self.val_axes = self.axes.twinx()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.clear()

    def clear(self) -> None:
        """Forget the curves of a previous run."""
        self.steps: list[int] = []
        self.losses: dict[str, list[float]] = {}
        self.validation: dict[str, list[tuple[int, float]]] = {}
        self._drawn_at = 0.0
        self.redraw()

    def add_losses(self, step: int, losses: dict[str, float]) -> None:
        """Append the spine and/or dendrite loss of one step (redrawn at most once a second)."""
        self.steps.append(step)
        for key in ("spines", "dendrites"):
            if key in losses:
                self.losses.setdefault(key, []).append(losses[key])
        if time.monotonic() - self._drawn_at > 1.0:  # at most one redraw per second
            self.redraw()

    def add_validation(self, step: int, metrics: dict[str, float]) -> None:
        """Append the held-out scores the run is judged by (spine F1 at the model's best
        threshold there, where given, and/or dendrite IoU) at a step, and redraw."""
        from ..training import held_out_keys

        for key in held_out_keys(metrics):
            self.validation.setdefault(key, []).append((step, metrics[key]))
        self.redraw()

    def redraw(self) -> None:
        """Draw the curves now (losses on the left axis, held-out scores in [0, 1] on the right)."""
        from ..training import SCORE_NAMES

        self._drawn_at = time.monotonic()
        ax, vax = self.axes, self.val_axes
        ax.clear()
        vax.clear()
        for key, values in self.losses.items():
            ax.plot(self.steps[-len(values) :], values, lw=1, label=f"{key} loss")
        for key, points in self.validation.items():
            xs, ys = zip(*points, strict=True)
            vax.plot(xs, ys, "o--", ms=3, label=f"held-out {SCORE_NAMES.get(key, key)}")
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("loss", fontsize=7)
        vax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
        vax.tick_params(labelsize=6)
        handles = ax.get_legend_handles_labels()
        vhandles = vax.get_legend_handles_labels()
        if handles[0] or vhandles[0]:
            ax.legend(handles[0] + vhandles[0], handles[1] + vhandles[1], fontsize=6, loc="best")
        self.canvas.draw_idle()
