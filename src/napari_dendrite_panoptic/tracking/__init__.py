"""Layer 4: spines across imaging sessions: registration of every session to the first (rotation
and shift, a similarity map, then a smooth non-rigid field; 3D, in µm), matching of consecutive
sessions' spines along the first session's dendrite by optimal assignment, one id per spine for
the whole series (kept across a session that missed a spine), fates (stable, gained, lost,
uncertain), per-branch turnover, hand merges and splits of ids, the output files and scores
against a generated series' truth. numpy/scipy/scikit-image; no napari or Qt."""

from .edits import merge_ids, split_id
from .outputs import track_outputs, write_track_outputs
from .registration import Registration, RegistrationError, register
from .scoring import registration_error_um, score_tracking
from .session import Session, spine_features
from .track import (
    CALLS,
    FATES,
    TrackConfig,
    TrackProgress,
    TrackResult,
    iter_track,
    track,
    turnover_table,
)

__all__ = [
    "CALLS",
    "FATES",
    "Registration",
    "RegistrationError",
    "Session",
    "TrackConfig",
    "TrackProgress",
    "TrackResult",
    "iter_track",
    "merge_ids",
    "register",
    "registration_error_um",
    "score_tracking",
    "spine_features",
    "split_id",
    "track",
    "track_outputs",
    "turnover_table",
    "write_track_outputs",
]
