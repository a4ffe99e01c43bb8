"""Training batches: drawn, augmented and stacked into tensors, in the loop or by workers.

Batch ``k`` of a run is drawn from a random generator seeded with ``(seed, k)``, so it is the
same whether :func:`step_batches` draws it in the training loop or in a forked data-loader
worker, and a resumed run continues with the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage as ndi

from ..data import SampleSource, TrainingSample, augment, network_input

if TYPE_CHECKING:
    from .config import TrainConfig

Batch = tuple[torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor]]]
"""Images (B, P, H, W) float32, dendrite targets (B, H, W) int64, Mask R-CNN targets."""


def draw_batch(source: SampleSource, rng: np.random.Generator, n: int, planes: int = 1) -> Batch:
    """``n`` augmented samples drawn from ``source`` with ``rng``: images (n, planes, H, W)
    float32, dendrite targets (n, H, W) int64 and one Mask R-CNN target dict per sample
    (see :func:`instance_targets`)."""
    samples: list[TrainingSample] = [augment(source(rng), rng) for _ in range(n)]
    images = torch.from_numpy(np.stack([network_input(s, planes) for s in samples]))
    dendrite = torch.from_numpy(np.stack([s.dendrite for s in samples]).astype(np.int64))
    targets = [instance_targets(s.spines) for s in samples]
    return images, dendrite, targets


class _StepBatches(torch.utils.data.Dataset):
    """Batch ``k`` of a run, drawn from a generator seeded with ``(seed, k)`` (the same batch
    whether it is drawn in the loop or by a data-loader worker)."""

    def __init__(
        self, source: SampleSource, seed: int, batch_size: int, steps: int, planes: int = 1
    ):
        self.source, self.seed, self.batch_size, self.steps = source, seed, batch_size, steps
        self.planes = planes

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        return draw_batch(self.source, rng, self.batch_size, self.planes)


MAX_AUTO_WORKERS = 16
"""The most data-loader workers :func:`loader_plan` chooses by itself."""
CPU_WORKERS = 2
"""Data-loader workers :func:`loader_plan` chooses for a run on the CPU."""


def loader_plan(
    workers: int | None, threads: int | None, on_gpu: bool, cpus: int, which: str = "both"
) -> tuple[int, int | None]:
    """(data-loader workers, torch threads) for a run, choosing what is None.

    On the CPU two workers draw batches ahead. When the dendrite network trains alone
    (``which`` "dendrites"), drawing the batches takes most of a step, so torch gets the cores
    the workers leave (at least one); with the spine network, the networks take most of it, so
    torch keeps its default (all cores). On a GPU all cores but two draw batches (at most
    :data:`MAX_AUTO_WORKERS`); with one core, batches are drawn in the loop. Measured on a
    2-core machine (``benchmarks/bench_training_steps.py``, batches of 4 of the mix with the
    real sets, 2026-12-06): both networks 5.9 crops/s with two workers and two threads, 5.3 with
    one worker, 5.7-5.9 drawn in the loop; the dendrite network alone 15.1 with two workers and
    one thread, 13.4 with one worker and one thread, 11.2 with two workers and two threads.
    """
    if workers is None and cpus < 2:
        workers = 0
    elif workers is None:
        workers = min(max(1, cpus - 2), MAX_AUTO_WORKERS) if on_gpu else CPU_WORKERS
    if threads is None and not on_gpu and workers and which == "dendrites":
        threads = max(1, cpus - workers)
    return workers, threads


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def step_batches(
    source: SampleSource, cfg: TrainConfig, start: int, planes: int = 1
) -> Iterator[Batch]:
    """Batches ``start, start + 1, ... cfg.steps - 1`` of ``cfg.batch_size`` samples, in order,
    each as :func:`draw_batch` gives it (images (B, planes, H, W) float32, dendrite targets
    (B, H, W) int64, Mask R-CNN targets) on the CPU; drawn by ``cfg.workers`` forked processes
    when > 0 (fork before CUDA is touched)."""
    batches = _StepBatches(source, cfg.seed, cfg.batch_size, cfg.steps, planes)
    if cfg.workers == 0:
        return (batches[k] for k in range(start, cfg.steps))
    import multiprocessing

    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(start, cfg.steps),
        num_workers=cfg.workers,
        prefetch_factor=4,
        worker_init_fn=_single_thread_worker,
        multiprocessing_context=multiprocessing.get_context("fork"),
    )
    return iter(loader)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """A batch as :func:`draw_batch` gives it, every tensor moved (non-blocking) to ``device``;
    shapes and dtypes unchanged."""
    images, dendrite, targets = batch
    moved = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
    return images.to(device, non_blocking=True), dendrite.to(device, non_blocking=True), moved


def instance_targets(spines: np.ndarray) -> dict[str, torch.Tensor]:
    """Mask R-CNN targets from an (H, W) instance label image: boxes (N, 4) xyxy float32,
    labels (N,) int64 (all 1 = spine), masks (N, H, W) uint8. Instances under 2 px are dropped."""
    boxes, masks = [], []
    for i, sl in enumerate(ndi.find_objects(spines), start=1):
        if sl is None:  # no pixel carries this id
            continue
        m = spines == i
        if m.sum() < 2:
            continue
        y0, y1 = sl[0].start, sl[0].stop
        x0, x1 = sl[1].start, sl[1].stop
        boxes.append([x0, y0, x1, y1])
        masks.append(m)
    h, w = spines.shape
    if not boxes:
        return {
            "boxes": torch.zeros((0, 4), dtype=torch.float32),
            "labels": torch.zeros((0,), dtype=torch.int64),
            "masks": torch.zeros((0, h, w), dtype=torch.uint8),
        }
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.ones(len(boxes), dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks).astype(np.uint8)),
    }
