"""Both networks over one plane, tile by tile: the inner loop of inference.

:func:`plane_pass` cuts a native-resolution plane into overlapping tiles, runs the FCN (dendrite
probability, blended across tiles) and Mask R-CNN (spine instances, kept by the tile whose core
holds their centre) on them with :func:`run_networks`, and pastes the spines into a label plane;
with test-time flips it does so in each mirror view and lets the views vote
(:mod:`.flips`). :func:`configure_detector` scales the detector's limits with the tile
area. Driven by :func:`napari_dendrite_panoptic.inference.iter_predict`, which reads and
resamples the planes and recovers from out-of-memory errors.

Tests replace :func:`run_networks` here (``monkeypatch.setattr(tile_passes, "run_networks",
...)``) to simulate out-of-memory errors or stand-in networks: it is looked up in this module
at call time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import Cancelled
from ..models import LoadedModels
from .flips import (
    FLIP_VIEWS,
    VIEW_SCORE_FLOOR,
    claim_pixels,
    flip_view,
    flipped_axes,
    fuse_views,
    paste_fused,
)
from .tiling import blend_window, core_bounds, mirror_pad, plane_tiles

if TYPE_CHECKING:
    from .config import InferenceConfig

REFERENCE_TILE_AREA = 512 * 512
"""Tile area for which the spine model's proposal and detection limits in builders.py are set."""


def configure_detector(model: torch.nn.Module, tile_area: int, score_threshold: float) -> None:
    """Scale the RPN proposal and detection limits of a Mask R-CNN ``model`` with ``tile_area``
    (px², at the model's pixel size; a 1024² tile keeps four times those of a 512² tile), and
    drop boxes under ``score_threshold`` (0-1) before the mask head, which then runs only on
    spines that will be kept (results are unchanged: NMS never lets a lower-scoring box remove
    a higher one). Changes ``model`` in place; its limits at :data:`REFERENCE_TILE_AREA` are
    remembered on first call."""
    factor = max(tile_area / REFERENCE_TILE_AREA, 1.0)
    rpn, heads = model.rpn, model.roi_heads
    base = getattr(model, "_reference_limits", None)
    if base is None:
        base = (
            rpn._pre_nms_top_n["testing"],
            rpn._post_nms_top_n["testing"],
            heads.detections_per_img,
        )
        model._reference_limits = base
    rpn._pre_nms_top_n["testing"] = int(base[0] * factor)
    rpn._post_nms_top_n["testing"] = int(base[1] * factor)
    heads.detections_per_img = int(base[2] * factor)
    heads.score_thresh = max(float(score_threshold), 0.05)


EMPTY_TILE_PROB = 0.2
"""A tile whose dendrite probability stays under this everywhere gets no spine detection."""
NO_DETECTIONS = {
    "boxes": torch.zeros((0, 4)),
    "scores": torch.zeros(0),
    "masks": torch.zeros((0, 1, 28, 28)),
}
"""The detections of a tile without spines, in torchvision's Mask R-CNN output format."""


def run_networks(
    models: LoadedModels, tiles: torch.Tensor
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Both networks on a batch of tiles (the one call that allocates most memory; tests replace
    it to simulate out-of-memory errors).

    ``tiles``: (B, P, T, T) float32, normalised intensities on the models' device (P input
    planes). Returns the dendrite probability (B, T, T) float32 in 0-1 and, per tile, the spine
    detections as torchvision gives them: ``boxes`` (N, 4) xyxy px within the tile, ``scores``
    (N,) 0-1, ``masks`` (N, 1, 28, 28) probabilities at the mask head's resolution.

    Spines grow on dendrites: a tile whose dendrite probability stays under
    :data:`EMPTY_TILE_PROB` everywhere skips the spine network (:data:`NO_DETECTIONS`).
    """
    with torch.inference_mode():
        prob = models.dendrites(tiles)["out"].softmax(1)[:, 1]
    busy = [k for k in range(tiles.shape[0]) if float(prob[k].max()) >= EMPTY_TILE_PROB]
    found = _detect_spines(models.spines, tiles[busy]) if busy else []
    dets = [NO_DETECTIONS] * tiles.shape[0]
    for k, det in zip(busy, found, strict=True):
        dets[k] = det
    return prob, dets


@torch.inference_mode()
def _detect_spines(model: torch.nn.Module, tiles: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Run Mask R-CNN on (B, P, T, T) tiles; masks stay at the head's 28x28 resolution."""
    images, _ = model.transform(list(tiles))
    features = model.backbone(images.tensors)
    proposals, _ = model.rpn(images, features)
    detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    return detections


MASK_OFFSET_PX = 0.5
"""torchvision's Mask R-CNN learns its mask targets with ``roi_align(aligned=False)``, which
samples the true mask half a pixel right of and below the box; pasted on the box itself, its
masks sat 0.4-0.45 px up and left of the true spines (generator images at the native pixel
size), and mirrored views of a plane disagreed by a pixel."""


