"""Words shared by every layer: the spine types, the ignore label and the stack modes."""

from __future__ import annotations

SPINE_TYPES: tuple[str, ...] = ("mushroom", "stubby", "branched", "thin", "filopodium")
"""Spine type names; the index is the class id used everywhere (same order as the YOLO11 set)."""

IGNORE = 255
"""Dendrite target value of pixels without dendrite annotation (centre-only real sets, padding
outside a corrected image): the dendrite loss skips them."""

STACK_MODES = ("auto", "slabs", "projection", "planes")
"""How a stack is segmented (``inference/slabs.py``): ``auto`` chooses from the stack's depth
and z-step; ``slabs``: projections of overlapping slabs; ``projection``: one projection of the
whole stack; ``planes``: every plane on its own, linked across planes (the path of v0.5 and
earlier)."""
