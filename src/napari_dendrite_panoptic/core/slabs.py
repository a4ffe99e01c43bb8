"""How a stack is cut into slabs for projection: the one rule shared by the stack path
(``inference/slabs.py``) and the training crops drawn from corrected stacks
(``data/correction_crops.py``), so that fine-tuning sees the projections inference segments."""

from __future__ import annotations

SLAB_UM = 3.0
"""Default slab thickness in µm of the stack path (``InferenceConfig.slab_um``)."""

UNKNOWN_Z_SLAB_PLANES = 4
"""Slab thickness in planes when the stack does not store its z-step."""


def slab_planes(nz: int, z_step_um: float | None, slab_um: float = SLAB_UM) -> int:
    """Planes per slab of a stack of ``nz`` planes ``z_step_um`` apart (None: unknown), at
    least 2 and at most ``nz``: ``slab_um`` in planes, or :data:`UNKNOWN_Z_SLAB_PLANES`."""
    if z_step_um is None:
        return max(1, min(UNKNOWN_Z_SLAB_PLANES, nz))
    return max(1, min(nz, max(2, round(slab_um / z_step_um))))


def slab_ranges(nz: int, planes: int) -> tuple[tuple[int, int], ...]:
    """Overlapping [first, last) ranges of ``planes`` planes, half a slab apart, covering all
    ``nz`` planes (the last slab ends at the last plane)."""
    stride = max(1, planes // 2)
    starts = list(range(0, max(nz - planes, 0) + 1, stride))
    if starts[-1] + planes < nz:
        starts.append(nz - planes)
    return tuple((s, min(s + planes, nz)) for s in starts)
