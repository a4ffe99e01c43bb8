"""Layer 2: training data: the synthetic generator, training samples and augmentation, the real annotated sets, the training mix, and user corrections."""

from .correction_crops import (
    STACK_SLAB_SHARE,
    correction_source,
    stack_projections,
    steps_per_epoch,
)
from .corrections import (
    CorrectedVolume,
    SemanticSpinesError,
    edited_planes,
    judged_held_out,
    pixel_size_notes,
    plane_hash,
    plane_hashes,
    prepare_volume,
    save_corrections,
)
from .mix import DEFAULT_MIX, data_fingerprints, training_source
from .samples import (
    SampleSource,
    TrainingSample,
    augment,
    generator_sample,
    network_input,
    slab_sample,
)

__all__ = [
    "CorrectedVolume",
    "DEFAULT_MIX",
    "STACK_SLAB_SHARE",
    "SampleSource",
    "SemanticSpinesError",
    "TrainingSample",
    "augment",
    "correction_source",
    "data_fingerprints",
    "edited_planes",
    "generator_sample",
    "judged_held_out",
    "network_input",
    "plane_hash",
    "plane_hashes",
    "prepare_volume",
    "pixel_size_notes",
    "save_corrections",
    "slab_sample",
    "stack_projections",
    "steps_per_epoch",
    "training_source",
]
