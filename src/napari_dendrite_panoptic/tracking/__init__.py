"""Layer 4: spines across imaging sessions: registration of every session to the first (rotation
and shift, a similarity map, then a smooth non-rigid field; 3D, in µm), matching of consecutive
sessions' spines along the first session's dendrite by optimal assignment, one id per spine for
the whole series, fates (stable, gained, lost, uncertain), per-branch turnover, the output files
and scores against a generated series' truth. numpy/scipy/scikit-image; no napari or Qt."""

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
    "register",
    "registration_error_um",
    "score_tracking",
    "spine_features",
    "track",
    "track_outputs",
    "turnover_table",
    "write_track_outputs",
]
