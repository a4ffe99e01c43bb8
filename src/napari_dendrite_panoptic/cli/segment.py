"""``dendrite-panoptic segment``: segment TIFF files with a model and write the label TIFFs,
tables, ROI set, overlay and run record of each (one file: :func:`segment_file`; the command,
over a batch: :func:`cmd_segment`). Its flags are defined in :func:`cli.build_parser`.

Heavy modules (torch via the engine, tqdm, the batch runner) are imported inside the functions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import STACK_MODES
from ..errors import OutputExistsError
from .options import DENDRITE_THRESHOLD_HELP, FLIPS_HELP, planes_or_off

if TYPE_CHECKING:
    from ..inference import InferenceConfig, PanopticResult
    from ..models import LoadedModels

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
    from ..inference import InferenceConfig, config_from_record, load_record

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
        stack_mode=args.stack_mode,
        slab_um=args.slab_um,
    )
    return config, None


def segment_file(
    path: Path,
    args: argparse.Namespace,
    cfg: InferenceConfig,
    models: LoadedModels,
    bar_factory: Callable[..., Any],
) -> dict[str, Path]:
    """Segment one TIFF and write its outputs and run record; returns the written paths."""
    import contextlib
    import datetime as dt
    import time

    from ..inference import DiskPlaneSink, run_record

    outputs = _segment_outputs(Path(args.out), path.stem, args.overlay)
    existing = [p for p in outputs.values() if p.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(
            f"{existing[0]} exists already; pass --overwrite to replace it or choose another --out"
        )
    stack, volume, voxel, cfg, low_memory = _open_input(path, args, cfg)
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        sink = None
        if low_memory:
            sink = cleanup.enter_context(
                DiskPlaneSink(outputs["dendrite"].parent, path.stem, volume.shape)
            )
        result = _run_engine(path, volume, voxel, cfg, models, sink, bar_factory)
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
            return _write_low_memory(path, outputs, result, sink, meta)
    _write_outputs(path, outputs, result, volume, "Z" not in stack.axes, args.overlay, meta)
    logger.info("%s: %d spines", path.name, len(result.table["id"]))
    return outputs


def _open_input(
    path: Path, args: argparse.Namespace, cfg: InferenceConfig
) -> tuple[Any, Any, tuple[float, float, float] | None, InferenceConfig, bool]:
    """The read stack, its (Z, Y, X) volume of ``--channel`` (in memory, or released plane by
    plane for a low-memory run), its voxel size (None when the file stores none), the config
    (one tile at a time when low on memory) and whether the run is a low-memory one."""
    import dataclasses

    import numpy as np

    from ..inference import ReleasingPlanes, result_bytes
    from ..io import read_tiff, stack_zyx

    stack = read_tiff(path, lazy=True)  # planes are read as the engine needs them
    volume = stack_zyx(stack, channel=args.channel)
    voxel = stack.voxel_size_um if stack.voxel_size_source != "none" else None
    if voxel is None and args.pixel_size is None:
        logger.warning("%s stores no voxel size; assuming the model's pixel size", path)
    low_memory = getattr(args, "low_memory", False) or result_bytes(volume.shape) > LOW_MEMORY_BYTES
    if not low_memory:
        volume = np.asarray(volume)
    else:  # one tile at a time: the networks' working set is most of the peak
        cfg = dataclasses.replace(cfg, batch_tiles=1)
        volume = ReleasingPlanes(volume)
    return stack, volume, voxel, cfg, low_memory


def _run_engine(
    path: Path,
    volume: Any,
    voxel: tuple[float, float, float] | None,
    cfg: InferenceConfig,
    models: LoadedModels,
    sink: Any,
    bar_factory: Callable[..., Any],
) -> PanopticResult:
    """Drive :func:`iter_predict` with a progress bar (tiles); warnings go to stderr."""
    from ..inference import PanopticResult, iter_predict

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
    if volume.shape[0] > 1:  # which stack path ran, and why
        mode, why = result.parameters["stack_mode_used"], result.parameters["stack_mode_reason"]
        print(f"dendrite-panoptic: {path.name}: stack mode {mode}: {why}", file=sys.stderr)
    return result


def _write_low_memory(
    path: Path, outputs: dict[str, Path], result: PanopticResult, sink: Any, meta: dict
) -> dict[str, Path]:
    """A low-memory run's outputs: labels streamed plane by plane from the sink, the spine
    table and the run record (last); the analysis and overlay are skipped, with a note."""
    import json

    from ..core import atomic_write_text
    from ..io import write_labels_tiff, write_table_csv

    meta["low_memory"] = True
    write_labels_tiff(outputs["dendrite"], sink.stream("dendrite"), result.voxel_size_um, meta)
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


def _write_outputs(
    path: Path,
    outputs: dict[str, Path],
    result: PanopticResult,
    volume: Any,
    squeeze: bool,
    overlay: bool,
    meta: dict,
) -> None:
    """Labels (2D for a 2D input), the spine analysis (tables, ROI set), the overlay, and the
    run record last."""
    import json

    import numpy as np

    from ..analysis import write_analysis_outputs
    from ..core import atomic_write_text
    from ..io import overlay_rgb, save_png, write_labels_tiff

    dendrite = result.dendrite[0] if squeeze else result.dendrite
    spines = result.spines[0] if squeeze else result.spines
    write_labels_tiff(outputs["dendrite"], dendrite.astype(np.uint8), result.voxel_size_um, meta)
    write_labels_tiff(outputs["spines"], spines, result.voxel_size_um, meta)
    write_analysis_outputs(
        outputs["csv"].parent,
        path.stem,
        result.dendrite,
        result.spines,
        result.voxel_size_um,
        volume,
        base_table=result.table,
    )
    if overlay:
        save_png(outputs["overlay"], overlay_rgb(volume, result.dendrite, result.spines))
    atomic_write_text(outputs["run"], json.dumps(meta, indent=2, default=str))


def cmd_segment(args: argparse.Namespace) -> int:
    """Run ``segment`` on the parsed arguments: every input file, in process or on a Dask
    cluster, with a summary CSV for several files; returns the exit status (1 if a file
    failed)."""
    from tqdm import tqdm

    from ..inference import check_model_matches
    from ..models import load_models
    from .batch import expand_inputs, report_batch, run_batch, summary_path

    inputs = expand_inputs(args.inputs)
    summary = summary_path(args, len(inputs))
    cfg, record = segment_config(args)
    models = load_models(cfg.model, cfg.device)
    if record is not None:
        check_model_matches(record, models)
    Path(args.out).mkdir(parents=True, exist_ok=True)  # not before the model is known to load
    outcomes = run_batch(
        segment_file,
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``segment`` command and its options."""
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
        type=planes_or_off,
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
    seg.add_argument(
        "--stack-mode",
        default="auto",
        choices=list(STACK_MODES),
        help="how a z-stack is segmented: 'slabs' (projections of overlapping slabs "
        "--slab-um thick, each spine lifted to its planes), 'projection' (the whole stack at "
        "once), 'planes' (every plane, linked across planes, as before v0.6), 'auto' (a "
        "projection for a stack no deeper than one slab, else slabs) (default: auto)",
    )
    seg.add_argument(
        "--slab-um",
        type=float,
        default=3.0,
        help="slab thickness in µm for --stack-mode slabs/auto (default 3)",
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
    seg.set_defaults(func=cmd_segment)
