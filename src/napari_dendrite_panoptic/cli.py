"""Command line: ``dendrite-panoptic segment | sample`` over the same engine as the dock widgets."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import DendritePanopticError, OutputExistsError

if TYPE_CHECKING:
    from .inference import InferenceConfig
    from .models.store import LoadedModels

logger = logging.getLogger("napari_dendrite_panoptic")


LOW_MEMORY_BYTES = 1 << 30
"""Results larger than this (5 bytes per voxel) are written plane by plane (``--low-memory``)."""


def _segment_outputs(out: Path, stem: str, overlay: bool) -> dict[str, Path]:
    paths = {
        "dendrite": out / f"{stem}_dendrite.tif",
        "spines": out / f"{stem}_spines.tif",
        "csv": out / f"{stem}_spines.csv",
        "run": out / f"{stem}_run.json",
        "dendrites_csv": out / f"{stem}_dendrites.csv",
        "roi": out / f"{stem}_spines_roi.zip",
    }
    if overlay:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def segment_config(args: argparse.Namespace) -> tuple[InferenceConfig, dict[str, Any] | None]:
    """The job's InferenceConfig and the run record it comes from (None without ``--from-run``):
    the recorded settings of ``--from-run``, else the flags."""
    from .inference import InferenceConfig
    from .provenance import config_from_record, load_record

    if args.from_run is not None:
        record = load_record(args.from_run)
        return config_from_record(record), record
    config = InferenceConfig(
        model=str(args.model) if args.model else None,
        device=args.device,
        pixel_size_um=args.pixel_size,
        spine_score_threshold=args.score_threshold,
        dendrite_threshold=args.dendrite_threshold,
        tile_size=args.tile_size,
        dendrite_depth_tolerance=args.dendrite_depth_tolerance,
        spine_focus_fraction=args.spine_focus_fraction,
        test_time_flips=args.flips,
    )
    return config, None


FLIPS_HELP = (
    "segment each plane in its four mirror views and keep the spines most of them find "
    "(4x the time; spine F1 +0.003 to +0.010 on the held-out real sets, docs/models.md)"
)
DENDRITE_THRESHOLD_HELP = (
    "dendrite probability (0-1) above which a pixel is dendrite (default 0.5; lower draws the "
    "shaft wider: docs/models.md)"
)


def _planes_or_off(text: str) -> float | None:
    """``--dendrite-depth-tolerance``: a number of planes >= 0, or "off"."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of planes or 'off', got '{text}'"
        ) from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of planes >= 0, got {value}")
    return value


