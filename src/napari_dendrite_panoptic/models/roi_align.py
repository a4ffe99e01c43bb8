"""RoIAlign on the CPU as one weighted gather per pyramid level.

torchvision's CPU RoIAlign computes its backward pass in a single-threaded scalar loop; in a
spine training step on a 2-core CPU it took about a third of the time (profiled with
``torch.profiler``; ``benchmarks/bench_training_steps.py`` times the step). Its forward pass is
slow too: 0.35-0.4 s of a 1024² plane's 2.4 s at inference on a 2-core AVX2 CPU (profiled with
cProfile; 1,600 proposals pooled 4-10 times faster by the gather, measured per call). Each
output bin is a fixed weighted sum of at most ``4 * sampling_ratio²`` feature pixels, so the
same numbers (to float rounding) come from :func:`torch.nn.functional.embedding_bag` with
per-sample weights, whose forward and backward passes are vectorised and use every core; with
channels-last feature maps (inference on the CPU, :func:`~.store.for_inference`) its table is
the feature map itself, without a copy. Written here because neither torchvision nor torch
offers a faster RoIAlign on the CPU; GPUs keep torchvision's kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import _convert_to_roi_format, _setup_scales


def _corners(coord: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bilinear neighbours of sample coordinates along one axis of a ``size``-pixel map, as
    torchvision's RoIAlign takes them: (low, high) pixel indices (int64) and their weights
    (float32), zero for samples more than a pixel outside the map, clamped to the border else."""
    inside = ((coord >= -1.0) & (coord <= size)).to(coord.dtype)
    c = coord.clamp(min=0.0)
    low = c.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    frac = torch.where(low >= size - 1, torch.zeros_like(c), c - low.to(c.dtype))
    return low, high, (1.0 - frac) * inside, frac * inside


def roi_align_gather(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> Tensor:
    """torchvision's ``roi_align`` (``aligned=False``, fixed ``sampling_ratio`` > 0) as one
    weighted gather: ``features`` (B, C, H, W), ``rois`` (K, 5) float rows (image index, x1, y1,
    x2, y2) in image pixels; returns (K, C, oh, ow) float32, differentiable in ``features``."""
    oh, ow = output_size
    sr = int(sampling_ratio)
    batch, channels, height, width = features.shape
    k = rois.shape[0]
    table = features.float().permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    box = rois[:, 1:].float() * spatial_scale
    size_x = (box[:, 2] - box[:, 0]).clamp(min=1.0)
    size_y = (box[:, 3] - box[:, 1]).clamp(min=1.0)
    steps_y = (torch.arange(oh * sr, device=box.device, dtype=box.dtype) + 0.5) / (oh * sr)
    steps_x = (torch.arange(ow * sr, device=box.device, dtype=box.dtype) + 0.5) / (ow * sr)
    y_low, y_high, wy_low, wy_high = _corners(box[:, 1, None] + steps_y * size_y[:, None], height)
    x_low, x_high, wx_low, wx_high = _corners(box[:, 0, None] + steps_x * size_x[:, None], width)
    # (K, oh, ow, sample y, sample x, corner y, corner x)
    rows = torch.stack([y_low, y_high], -1).view(k, oh, 1, sr, 1, 2, 1)
    cols = torch.stack([x_low, x_high], -1).view(k, 1, ow, 1, sr, 1, 2)
    w_rows = torch.stack([wy_low, wy_high], -1).view(k, oh, 1, sr, 1, 2, 1)
    w_cols = torch.stack([wx_low, wx_high], -1).view(k, 1, ow, 1, sr, 1, 2)
    first = (rois[:, 0].long() * height * width).view(k, 1, 1, 1, 1, 1, 1)
    index = (first + rows * width + cols).reshape(k * oh * ow, -1)
    weight = (w_rows * w_cols / (sr * sr)).reshape(k * oh * ow, -1)
    with torch.autocast(features.device.type, enabled=False):
        out = F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")
    return out.view(k, oh, ow, channels).permute(0, 3, 1, 2).contiguous()


class CpuRoIAlign(MultiScaleRoIAlign):
    """torchvision's :class:`~torchvision.ops.MultiScaleRoIAlign` that, on the CPU, pools with
    :func:`roi_align_gather` (the same numbers to float rounding; faster forward and backward
    passes), in training and at inference. GPUs use torchvision's kernel."""

    def forward(
        self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        feats = [v for k, v in x.items() if k in self.featmap_names]
        if self.sampling_ratio <= 0 or feats[0].device.type != "cpu":
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                feats, image_shapes, self.canonical_scale, self.canonical_level
            )
        rois = _convert_to_roi_format(boxes)
        levels = self.map_levels(boxes)
        out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1], *self.output_size))
        for level, (feat, scale) in enumerate(zip(feats, self.scales, strict=True)):
            chosen = torch.where(levels == level)[0]
            if chosen.numel():
                pooled = roi_align_gather(
                    feat, rois[chosen], self.output_size, scale, self.sampling_ratio
                )
                out[chosen] = pooled.to(out.dtype)
        return out
