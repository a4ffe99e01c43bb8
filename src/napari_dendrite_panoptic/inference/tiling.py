"""How a plane is cut into tiles for the networks, and how the tiles are put back together.

All sizes in px at the model's native pixel size. A plane is cut into as few tiles as the
largest tile allows, each as small as possible (a multiple of 32); tiles overlap, their
dendrite probabilities are blended with ramps over the overlap, and each spine belongs to the
tile whose core (the tile minus half the overlap on inner sides) holds its centre. A plane
smaller than its tile is mirrored into the padding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

MIN_TILE = 64
"""Smallest tile (px) tried after out-of-memory errors before giving up on a device."""


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = int(np.ceil((length - tile) / stride)) + 1
    starts = np.linspace(0, length - tile, n).round().astype(int)
    return sorted(set(starts.tolist()))


def ceil32(n: int) -> int:
    """``n`` px rounded up to a multiple of 32, at least 64 (the networks' smallest input)."""
    return max(64, int(np.ceil(n / 32)) * 32)


def tile_layout(length: int, max_tile: int, overlap: int) -> tuple[int, list[int]]:
    """Tile size (a multiple of 32, at most ``max_tile`` unless the plane is smaller than 64 px)
    and start offsets covering ``length`` px with at least ``overlap`` px between neighbours:
    the fewest tiles ``max_tile`` allows, each as small as they can be (a 1280 px axis with
    ``max_tile`` 1024 gets two 672 px tiles, not two of 1024)."""
    if length <= max_tile:
        return ceil32(length), [0]
    n = int(np.ceil((length - overlap) / (max_tile - overlap)))
    tile = min(ceil32(int(np.ceil((length + (n - 1) * overlap) / n))), max_tile)
    return tile, tile_origins(length, tile, overlap)


def plane_tiles(
    h: int, w: int, max_tile: int, overlap: int
) -> tuple[int, int, int, list[int], list[int]]:
    """(tile height, tile width, overlap, y origins, x origins) of an (h, w) plane."""
    ov = min(overlap, max_tile // 2)
    th, ys = tile_layout(h, max_tile, ov)
    tw, xs = tile_layout(w, max_tile, ov)
    return th, tw, min(ov, th // 2, tw // 2), ys, xs


def _ramp(length: int, overlap: int) -> torch.Tensor:
    ramp = torch.ones(length)
    if overlap > 0:
        edge = torch.linspace(0.05, 1.0, overlap)
        ramp[:overlap] = edge
        ramp[-overlap:] = edge.flip(0)
    return ramp


def blend_window(height: int, width: int, overlap: int) -> torch.Tensor:
    """(height, width) weights that ramp up over the overlap so tiles blend without seams."""
    return _ramp(height, overlap)[:, None] * _ramp(width, overlap)[None, :]


def core_bounds(start: int, size: int, length: int, overlap: int) -> tuple[float, float]:
    """The part of a tile that owns detections: the tile minus half the overlap on inner sides."""
    lo = start + (overlap / 2 if start > 0 else -np.inf)
    hi = start + size - (overlap / 2 if start + size < length else -np.inf)
    return lo, hi


def mirror_pad(plane: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) or (P, H, W) ``plane`` extended to (height, width) at the bottom and right by
    mirroring it.

    The networks never saw a border during training (every crop lies inside an image), and a
    zero border draws a bright-to-dark edge that the dendrite network reads as a shaft along the
    image's edge; a mirrored border continues the image instead. Planes smaller than the padding
    are mirrored repeatedly.
    """
    lead = plane.shape[:-2]
    out = plane.reshape(1, -1, *plane.shape[-2:])
    while out.shape[-2] < height or out.shape[-1] < width:
        dy = min(height - out.shape[-2], out.shape[-2] - 1)
        dx = min(width - out.shape[-1], out.shape[-1] - 1)
        if dy <= 0 and dx <= 0:  # a 1-pixel axis cannot be mirrored: repeat it
            pad = (0, width - out.shape[-1], 0, height - out.shape[-2])
            out = F.pad(out, pad, "replicate")
            break
        out = F.pad(out, (0, max(dx, 0), 0, max(dy, 0)), mode="reflect")
    return out.reshape(*lead, *out.shape[-2:])


def smaller_tile(tile: int, height: int, width: int) -> int | None:
    """The next tile size to try after an out-of-memory error with ``tile`` on a (height, width)
    plane: halved (a multiple of 32) until smaller than the tile actually used; None when
    :data:`MIN_TILE` was used already."""
    used = min(tile, ceil32(max(height, width)))
    while tile >= used and tile > MIN_TILE:
        tile = max(MIN_TILE, (tile // 2) // 32 * 32)
    return tile if tile < used else None
