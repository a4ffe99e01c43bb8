"""The CPU RoIAlign gives torchvision's numbers and gradients, faster."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from napari_dendrite_panoptic.models.roi_align import CpuRoIAlign, roi_align_gather


def _boxes(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 4) boxes inside a ``size``² image, from sub-pixel ones to a quarter of the image,
    some touching its right and bottom edges."""
    corner = torch.rand(n, 2, generator=generator) * size
    extent = torch.rand(n, 2, generator=generator) ** 3 * size / 4 + 0.2
    far = torch.minimum(corner + extent, torch.full_like(corner, float(size)))
    far[: n // 8] = float(size)
    return torch.cat([corner.minimum(far - 0.1), far], 1)


@pytest.mark.parametrize(("out", "scale"), [(7, 0.25), (14, 0.125), (14, 1 / 32)])
def test_gather_matches_torchvision_roi_align_and_its_gradient(out, scale):
    g = torch.Generator().manual_seed(out)
    side = int(256 * scale)
    features = torch.randn(3, 16, side, side, generator=g, requires_grad=True)
    boxes = _boxes(60, 256, g)
    rois = torch.cat([torch.randint(0, 3, (60, 1), generator=g).float(), boxes], 1)
    want = roi_align(features, rois, (out, out), scale, 2)
    got = roi_align_gather(features, rois, (out, out), scale, 2)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    upstream = torch.randn(want.shape, generator=g)
    (want_grad,) = torch.autograd.grad(want, features, upstream)
    (got_grad,) = torch.autograd.grad(got, features, upstream)
    torch.testing.assert_close(got_grad, want_grad, atol=1e-4, rtol=1e-4)


def test_cpu_pool_equals_torchvisions_multiscale_pool_in_training_and_inference():
    g = torch.Generator().manual_seed(0)
    names = ["0", "1", "2", "3"]
    feats = OrderedDict(
        (n, torch.randn(2, 8, 64 >> i, 64 >> i, generator=g)) for i, n in enumerate(names)
    )
    boxes = [_boxes(40, 256, g), _boxes(25, 256, g) * 0.5]
    shapes = [(256, 256)] * 2
    ours = CpuRoIAlign(names, output_size=14, sampling_ratio=2)
    theirs = MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2)
    want = theirs(feats, boxes, shapes)
    torch.testing.assert_close(ours.train()(feats, boxes, shapes), want, atol=1e-4, rtol=1e-4)
    last = OrderedDict(
        (n, f.contiguous(memory_format=torch.channels_last)) for n, f in feats.items()
    )
    with torch.inference_mode():
        torch.testing.assert_close(ours.eval()(last, boxes, shapes), want, atol=1e-4, rtol=1e-4)
