"""Layer 3: scores: pixel and instance metrics, comparisons of predictions with ground truth (tables, maps, scopes), and held-out evaluation of a model."""

from .compare import DEFAULT_DISTANCE_UM, DEFAULT_IOU, compare, compare_in_scope, compare_planes
from .heldout import (
    HELD_OUT_2D_SEED,
    HELD_OUT_2D_SHAPE,
    HELD_OUT_2P_SEED,
    HELD_OUT_2P_SHAPE,
    HELD_OUT_2P_STACKS,
    HELD_OUT_3D_SEED,
    HELD_OUT_3D_SHAPE,
    evaluate_generator,
    evaluate_masks,
    evaluate_points,
    point_counts,
)
from .inputs import (
    check_labels,
    check_same_grid,
    input_warnings,
    looks_semantic,
    read_points_csv,
)
from .maps import DENDRITE_DIFF_VALUES, STATUS_COLOURS, dendrite_diff_map, spine_status_map
from .metrics import (
    instance_centres,
    match_instances,
    match_points,
    match_stack_centres,
    pixel_scores,
    table_centres,
)
from .tables import Table, figures_table, write_csv

__all__ = [
    "HELD_OUT_2D_SEED",
    "HELD_OUT_2D_SHAPE",
    "HELD_OUT_2P_SEED",
    "HELD_OUT_2P_SHAPE",
    "HELD_OUT_2P_STACKS",
    "HELD_OUT_3D_SEED",
    "HELD_OUT_3D_SHAPE",
    "evaluate_masks",
    "evaluate_points",
    "point_counts",
    "DEFAULT_DISTANCE_UM",
    "DEFAULT_IOU",
    "DENDRITE_DIFF_VALUES",
    "STATUS_COLOURS",
    "Table",
    "check_labels",
    "check_same_grid",
    "compare",
    "compare_in_scope",
    "compare_planes",
    "dendrite_diff_map",
    "evaluate_generator",
    "figures_table",
    "input_warnings",
    "looks_semantic",
    "match_instances",
    "instance_centres",
    "match_points",
    "match_stack_centres",
    "pixel_scores",
    "read_points_csv",
    "spine_status_map",
    "table_centres",
    "write_csv",
]
