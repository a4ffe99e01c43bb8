"""Layer 4: training: configuration, losses, batches, checkpoints, the resumable loop, and fine-tuning on corrections."""

from .batches import loader_plan
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .config import NonFiniteLossError, TrainConfig
from .fine_tuning import (
    FINE_TUNE_FREEZE_NORM,
    drop_checkpoint,
    fine_tune_config,
    held_out_score,
    iter_fine_tune,
)
from .loop import iter_fit, run_input_planes
from .losses import lr_factor

__all__ = [
    "CheckpointError",
    "FINE_TUNE_FREEZE_NORM",
    "NonFiniteLossError",
    "TrainConfig",
    "drop_checkpoint",
    "fine_tune_config",
    "held_out_score",
    "iter_fine_tune",
    "iter_fit",
    "load_checkpoint",
    "loader_plan",
    "lr_factor",
    "run_input_planes",
    "save_checkpoint",
]
