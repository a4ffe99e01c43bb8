"""``dendrite-panoptic evaluate``: score predicted label TIFFs (and a CSV of spine centres)
against ground truth with :mod:`napari_dendrite_panoptic.evaluation`, or a model on held-out generator images and the real
data sets with :mod:`evaluation`; prints the scores and writes the CSV/JSON asked for. Its flags
are defined in :func:`cli.build_parser`.

Heavy modules (torch via the engine, the TIFF reader) are imported inside the functions.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DendritePanopticError, InputError, OutputExistsError
from .options import DENDRITE_THRESHOLD_HELP, DEVICE_HELP, FLIPS_HELP, command_parser

logger = logging.getLogger("napari_dendrite_panoptic")


def _size_text(shape: tuple[int, ...]) -> str:
    """``(8, 192, 192)`` → ``"8x192x192"``, as the generator rows' names give a set's size."""
    return "x".join(map(str, shape))


def _print_table(rows: list[tuple[str, dict]]) -> None:
    for name, scores in rows:
        print(f"== {name}")
        for key, value in scores.items():
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"   {key:<24} {text}")


def _evaluate_files(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """``evaluate --pred-*``: score label TIFFs (and a CSV of centres) with comparison.py, the
    engine of the Metrics dock; prints the per-plane table and writes the CSVs asked for."""
    import numpy as np

    from .. import evaluation as cmp
    from ..core import mask_to_instances
    from ..io import read_tiff

    if args.truth_points and not args.pred_spines:
        raise DendritePanopticError("--truth-points needs --pred-spines")
    if args.pred_spines and not (args.truth_spines or args.truth_points):
        raise DendritePanopticError("--pred-spines needs --truth-spines or --truth-points")
    if args.pred_dendrite and not args.truth_dendrite:
        raise DendritePanopticError("--pred-dendrite needs --truth-dendrite")
    csv_paths = {}
    if args.csv:
        csv_paths = {k: Path(f"{args.csv}_{k}.csv") for k in ("figures", "objects")}
        existing = [p for p in csv_paths.values() if p.exists()]
        if existing and not args.overwrite:
            raise OutputExistsError(f"{existing[0]} exists already; pass --overwrite to replace it")
    arrays: dict[str, np.ndarray] = {}
    voxel = None
    first: tuple[str, tuple, tuple | None] | None = None
    keys = [
        k
        for k in ("pred_dendrite", "truth_dendrite", "pred_spines", "truth_spines")
        if getattr(args, k)
    ]
    bar, progress = _set_bar("reading", "image")
    for done, key in enumerate(keys):
        path = getattr(args, key)
        stack = read_tiff(path)
        progress(done + 1, len(keys))
        data = np.asarray(stack.data)
        cmp.check_labels(data, path)
        known = stack.voxel_size_source != "none"
        scale = stack.voxel_size_um[-data.ndim :] if known else None
        if first is None:
            first = (path, data.shape, scale)
        else:
            cmp.check_same_grid(first[1], data.shape, first[0], path, first[2], scale)
        if voxel is None and known:
            voxel = stack.voxel_size_um
        if key.endswith("spines"):
            for message in cmp.input_warnings(data, path, key.replace("_", " "), instances=True):
                if args.split_components and cmp.looks_semantic(data):
                    data = mask_to_instances(data)
                    logger.warning("%s: split into %d connected components", path, data.max())
                else:
                    logger.warning("%s (--split-components splits it)", message)
        arrays[key] = data
    bar.close()
    voxel = voxel or (1.0, 1.0, 1.0)
    points = None
    if args.truth_points:
        if voxel == (1.0, 1.0, 1.0):
            logger.warning("no voxel size stored in the TIFFs: distances are in pixels")
        points = cmp.read_points_csv(args.truth_points, voxel)
    kwargs = dict(
        **arrays,
        truth_points_um=points,
        voxel_size_um=voxel,
        iou_threshold=args.iou,
        distance_um=args.distance_um,
    )
    whole = cmp.compare(**kwargs)
    rows: list[tuple[str, dict]] = []
    if whole.dendrite is not None:
        scores = {f"pixel_{k}": v for k, v in whole.dendrite.as_dict().items()}
        rows.append((f"dendrite: {args.pred_dendrite} vs {args.truth_dendrite}", scores))
    if whole.spine_instances is not None:
        scores = {f"pixel_{k}": v for k, v in whole.spine_pixels.as_dict().items()}
        scores.update({f"instance_{k}": v for k, v in whole.spine_instances.as_dict().items()})
        rows.append((f"spines: {args.pred_spines} vs {args.truth_spines}", scores))
    if whole.spine_points is not None:
        scores = {f"point_{k}": v for k, v in whole.spine_points.as_dict().items()}
        rows.append((f"spine centres: {args.pred_spines} vs {args.truth_points}", scores))
    figures, objects = cmp.figures_table(whole.figures()), whole.objects
    if args.per_plane:
        figures, objects = cmp.compare_planes(**kwargs)
        keys = [k for k in figures if k.endswith(("_iou", "_f1", "_pq")) and k != "plane"]
        print("plane  " + "  ".join(f"{k:>16}" for k in keys))
        for i, plane in enumerate(figures["plane"]):
            print(f"{plane:>5}  " + "  ".join(f"{figures[k][i]:>16.4f}" for k in keys))
    if csv_paths:
        cmp.write_csv(csv_paths["figures"], figures)
        cmp.write_csv(csv_paths["objects"], objects)
        for p in csv_paths.values():
            print(f"wrote {p}")
    return rows


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``evaluate`` on the parsed arguments: label TIFFs when a ``--pred-*`` or
    ``--truth-points`` is given, else the model on ``--generator``/``--generator-3d``/
    ``--real``; prints the scores (and writes ``--json``); returns the exit status."""
    import json

    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json '{args.json}' is a folder; name a .json file")
    if args.json and Path(args.json).exists() and not args.overwrite:
        raise OutputExistsError(f"{args.json} exists already; pass --overwrite to replace it")
    if not 0.0 < args.iou < 1.0:
        # a match needs an IoU above this, so 1 would match nothing
        raise InputError(f"--iou must be more than 0 and less than 1, not {args.iou}")
    if not args.distance_um > 0.0:
        raise InputError(f"--distance-um must be more than 0, not {args.distance_um}")
    rows: list[tuple[str, dict]] = []
    if args.pred_spines or args.pred_dendrite or args.truth_points:
        rows = _evaluate_files(args)
    else:
        from .. import evaluation
        from ..inference import InferenceConfig
        from ..models import load_models

        models = load_models(args.model, args.device)
        cfg = InferenceConfig(
            model=args.model,
            device=args.device,
            spine_score_threshold=args.score_threshold,
            dendrite_threshold=args.dendrite_threshold,
            test_time_flips=args.flips,
        )
        if args.generator:
            rows.append(
                (
                    f"generator 2D ({args.generator} images, "
                    f"{_size_text(evaluation.HELD_OUT_2D_SHAPE[1:])})",
                    _scored(
                        "generator 2D",
                        evaluation.evaluate_generator,
                        models,
                        args.generator,
                        config=cfg,
                    ),
                )
            )
        if args.generator_3d:
            rows.append(
                (
                    f"generator 3D ({args.generator_3d} stacks, "
                    f"{_size_text(evaluation.HELD_OUT_3D_SHAPE)})",
                    _scored(
                        "generator 3D",
                        evaluation.evaluate_generator,
                        models,
                        args.generator_3d,
                        seed=evaluation.HELD_OUT_3D_SEED,
                        shape=evaluation.HELD_OUT_3D_SHAPE,
                        config=cfg,
                    ),
                )
            )
        if args.real:
            from ..data import real as rd  # an absent set: DataNotFoundError, one line

            _, fs_val = rd.findspines_split(rd.load_findspines())
            rows.append(
                (
                    "smirnov test (centres within 7.5 px)",
                    _scored(
                        "smirnov test",
                        evaluation.evaluate_points,
                        models,
                        rd.load_smirnov("test"),
                        cfg,
                    ),
                )
            )
            rows.append(
                (
                    "findspines validation groups (centres within half the box)",
                    _scored(
                        "findspines validation", evaluation.evaluate_points, models, fs_val, cfg
                    ),
                )
            )
            rows.append(
                (
                    "yolo11 val (outlines)",
                    _scored(
                        "yolo11 val", evaluation.evaluate_masks, models, rd.load_yolo11("val"), cfg
                    ),
                )
            )
        if not rows:
            raise DendritePanopticError(
                "nothing to evaluate: give --generator N, --real or --pred-*"
            )
    _print_table(rows)
    if args.json:
        from ..core import atomic_write_text

        atomic_write_text(args.json, json.dumps(dict(rows), indent=2, default=float))
    return 0


