"""Words shared by every layer: the spine types and the ignore label."""

from __future__ import annotations

# re-exported: training.CheckpointError, training.load_checkpoint and training.save_checkpoint
# stay part of the API (docs/reliability.md, the tests)

SPINE_TYPES: tuple[str, ...] = ("mushroom", "stubby", "branched", "thin", "filopodium")


IGNORE = 255
