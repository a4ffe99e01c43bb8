"""Network builders: a light Mask R-CNN for spines and a light FCN for dendrites.

Both use a ResNet-18 trunk cut after ``layer3`` (strides 4, 8, 16): spines are 5-40 px at the
native pixel size, so stride-32 features (ResNet-18's ``layer4``, three quarters of its weights)
add cost and no information. Nothing is pretrained (no downloads). The stem takes
``input_planes`` channels: 1 (the plane alone) or an odd number of neighbouring planes of a stack
centred on the plane segmented (2.5D input; a 2D image repeats its one plane).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import resnet18, resnet34
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.models.segmentation.fcn import FCN, FCNHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import ModelError
from .card import input_planes
from .roi_align import CpuRoIAlign

SPINE_DEFAULTS: dict[str, Any] = {
    "trunk": "resnet18",
    "fpn_channels": 128,
    "anchor_sizes": [6, 12, 24, 48],
    "aspect_ratios": [0.5, 1.0, 2.0],
    "box_head_size": 256,
    "mask_head_channels": 128,
    "detections_per_tile": 200,
}
DENDRITE_DEFAULTS: dict[str, Any] = {"trunk": "resnet18", "fpn_channels": 64}


def _trunk(name: str, planes: int = 1) -> nn.Module:
    """ResNet trunk with a ``planes``-channel stem, random weights."""
    builders = {"resnet18": resnet18, "resnet34": resnet34}
    if name not in builders:
        raise ModelError(f"unknown trunk {name!r}; choose one of {sorted(builders)}")
    net = builders[name](weights=None)
    net.conv1 = nn.Conv2d(planes, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def _stem(model: nn.Module) -> nn.Conv2d:
    """The first convolution of a spine or dendrite network (the one that sees the planes)."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def widen_input_planes(model: nn.Module, planes: int) -> None:
    """Give a 1-plane network's stem ``planes`` input channels, in place, keeping what it
    computes: the trained filters go to the middle channel and the neighbours' start at zero,
    so on any stack the widened network's output equals the 1-plane network's until training
    teaches it to use the neighbouring planes. Mask R-CNN's input normalisation is widened too."""
    stem = _stem(model)
    if stem.in_channels != 1:
        raise ModelError(
            f"only a 1-plane network can be widened (this one takes {stem.in_channels})"
        )
    input_planes({"input_planes": planes})  # checks the number
    weight = torch.zeros(stem.out_channels, planes, *stem.kernel_size, dtype=stem.weight.dtype)
    weight[:, planes // 2] = stem.weight.detach()[:, 0]
    stem.in_channels = planes
    stem.weight = nn.Parameter(weight.to(stem.weight.device))
    transform = getattr(model, "transform", None)
    if transform is not None:
        transform.image_mean = [float(transform.image_mean[0])] * planes
        transform.image_std = [float(transform.image_std[0])] * planes


REGIONS_PER_SPINE = 4
"""Training regions the box and mask heads see per annotated spine of a crop (a quarter of them
on spines), between :data:`MIN_REGIONS` and :data:`MAX_REGIONS`; torchvision samples 512 (here
256) whatever the crop holds. Measured in ``benchmarks/bench_training_steps.py``."""
MIN_REGIONS, MAX_REGIONS = 32, 256
RPN_TRAIN_TOP_N = (1000, 500)
"""Proposals kept before and after NMS per crop while training (torchvision: 2000, 2000); a
256² crop holds at most about 60 spines."""


class _SpineCountSampler(BalancedPositiveNegativeSampler):
    """torchvision's balanced sampler with one region budget per crop (``sizes``, set by
    :class:`_SpineRoIHeads` from the crop's spine count before each training batch)."""

    def __init__(self, positive_fraction: float) -> None:
        super().__init__(MAX_REGIONS, positive_fraction)
        self.sizes: list[int] = []

    def __call__(self, matched_idxs: list[torch.Tensor]) -> tuple[list, list]:
        sizes = self.sizes or [MAX_REGIONS] * len(matched_idxs)
        positives, negatives = [], []
        for labels, size in zip(matched_idxs, sizes, strict=True):
            self.batch_size_per_image = size
            pos, neg = super().__call__([labels])
            positives += pos
            negatives += neg
        return positives, negatives


def regions_for(spines: int) -> int:
    """Training regions of the box and mask heads for a crop with ``spines`` annotated spines."""
    return int(min(MAX_REGIONS, max(MIN_REGIONS, REGIONS_PER_SPINE * spines)))


class _SpineRoIHeads(RoIHeads):
    """torchvision's RoIHeads whose training regions follow each crop's spine count."""

    def select_training_samples(self, proposals, targets):  # noqa: D102 - torchvision's
        self.fg_bg_sampler.sizes = [regions_for(len(t["boxes"])) for t in targets]
        return super().select_training_samples(proposals, targets)


def _spine_count_heads(heads: RoIHeads) -> _SpineRoIHeads:
    """``heads`` (same modules, same weights, same inference) sampling by spine count."""
    new = _SpineRoIHeads.__new__(_SpineRoIHeads)
    new.__dict__.update(heads.__dict__)
    new.fg_bg_sampler = _SpineCountSampler(heads.fg_bg_sampler.positive_fraction)
    return new


class _NoResizeTransform(GeneralizedRCNNTransform):
    """Mask R-CNN's input transform without its resize: tiles are already at the native pixel
    size, so upscaling every tile to 800 px would only cost time."""

    def resize(self, image, target=None):  # noqa: D102 - torchvision's signature
        return image, target


def build_spine_model(config: dict[str, Any] | None = None) -> MaskRCNN:
    """Mask R-CNN for spine instances on (P, H, W) float images in [0, 1]-ish range, P the
    config's ``input_planes``.

    Classes: 0 background, 1 spine. Anchors are ``anchor_sizes`` px at the native pixel size.
    Training samples :func:`regions_for` regions per crop, keeps :data:`RPN_TRAIN_TOP_N`
    proposals; on the CPU regions are pooled with :class:`~.roi_align.CpuRoIAlign` (in training
    and at inference). None of these changes the weights' shapes.
    """
    cfg = {**SPINE_DEFAULTS, **(config or {})}
    c = int(cfg["fpn_channels"])
    planes = input_planes(cfg)
    backbone = BackboneWithFPN(
        _trunk(cfg["trunk"], planes),
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2"},
        in_channels_list=[64, 128, 256],
        out_channels=c,
        extra_blocks=LastLevelMaxPool(),
    )
    sizes = tuple((int(s),) for s in cfg["anchor_sizes"])
    anchors = AnchorGenerator(
        sizes=sizes, aspect_ratios=(tuple(cfg["aspect_ratios"]),) * len(sizes)
    )
    names = ["0", "1", "2", "3"]
    rep = int(cfg["box_head_size"])
    mc = int(cfg["mask_head_channels"])
    model = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=CpuRoIAlign(names, output_size=7, sampling_ratio=2),
        mask_roi_pool=CpuRoIAlign(names, output_size=14, sampling_ratio=2),
        box_head=TwoMLPHead(c * 7 * 7, rep),
        box_predictor=FastRCNNPredictor(rep, 2),
        mask_head=MaskRCNNHeads(c, (mc, mc, mc, mc), 1),
        mask_predictor=MaskRCNNPredictor(mc, mc, 2),
        image_mean=[0.0] * planes,
        image_std=[1.0] * planes,
        min_size=256,
        max_size=4096,
        box_detections_per_img=int(cfg["detections_per_tile"]),
        box_score_thresh=0.05,
        rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_test=400,
        rpn_pre_nms_top_n_train=RPN_TRAIN_TOP_N[0],
        rpn_post_nms_top_n_train=RPN_TRAIN_TOP_N[1],
        rpn_batch_size_per_image=256,
        box_batch_size_per_image=MAX_REGIONS,
    )
    model.roi_heads = _spine_count_heads(model.roi_heads)
    model.transform = _NoResizeTransform(256, 4096, [0.0] * planes, [1.0] * planes)
    return model