def _set_bar(desc: str, unit: str = "image") -> Any:
    """A tqdm bar (stderr) over one evaluated set; returns it and the engine's progress callback
    ``(done, total)``."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, progress


def _scored(desc: str, score: Callable[..., dict], *args: Any, **kwargs: Any) -> dict:
    """``score(*args, **kwargs, progress=...)`` with a bar over its images, closed afterwards."""
    bar, progress = _set_bar(desc, "stack" if "3D" in desc else "image")
    try:
        return score(*args, **kwargs, progress=progress)
    finally:
        bar.close()


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` command and its options."""
    ev = command_parser(
        sub,
        "evaluate",
        "score predictions or a model against ground truth",
        "Score label TIFFs against ground truth (--pred-* with --truth-*: pixel IoU, spine "
        "F1/PQ at --iou, spine centres within --distance-um), or a model on held-out images: "
        "N generated 2D images or 3D stacks (--generator, --generator-3d) and the held-out parts "
        "of the real data sets (--real: found through the DENDRITE_PANOPTIC_DATA setting). "
        "Prints the scores; --json and --csv write them.",
        "  dendrite-panoptic evaluate --pred-spines out/a_spines.tif --truth-spines "
        "a_gt_spines.tif\n"
        "  dendrite-panoptic evaluate --generator 8 --json scores.json",
    )
    ev.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=DEVICE_HELP)
    ev.add_argument("--generator", type=int, default=0, help="N held-out 2D generator images")
    ev.add_argument("--generator-3d", type=int, default=0, help="N held-out 3D generator stacks")
    ev.add_argument(
        "--real",
        action="store_true",
        help="the held-out parts of the real data sets (in the folder the "
        "DENDRITE_PANOPTIC_DATA environment variable names)",
    )
    ev.add_argument("--pred-spines", help="predicted spine labels TIFF (default: none)")
    ev.add_argument("--truth-spines", help="ground-truth spine labels TIFF (default: none)")
    ev.add_argument("--pred-dendrite", help="predicted dendrite mask TIFF (default: none)")
    ev.add_argument("--truth-dendrite", help="ground-truth dendrite mask TIFF (default: none)")
    ev.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="spine score 0-1 (default: the model's)",
    )
    ev.add_argument("--dendrite-threshold", type=float, default=None, help=DENDRITE_THRESHOLD_HELP)
    ev.add_argument("--flips", action="store_true", help=FLIPS_HELP)
    ev.add_argument("--iou", type=float, default=0.5, help="IoU for a spine match")
    ev.add_argument("--json", help="also write the scores as JSON (default: none)")
    ev.add_argument(
        "--truth-points",
        help="CSV of annotated spine centres (µm or px columns) (default: none)",
    )
    ev.add_argument("--distance-um", type=float, default=1.0, help="centre match distance in µm")
    ev.add_argument("--per-plane", action="store_true", help="score every plane on its own too")
    ev.add_argument("--csv", help="write <CSV>_figures.csv and <CSV>_objects.csv (default: none)")
    ev.add_argument(
        "--split-components",
        action="store_true",
        help="split 0/1 spine masks into instances (connected components)",
    )
    ev.add_argument(
        "--overwrite", action="store_true", help="replace existing --csv and --json outputs"
    )
    ev.set_defaults(func=cmd_evaluate)
