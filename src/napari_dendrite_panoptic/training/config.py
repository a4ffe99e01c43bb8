"""What a training run takes and reports: :class:`TrainConfig`, :class:`TrainEvent`, and the checkpoint file's name."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DendritePanopticError, InputError

# re-exported: training.CheckpointError, training.load_checkpoint and training.save_checkpoint
# stay part of the API (docs/reliability.md, the tests)

CHECKPOINT_FILE = "checkpoint.pt"
PRECISIONS = ("auto", "float32", "bfloat16")
LAYER_CHOICES = ("all", "upper", "heads")
WHICH_CHOICES = ("both", "spines", "dendrites")


class NonFiniteLossError(DendritePanopticError):
    """A loss became NaN or infinite: training stops instead of saving a broken model."""


@dataclass(frozen=True)
class TrainConfig:
    """One training job.

    ``which``: "both", "spines" or "dendrites". ``base_model``: a model folder to fine-tune, or
    None to start from random weights. ``work_dir`` holds the resumable checkpoint; the finished
    model is written to ``output_model``. ``max_seconds``: a time budget; the run ends at
    ``steps`` or when the budget is spent, whichever comes first, and the learning-rate schedule
    follows whichever of the two is further along. ``device``: "cpu", "cuda" or "auto".
    ``workers``: processes that draw and augment batches ahead of the networks (0: drawn in the
    training loop itself); the batches are the same either way, because batch ``k`` is drawn from
    a random generator seeded with ``(seed, k)``. ``input_planes``: planes the networks see at
    once, 1 or 3 (the plane and its neighbours in a stack); None keeps the base model's (1 for a
    new model); 3 on a 1-plane base model widens its stems (see
    :func:`~napari_dendrite_panoptic.models.builders.widen_input_planes`). ``freeze_norm``: keep
    every BatchNorm layer's running statistics as the base model has them and normalise with them
    while training (their scale and shift still learn); meant for fine-tuning with small batches,
    whose own statistics are too noisy to normalise with. ``precision``: the networks' forward
    arithmetic while training: "bfloat16" (autocast; weights, optimiser and losses stay float32),
    "float32", or "auto": bfloat16 where the device computes it natively (CPUs with AVX512-BF16
    or AMX, CUDA GPUs that support it), else float32. ``layers``: "all"; "upper" to leave
    each network's stem and first ResNet stage (weights and normalisation statistics) as the base
    model has them and train the rest (no backward pass through the two highest-resolution
    stages: faster steps); or "heads" to leave the whole ResNet trunk: faster still, and fewer
    weights for a few corrected images to move.
    """

    work_dir: str
    output_model: str
    steps: int = 1000
    batch_size: int = 4
    crop_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    which: str = "both"
    base_model: str | None = None
    pixel_size_um: float = 0.08
    checkpoint_every: int = 50
    seed: int = 0
    model_name: str = "dendrite-panoptic"
    model_version: str = "0"
    threads: int | None = None
    data_description: str = "generator"
    validate_images: int = 0
    max_seconds: float | None = None
    device: str = "cpu"
    workers: int = 0
    input_planes: int | None = None
    freeze_norm: bool = False
    precision: str = "auto"
    layers: str = "all"

    def __post_init__(self) -> None:
        if self.which not in WHICH_CHOICES:
            raise InputError(f"which must be both, spines or dendrites, not {self.which!r}")
        if self.steps < 1 or self.batch_size < 1 or self.crop_size < 64:
            raise InputError("steps and batch_size must be >= 1 and crop_size >= 64")
        if not (self.lr > 0):
            raise InputError("learning rate must be > 0")
        if self.warmup_steps < 0:
            raise InputError(f"warmup_steps must be >= 0, not {self.warmup_steps}")
        if self.checkpoint_every < 1:
            raise InputError(f"checkpoint_every must be >= 1, not {self.checkpoint_every}")
        if not (self.pixel_size_um > 0):
            raise InputError(f"pixel_size_um must be > 0, not {self.pixel_size_um}")
        if self.max_seconds is not None and not (self.max_seconds > 0):
            raise InputError("a time budget must be > 0 seconds")
        if self.device not in ("cpu", "cuda", "auto"):
            raise InputError(f"device must be cpu, cuda or auto, not {self.device!r}")
        if self.workers < 0:
            raise InputError("workers must be >= 0")
        if self.freeze_norm and self.base_model is None:
            raise InputError("freezing the normalisation needs a base model to take it from")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.layers not in LAYER_CHOICES:
            raise InputError(f"layers must be all, upper or heads, not {self.layers!r}")
        if self.layers != "all" and self.base_model is None:
            raise InputError(
                f"training {self.layers!r} layers only needs a base model to take the rest from"
            )
        if self.input_planes not in (None, 1, 3):
            raise InputError(f"input planes must be 1 or 3, not {self.input_planes!r}")


@dataclass
class TrainEvent:
    """Progress of a training job. ``kind``: "start", "step", "checkpoint", "validation" (with
    ``metrics``), "done", "stopped". ``data_wait_fraction`` (0-1, on "step" events): the share
    of this run's wall time so far spent waiting for batches rather than training on them; near
    1, the data sources (``--workers``) and not the device set the pace. On the last event of a run
    that kept its best weights: ``best_step`` (the step whose weights the model folder holds),
    ``metrics`` (that step's held-out scores) and ``base_metrics`` (the starting model's);
    ``kept_last``: the held-out data said too little to choose a step, so ``best_step`` is the
    last one."""

    kind: str
    step: int
    total_steps: int
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    elapsed_s: float = 0.0
    model_folder: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    data_wait_fraction: float = 0.0
    best_step: int | None = None
    base_metrics: dict[str, float] = field(default_factory=dict)
    kept_last: bool = False
