"""Network builders: a light Mask R-CNN for spines and a light FCN for dendrites.

Both use a ResNet-18 trunk cut after ``layer3`` (strides 4, 8, 16) with a single-channel stem:
spines are 5-40 px at the native pixel size, so stride-32 features (ResNet-18's ``layer4``, three
quarters of its weights) add cost and no information. Nothing is pretrained (no downloads).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import resnet18, resnet34
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.models.segmentation.fcn import FCN, FCNHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import ModelError

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


def _trunk(name: str) -> nn.Module:
    """ResNet trunk with a 1-channel stem, random weights."""
    builders = {"resnet18": resnet18, "resnet34": resnet34}
    if name not in builders:
        raise ModelError(f"unknown trunk {name!r}; choose one of {sorted(builders)}")
    net = builders[name](weights=None)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


class _NoResizeTransform(GeneralizedRCNNTransform):
    """Mask R-CNN's input transform without its resize: tiles are already at the native pixel
    size, so upscaling every tile to 800 px would only cost time."""

    def resize(self, image, target=None):  # noqa: D102 - torchvision's signature
        return image, target


def build_spine_model(config: dict[str, Any] | None = None) -> MaskRCNN:
    """Mask R-CNN for spine instances on (1, H, W) float images in [0, 1]-ish range.

    Classes: 0 background, 1 spine. Anchors are ``anchor_sizes`` px at the native pixel size.
    """
    cfg = {**SPINE_DEFAULTS, **(config or {})}
    c = int(cfg["fpn_channels"])
    backbone = BackboneWithFPN(
        _trunk(cfg["trunk"]),
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
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        mask_roi_pool=MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2),
        box_head=TwoMLPHead(c * 7 * 7, rep),
        box_predictor=FastRCNNPredictor(rep, 2),
        mask_head=MaskRCNNHeads(c, (mc, mc, mc, mc), 1),
        mask_predictor=MaskRCNNPredictor(mc, mc, 2),
        image_mean=[0.0],
        image_std=[1.0],
        min_size=256,
        max_size=4096,
        box_detections_per_img=int(cfg["detections_per_tile"]),
        box_score_thresh=0.05,
        rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_test=400,
        rpn_batch_size_per_image=256,
        box_batch_size_per_image=256,
    )
    model.transform = _NoResizeTransform(256, 4096, [0.0], [1.0])
    return model


class _FPNStride4(nn.Module):
    """ResNet trunk + FPN merged into one stride-4 feature map, returned as ``{"out": ...}``
    (the backbone contract of torchvision's :class:`FCN`)."""

    def __init__(self, trunk: str, channels: int) -> None:
        super().__init__()
        body = _trunk(trunk)
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
    """torchvision FCN for the dendrite class on (1, H, W) images; logits (2, H, W)."""
    cfg = {**DENDRITE_DEFAULTS, **(config or {})}
    c = int(cfg["fpn_channels"])
    return FCN(_FPNStride4(cfg["trunk"], c), FCNHead(c, 2), aux_classifier=None)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