def segment_file(
    path: Path,
    args: argparse.Namespace,
    cfg: InferenceConfig,
    models: LoadedModels,
    bar_factory: Callable[..., Any],
) -> dict[str, Path]:
    """Segment one TIFF and write its outputs and run record; returns the written paths."""
    import contextlib
    import dataclasses
    import datetime as dt
    import json
    import time

    import numpy as np

    from .atomic import atomic_write_text
    from .inference import PanopticResult, iter_predict
    from .io import as_zyx, read_tiff, write_labels_tiff
    from .overlay import overlay_rgb, save_png
    from .provenance import run_record
    from .streaming import DiskPlaneSink, ReleasingPlanes, result_bytes
    from .tables import write_table_csv

    outputs = _segment_outputs(Path(args.out), path.stem, args.overlay)
    existing = [p for p in outputs.values() if p.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(
            f"{existing[0]} exists already; pass --overwrite to replace it or choose another --out"
        )
    stack = read_tiff(path, lazy=True)  # planes are read as the engine needs them
    volume = as_zyx(stack, channel=args.channel)
    voxel = stack.voxel_size_um if stack.voxel_size_source != "none" else None
    if voxel is None and args.pixel_size is None:
        logger.warning("%s stores no voxel size; assuming the model's pixel size", path)
    low_memory = getattr(args, "low_memory", False) or result_bytes(volume.shape) > LOW_MEMORY_BYTES
    if not low_memory:
        volume = np.asarray(volume)
    else:  # one tile at a time: the networks' working set is most of the peak
        cfg = dataclasses.replace(cfg, batch_tiles=1)
        volume = ReleasingPlanes(volume)
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        sink = None
        if low_memory:
            sink = cleanup.enter_context(
                DiskPlaneSink(outputs["dendrite"].parent, path.stem, volume.shape)
            )
        result = None
        bar = None
        for event in iter_predict(volume, voxel, cfg, models=models, plane_sink=sink):
            if isinstance(event, PanopticResult):
                result = event
                continue
            if event.warning:
                print(f"dendrite-panoptic: {path.name}: {event.warning}", file=sys.stderr)
            if bar is None:
                bar = bar_factory(total=event.total, desc=path.name, unit="tile")
            bar.n = event.done
            bar.set_postfix_str(event.message, refresh=True)
        if bar is not None:
            bar.close()
        assert result is not None
        meta = run_record(
            result,
            models,
            input_path=str(path.resolve()),
            input_shape=tuple(stack.shape),
            input_dtype=str(stack.dtype),
            input_voxel_size_um=stack.voxel_size_um,
            input_voxel_size_source=stack.voxel_size_source,
            started=started,
            duration_s=time.perf_counter() - t0,
        )
        if sink is not None:  # a stack too big for memory: written plane by plane
            meta["low_memory"] = True
            write_labels_tiff(
                outputs["dendrite"], sink.stream("dendrite"), result.voxel_size_um, meta
            )
            write_labels_tiff(outputs["spines"], sink.stream("spines"), result.voxel_size_um, meta)
            write_table_csv(outputs["csv"], result.table)
            print(
                f"dendrite-panoptic: {path.name}: low-memory run (results written plane by "
                "plane); the spine analysis, branch table, ROI set and overlay are skipped: "
                "run them on a crop or in napari",
                file=sys.stderr,
            )
            atomic_write_text(outputs["run"], json.dumps(meta, indent=2, default=str))
            return {k: v for k, v in outputs.items() if k in ("dendrite", "spines", "csv", "run")}
    squeeze = "Z" not in stack.axes
    dendrite = result.dendrite[0] if squeeze else result.dendrite
    spines = result.spines[0] if squeeze else result.spines
    write_labels_tiff(outputs["dendrite"], dendrite.astype(np.uint8), result.voxel_size_um, meta)
    write_labels_tiff(outputs["spines"], spines, result.voxel_size_um, meta)
    from .analysis import write_analysis_outputs

    write_analysis_outputs(
        outputs["csv"].parent,
        path.stem,
        result.dendrite,
        result.spines,
        result.voxel_size_um,
        volume,
        base_table=result.table,
    )
    if args.overlay:
        save_png(outputs["overlay"], overlay_rgb(volume, result.dendrite, result.spines))
    atomic_write_text(outputs["run"], json.dumps(meta, indent=2, default=str))
    logger.info("%s: %d spines", path.name, len(result.table["id"]))
    return outputs


def _cmd_segment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .batch import expand_inputs, report_batch, run_batch, summary_path
    from .models.store import load_models
    from .provenance import check_model_matches

    inputs = expand_inputs(args.inputs)
    summary = summary_path(args, len(inputs))
    cfg, record = segment_config(args)
    models = load_models(cfg.model, cfg.device)
    if record is not None:
        check_model_matches(record, models)
    Path(args.out).mkdir(parents=True, exist_ok=True)  # not before the model is known to load
    outcomes = run_batch(
        inputs,
        args,
        cfg,
        models=models,
        workers=args.workers,
        scheduler=args.scheduler,
        bar_factory=tqdm if len(inputs) > 1 else None,
        on_done=lambda outcome: report_batch([outcome], None, final=False),
    )
    failures = report_batch(outcomes, summary, final=True)
    return 1 if failures else 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from . import synthetic
    from .io import write_labels_tiff, write_tiff_atomic

    out = Path(args.path)
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out} exists already; pass --overwrite to replace it")
    sample = synthetic.sample_plane() if args.plane else synthetic.sample_stack()
    squeeze = 0 if args.plane else slice(None)
    write_tiff_atomic(out, sample.image[squeeze], sample.voxel_size_um)
    if args.ground_truth:
        stem = out.with_suffix("")
        write_labels_tiff(f"{stem}_gt_dendrite.tif", sample.dendrite[squeeze], sample.voxel_size_um)
        write_labels_tiff(f"{stem}_gt_spines.tif", sample.spines[squeeze], sample.voxel_size_um)
    print(out)
    return 0


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

    from . import comparison as cmp
    from .io import read_tiff

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
    for key in ("pred_dendrite", "truth_dendrite", "pred_spines", "truth_spines"):
        path = getattr(args, key)
        if not path:
            continue
        stack = read_tiff(path)
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
                    data = cmp.split_components(data)
                    logger.warning("%s: split into %d connected components", path, data.max())
                else:
                    logger.warning("%s (--split-components splits it)", message)
        arrays[key] = data
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    rows: list[tuple[str, dict]] = []
    if args.pred_spines or args.pred_dendrite or args.truth_points:
        rows = _evaluate_files(args)
    else:
        from . import evaluation
        from .inference import InferenceConfig
        from .models.store import load_models

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
                    f"generator 2D ({args.generator} images, 256x256)",
                    evaluation.evaluate_generator(models, args.generator, config=cfg),
                )
            )
        if args.generator_3d:
            rows.append(
                (
                    f"generator 3D ({args.generator_3d} stacks, 8x192x192)",
                    evaluation.evaluate_generator(
                        models, args.generator_3d, seed=20_000, shape=(8, 192, 192), config=cfg
                    ),
                )
            )
        if args.real:
            from . import real_data as rd

            try:
                rd.data_root()
            except FileNotFoundError as exc:
                raise DendritePanopticError(f"real data sets are absent: {exc}") from None
            _, fs_val = rd.findspines_split(rd.load_findspines())
            rows.append(
                (
                    "smirnov test (centres within 7.5 px)",
                    evaluation.evaluate_points(models, rd.load_smirnov("test"), cfg),
                )
            )
            rows.append(
                (
                    "findspines validation groups (centres within half the box)",
                    evaluation.evaluate_points(models, fs_val, cfg),
                )
            )
            rows.append(
                (
                    "yolo11 val (outlines)",
                    evaluation.evaluate_masks(models, rd.load_yolo11("val"), cfg),
                )
            )
        if not rows:
            raise DendritePanopticError(
                "nothing to evaluate: give --generator N, --real or --pred-*"
            )
    _print_table(rows)
    if args.json:
        from .atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(dict(rows), indent=2, default=float))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .training import TrainConfig, iter_fit, run_input_planes
    from .training_mix import data_fingerprints, training_source

    planes = run_input_planes(args.input_planes, args.base_model)
    source, description = training_source(args.data, args.crop, args.pixel_size, planes)
    cfg = TrainConfig(
        work_dir=args.work,
        output_model=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        crop_size=args.crop,
        lr=args.lr,
        warmup_steps=args.warmup,
        which=args.which,
        base_model=args.base_model,
        pixel_size_um=args.pixel_size,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        model_name=args.name,
        model_version=args.model_version,
        threads=args.threads,
        data_description=description,
        validate_images=args.validate,
        device=args.device,
        workers=args.workers,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        input_planes=args.input_planes,
    )
    bar = tqdm(total=cfg.steps, desc="training", unit="step")

    def stop() -> bool:
        return args.until is not None and bar.n >= args.until

    record = {"data_fingerprints": data_fingerprints(args.data)}
    for event in iter_fit(
        cfg, source=source, should_stop=stop, resume=args.resume, provenance=record
    ):
        if event.kind == "start" and event.step > 0:
            tqdm.write(f"resuming from the checkpoint at step {event.step}")
        bar.n = event.step
        if event.losses:
            shown = {k: f"{v:.3f}" for k, v in event.losses.items() if k in ("spines", "dendrites")}
            shown["data_wait"] = f"{event.data_wait_fraction:.0%}"
            bar.set_postfix(shown)
        bar.refresh()
        if event.model_folder:
            bar.close()
            print(f"{event.kind} at step {event.step}: model written to {event.model_folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``dendrite-panoptic`` argument parser."""
    from .training_mix import DEFAULT_MIX

    parser = argparse.ArgumentParser(
        prog="dendrite-panoptic",
        description="Panoptic segmentation of dendrites and dendritic spines in TIFF stacks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment TIFF files with a model")
    seg.add_argument(
        "inputs", nargs="+", help="TIFF files (2D, 3D, or with channels), folders or globs"
    )
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    seg.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    seg.add_argument(
        "--pixel-size", type=float, default=None, help="(y, x) pixel size in µm, overrides metadata"
    )
    seg.add_argument("--channel", type=int, default=0, help="channel to segment (default 0)")
    seg.add_argument(
        "--score-threshold", type=float, default=None, help="spine score 0-1 (default: the model's)"
    )
    seg.add_argument("--dendrite-threshold", type=float, default=0.5, help=DENDRITE_THRESHOLD_HELP)
    seg.add_argument(
        "--dendrite-depth-tolerance",
        type=_planes_or_off,
        default=0.5,
        help="stacks: each (y, x) column keeps the dendrite planes a tube-shaped shaft fills, plus "
        "this many planes (default 0.5; 'off' keeps every plane the network marks)",
    )
    seg.add_argument(
        "--spine-focus-fraction",
        type=float,
        default=0.9,
        help="stacks: each spine keeps the planes at >= this fraction of its brightest plane's "
        "mean intensity (default 0.9; 0 keeps all)",
    )
    seg.add_argument(
        "--tile-size", type=int, default=1024, help="largest tile in px (multiple of 32)"
    )
    seg.add_argument("--flips", action="store_true", help=FLIPS_HELP)
    seg.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    seg.add_argument(
        "--low-memory",
        action="store_true",
        help="write results plane by plane (automatic above 1 GiB of results); skips the "
        "spine analysis and the overlay",
    )
    seg.add_argument(
        "--from-run", default=None, help="re-run with the settings of a <stem>_run.json record"
    )
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument(
        "--workers", type=int, default=1, help="files in parallel on a local Dask cluster"
    )
    seg.add_argument(
        "--scheduler", default=None, help="send files to a Dask cluster at tcp://HOST:PORT"
    )
    seg.add_argument(
        "--summary",
        default=None,
        help="summary CSV across files (default <out>/summary.csv for several files)",
    )
    seg.set_defaults(func=_cmd_segment)

    tr = sub.add_parser("train", help="train or fine-tune the spine and dendrite networks")
    tr.add_argument("--out", required=True, help="new model folder to write")
    tr.add_argument("--work", required=True, help="folder for the resumable checkpoint")
    tr.add_argument(
        "--data", default=DEFAULT_MIX, help=f"sources and weights (default {DEFAULT_MIX})"
    )
    tr.add_argument("--steps", type=int, default=2000)
    tr.add_argument(
        "--until", type=int, default=None, help="stop at this step (schedule of --steps)"
    )
    tr.add_argument("--batch-size", type=int, default=2)
    tr.add_argument("--crop", type=int, default=256, help="crop size in px")
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=100)
    tr.add_argument("--which", default="both", choices=["both", "spines", "dendrites"])
    tr.add_argument("--base-model", default=None, help="model folder to fine-tune")
    tr.add_argument("--pixel-size", type=float, default=0.08, help="native pixel size in µm")
    tr.add_argument("--checkpoint-every", type=int, default=25)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--validate", type=int, default=4, help="held-out generator images scored at the end"
    )
    tr.add_argument("--threads", type=int, default=None)
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    tr.add_argument(
        "--workers", type=int, default=0, help="processes drawing batches ahead (default 0)"
    )
    tr.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="time budget: stop and save when spent (the learning rate decays over it)",
    )
    tr.add_argument(
        "--input-planes",
        type=int,
        choices=[1, 3],
        default=None,
        help="planes the networks see at once: 1, or 3 (a stack's plane with the planes below "
        "and above); default: the base model's, else 1. 3 on a 1-plane base model widens it "
        "without changing its output at the start",
    )
    tr.add_argument("--name", default="dendrite-panoptic")
    tr.add_argument("--model-version", default="0.1")
    tr.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the checkpoint in --work (default yes)",
    )
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="score predictions or a model against ground truth")
    ev.add_argument("--model", default=None, help="model folder (default: bundled)")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--generator", type=int, default=0, help="N held-out 2D generator images")
    ev.add_argument("--generator-3d", type=int, default=0, help="N held-out 3D generator stacks")
    ev.add_argument("--real", action="store_true", help="held-out parts of ../shared/data")
    ev.add_argument("--pred-spines", help="predicted spine labels TIFF")
    ev.add_argument("--truth-spines", help="ground-truth spine labels TIFF")
    ev.add_argument("--pred-dendrite", help="predicted dendrite mask TIFF")
    ev.add_argument("--truth-dendrite", help="ground-truth dendrite mask TIFF")
    ev.add_argument("--score-threshold", type=float, default=None, help="default: the model's")
    ev.add_argument("--dendrite-threshold", type=float, default=0.5, help=DENDRITE_THRESHOLD_HELP)
    ev.add_argument("--flips", action="store_true", help=FLIPS_HELP)
    ev.add_argument("--iou", type=float, default=0.5, help="IoU for a spine match (default 0.5)")
    ev.add_argument("--json", help="also write the scores as JSON")
    ev.add_argument("--truth-points", help="CSV of annotated spine centres (µm or px columns)")
    ev.add_argument(
        "--distance-um", type=float, default=1.0, help="centre match distance in µm (default 1)"
    )
    ev.add_argument("--per-plane", action="store_true", help="score every plane on its own too")
    ev.add_argument("--csv", help="write <CSV>_figures.csv and <CSV>_objects.csv")
    ev.add_argument("--split-components", action="store_true", help="0/1 spine masks → instances")
    ev.add_argument("--overwrite", action="store_true", help="replace existing CSV outputs")
    ev.set_defaults(func=_cmd_evaluate)

    smp = sub.add_parser("sample", help="write the bundled synthetic sample stack as a TIFF")
    smp.add_argument("path", help="output TIFF path")
    smp.add_argument("--plane", action="store_true", help="a 2D plane instead of a 3D stack")
    smp.add_argument("--ground-truth", action="store_true", help="also write the exact labels")
    smp.add_argument("--overwrite", action="store_true")
    smp.set_defaults(func=_cmd_sample)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dendrite-panoptic``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except DendritePanopticError as exc:
        print(f"dendrite-panoptic: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dendrite-panoptic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
