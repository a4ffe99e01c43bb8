"""Words shared by every layer: the spine types, the ignore label, the stack modes and the
metadata keys of the plugin's labels."""

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

LAYER_KEY = "dendrite_panoptic"
"""Metadata key that marks a napari layer as written by this plugin (its ``plane_hashes``: one
hash per plane of what the model wrote); a Labels layer saved with napari keeps it in the file."""

LABEL_HASHES = "label_plane_hashes"
"""The key of ``segment``'s run record (also stored in its label TIFFs) holding one hash per
plane of the labels it wrote, ``{"dendrite": [...], "spines": [...]}``
(:func:`~napari_dendrite_panoptic.data.plane_hashes`), from which the training dock and
``fine-tune --only-edited`` tell the planes a user corrected from those left as written."""
