"""Layer 4: training: configuration, losses, batches, checkpoints, the resumable loop, and fine-tuning on corrections."""

from .batches import loader_plan
from .calibration import DENDRITE_THRESHOLDS as DENDRITE_THRESHOLD_SWEEP
from .calibration import THRESHOLDS as THRESHOLD_SWEEP
from .calibration import ThresholdChoice, choose_thresholds, match_corrected_count, write_threshold
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .config import LAYER_CHOICES, WHICH_CHOICES, NonFiniteLossError, TrainConfig
from .fine_tuning import (
    CHOSEN_BY_COUNT,
    ENOUGH_PASSES,
    FINE_TUNE_FREEZE_NORM,
    HELD_OUT_MIN_SPINES,
    NO_HELD_OUT_PLANES,
    drop_checkpoint,
    fine_tune_config,
    held_out_keys,
    held_out_score,
    iter_fine_tune,
    recalibrate_model,
)
from .loop import iter_fit
from .losses import lr_factor
from .networks import run_input_planes, training_precision
from .report import (
    SCORE_NAMES,
    calibration_text,
    held_out_verdict,
    passes_text,
    progress_text,
    saved_text,
)

__all__ = [
    "CheckpointError",
    "DENDRITE_THRESHOLD_SWEEP",
    "CHOSEN_BY_COUNT",
    "ENOUGH_PASSES",
    "FINE_TUNE_FREEZE_NORM",
    "HELD_OUT_MIN_SPINES",
    "LAYER_CHOICES",
    "NO_HELD_OUT_PLANES",
    "NonFiniteLossError",
    "SCORE_NAMES",
    "THRESHOLD_SWEEP",
    "WHICH_CHOICES",
    "ThresholdChoice",
    "TrainConfig",
    "calibration_text",
    "choose_thresholds",
    "drop_checkpoint",
    "fine_tune_config",
    "held_out_keys",
    "held_out_score",
    "held_out_verdict",
    "iter_fine_tune",
    "iter_fit",
    "load_checkpoint",
    "loader_plan",
    "lr_factor",
    "match_corrected_count",
    "passes_text",
    "progress_text",
    "recalibrate_model",
    "run_input_planes",
    "saved_text",
    "save_checkpoint",
    "training_precision",
    "write_threshold",
]