class _FPNStride4(nn.Module):
    """ResNet trunk + FPN merged into one stride-4 feature map, returned as ``{"out": ...}``
    (the backbone contract of torchvision's :class:`FCN`)."""

    def __init__(self, trunk: str, channels: int, planes: int = 1) -> None:
        super().__init__()
        body = _trunk(trunk, planes)
        self.stem = nn.Sequential(body.conv1, body.bn1, body.relu, body.maxpool)
        self.layer1, self.layer2, self.layer3 = body.layer1, body.layer2, body.layer3
        self.fpn = FeaturePyramidNetwork([64, 128, 256], channels)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        p = self.fpn(OrderedDict([("0", c1), ("1", c2), ("2", c3)]))
        size = p["0"].shape[-2:]
        merged = p["0"] + F.interpolate(p["1"], size=size, mode="bilinear", align_corners=False)
        merged = merged + F.interpolate(p["2"], size=size, mode="bilinear", align_corners=False)
        return OrderedDict(out=merged)


def build_dendrite_model(config: dict[str, Any] | None = None) -> FCN:
    """torchvision FCN for the dendrite class on (P, H, W) images (P the config's
    ``input_planes``); logits (2, H, W)."""
    cfg = {**DENDRITE_DEFAULTS, **(config or {})}
    c = int(cfg["fpn_channels"])
    backbone = _FPNStride4(cfg["trunk"], c, input_planes(cfg))
    return FCN(backbone, FCNHead(c, 2), aux_classifier=None)


def trunk_modules(model: nn.Module, lower: bool = False) -> list[nn.Module]:
    """The ResNet trunk of a spine or dendrite network (everything before the FPN): what a
    "heads only" fine-tune leaves as it is. ``lower``: only its stem and first stage (the
    stride-2 and stride-4 filters that see the planes), what torchvision's detection models keep
    fixed by default and an "upper" run leaves as it is."""
    backbone = model.backbone
    if hasattr(backbone, "body"):  # Mask R-CNN: BackboneWithFPN
        body = backbone.body
        return [body.conv1, body.bn1, body.layer1] if lower else [body]
    if lower:
        return [backbone.stem, backbone.layer1]
    return [backbone.stem, backbone.layer1, backbone.layer2, backbone.layer3]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