def _paste_instances(
    labels: np.ndarray,
    scores: list[float],
    detections: list[tuple[np.ndarray, float, np.ndarray]],
    mask_threshold: float,
    min_px: int,
) -> None:
    """Paste (box xyxy, score, mask probs MxM) detections into ``labels`` (H, W) int32, best
    score first; a pixel already owned by a better spine stays with it. Each mask lands
    :data:`MASK_OFFSET_PX` right of and below its box, where it was learned."""
    h, w = labels.shape
    for box, score, mask in sorted(detections, key=lambda d: -d[1]):
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64) + MASK_OFFSET_PX
        xi0, yi0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        xi1, yi1 = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
        if xi1 <= xi0 or yi1 <= yi0:
            continue
        bw, bh = max(int(np.ceil(x1) - np.floor(x0)), 1), max(int(np.ceil(y1) - np.floor(y0)), 1)
        m = F.interpolate(
            torch.from_numpy(mask)[None, None], size=(bh, bw), mode="bilinear", align_corners=False
        )[0, 0].numpy()
        oy, ox = yi0 - int(np.floor(y0)), xi0 - int(np.floor(x0))
        m = m[oy : oy + (yi1 - yi0), ox : ox + (xi1 - xi0)] >= mask_threshold
        claim_pixels(labels[yi0:yi1, xi0:xi1], m, score, scores, min_px)


def plane_pass(
    plane: torch.Tensor,
    models: LoadedModels,
    cfg: InferenceConfig,
    score_threshold: float,
    should_stop: Callable[[], bool],
    tile_size: int | None = None,
) -> Iterator[int]:
    """Both networks over one native-resolution plane (P, H, W) float32 on the models' device
    (the plane with its neighbours in z when the networks take P > 1 planes), in each of its
    mirror views when ``cfg.test_time_flips`` (see :mod:`.flips`).

    Yields the number of tiles done after each tile batch (the caller reports progress and may
    stop; raises :class:`Cancelled` when ``should_stop()``); returns dendrite probability
    (H, W) float32 tensor in 0-1, spine labels (H, W) int32 array (0 none, ids from 1) and the
    score (0-1) of each id. ``score_threshold`` (0-1) keeps spines; ``tile_size`` (px)
    overrides ``cfg.tile_size`` (smaller tiles after an out-of-memory error).
    """
    if not cfg.test_time_flips:
        return (yield from _view_pass(plane, models, cfg, score_threshold, should_stop, tile_size))
    view_threshold = min(score_threshold, VIEW_SCORE_FLOOR)
    prob_sum = None
    view_labels, view_scores = [], []
    for view in FLIP_VIEWS:
        dims = [axis - 2 for axis in flipped_axes(view)]  # the last two axes: y, x
        seen = plane.flip(dims) if dims else plane
        prob, labels, scores = yield from _view_pass(
            seen, models, cfg, view_threshold, should_stop, tile_size
        )
        prob = prob.flip(dims) if dims else prob
        prob_sum = prob if prob_sum is None else prob_sum + prob
        view_labels.append(np.ascontiguousarray(flip_view(labels, view)))
        view_scores.append(scores)
    fused = fuse_views(view_labels, view_scores)
    labels, scores = paste_fused(plane.shape[-2:], fused, score_threshold, cfg.min_spine_px)
    return prob_sum / len(FLIP_VIEWS), labels, scores


def _view_pass(
    plane: torch.Tensor,
    models: LoadedModels,
    cfg: InferenceConfig,
    score_threshold: float,
    should_stop: Callable[[], bool],
    tile_size: int | None = None,
) -> Iterator[int]:
    """Both networks over one view of a (P, H, W) plane, tile by tile (as :func:`plane_pass`)."""
    h, w = plane.shape[-2:]
    th, tw, ov, ys, xs = plane_tiles(h, w, tile_size or cfg.tile_size, cfg.tile_overlap)
    ph, pw = max(h, th), max(w, tw)
    padded = mirror_pad(plane, ph, pw)
    origins = [(y, x) for y in ys for x in xs]
    configure_detector(models.spines, th * tw, score_threshold)
    window = blend_window(th, tw, ov).to(models.device)
    prob_sum = torch.zeros((ph, pw), device=models.device)
    weight_sum = torch.zeros((ph, pw), device=models.device)
    detections: list[tuple[np.ndarray, float, np.ndarray]] = []
    for i in range(0, len(origins), cfg.batch_tiles):
        if should_stop():
            raise Cancelled("inference cancelled")
        batch_org = origins[i : i + cfg.batch_tiles]
        tiles = torch.stack([padded[:, y : y + th, x : x + tw] for y, x in batch_org])
        tiles = tiles.to(models.device)
        prob, dets = run_networks(models, tiles)
        for (y, x), p, det in zip(batch_org, prob, dets, strict=False):
            prob_sum[y : y + th, x : x + tw] += p * window
            weight_sum[y : y + th, x : x + tw] += window
            ylo, yhi = core_bounds(y, th, ph, ov)
            xlo, xhi = core_bounds(x, tw, pw, ov)
            keep = det["scores"] >= score_threshold
            boxes = det["boxes"][keep].cpu().numpy()
            scores = det["scores"][keep].cpu().numpy()
            masks = det["masks"][keep][:, 0].float().cpu().numpy()
            for box, score, mask in zip(boxes, scores, masks, strict=False):
                cx, cy = (box[0] + box[2]) / 2 + x, (box[1] + box[3]) / 2 + y
                if xlo <= cx < min(xhi, w) and ylo <= cy < min(yhi, h):  # not a mirror image
                    detections.append((box + np.array([x, y, x, y]), float(score), mask))
        yield len(batch_org)
    prob = (prob_sum / weight_sum.clamp_min(1e-6))[:h, :w]
    labels = np.zeros((h, w), dtype=np.int32)
    scores: list[float] = []
    _paste_instances(labels, scores, detections, cfg.spine_mask_threshold, cfg.min_spine_px)
    return prob, labels, scores
