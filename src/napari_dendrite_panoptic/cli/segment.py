"""``dendrite-panoptic segment``: segment TIFF files with a model and write the label TIFFs,
tables, ROI set, overlay and run record of each (one file: :func:`segment_file`; the command,
over a batch: :func:`cmd_segment`). Its flags are defined in :func:`add_parser`; the files of one
stem are named, staged and moved into place by :mod:`.segment_outputs`.

Heavy modules (torch via the engine, tqdm, the batch runner) are imported inside the functions.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import STACK_MODES
from ..errors import InputError
from .options import (
    DENDRITE_THRESHOLD_HELP,
    DEVICE_HELP,
    FLIPS_HELP,
    command_parser,
    planes_or_off,
)
from .segment_outputs import (
    check_out_folder,
    claim,
    output_paths,
    refuse_existing,
    staging,
    writable_out_folder,
    write_low_memory,
    write_outputs,
)

if TYPE_CHECKING:
    from ..inference import InferenceConfig, PanopticResult
    from ..models import LoadedModels

logger = logging.getLogger("napari_dendrite_panoptic")

LOW_MEMORY_BYTES = 1 << 30
"""Results larger than this (5 bytes per voxel) are written plane by plane (``--low-memory``)."""


_RESULT_FLAGS = {
    "pixel_size": ("pixel_size_um", "--pixel-size"),
    "score_threshold": ("spine_score_threshold", "--score-threshold"),
    "dendrite_threshold": ("dendrite_threshold", "--dendrite-threshold"),
    "dendrite_depth_tolerance": ("dendrite_depth_tolerance", "--dendrite-depth-tolerance"),
    "spine_focus_fraction": ("spine_focus_fraction", "--spine-focus-fraction"),
    "tile_size": ("tile_size", "--tile-size"),
    "flips": ("test_time_flips", "--flips"),
    "stack_mode": ("stack_mode", "--stack-mode"),
    "slab_um": ("slab_um", "--slab-um"),
}
"""Flags that change a result: (the InferenceConfig field, the option's name)."""


def _flag_defaults() -> dict[str, Any]:
    """The ``segment`` command's default value of every flag."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return vars(parser.parse_args(["segment", "input.tif", "--out", "out"]))


def segment_config(args: argparse.Namespace) -> tuple[InferenceConfig, dict[str, Any] | None]:
    """The job's InferenceConfig and the run record it comes from (None without ``--from-run``):
    the recorded settings of ``--from-run``, else the flags.

    With ``--from-run`` the recorded channel is used (``args.channel`` is set to it); ``--model``
    may name the recorded model's folder elsewhere (its hashes are checked), ``--device`` runs
    on another device (with a note that results can differ); any other flag that changes the
    result and differs from the record is refused.
    """
    import dataclasses

    from ..inference import InferenceConfig, config_from_record, load_record, recorded_channel

    if args.from_run is not None:
        record = load_record(args.from_run)
        cfg = config_from_record(record)
        defaults = _flag_defaults()
        for dest, (name, option) in _RESULT_FLAGS.items():
            given, recorded = getattr(args, dest), getattr(cfg, name)
            if given != defaults[dest] and given != recorded:
                raise InputError(
                    f"{option} {given} conflicts with the run record's {name} = {recorded}: "
                    f"--from-run re-runs with the recorded settings (drop {option}, or run "
                    "without --from-run)"
                )
        channel = recorded_channel(record)
        if channel is not None:
            if args.channel is not None and args.channel != channel:
                raise InputError(
                    f"--channel {args.channel} conflicts with the run record's channel {channel}"
                )
            args.channel = channel
        args.channel = args.channel or 0
        if args.model:
            cfg = dataclasses.replace(cfg, model=str(args.model))
        if args.device != defaults["device"] and args.device != cfg.device:
            print(
                f"dendrite-panoptic: --device {args.device} replaces the recorded device "
                f"({cfg.device}, used: {record['parameters'].get('device_used', '?')}); results "
                "can differ slightly from device to device",
                file=sys.stderr,
            )
            cfg = dataclasses.replace(cfg, device=args.device)
        return cfg, record
    args.channel = args.channel or 0
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
    """Segment one TIFF and write its outputs and run record; returns the written paths.

    The input is opened first (a missing or unreadable file is reported as such), then the stem
    is claimed (:func:`.segment_outputs.claim`), the outputs are checked, written into a staging
    folder and moved into place together when it closes (:func:`.segment_outputs.staging`)."""
    import datetime as dt
    import time

    from ..inference import DiskPlaneSink, run_record

    out = Path(args.out)
    outputs = output_paths(out, path.stem, args.overlay)
    stack, volume, voxel, cfg, low_memory = _open_input(path, args, cfg)
    with claim(out, path.stem), staging(out, path.stem) as stage:
        refuse_existing(out, path.stem, args.overwrite)
        staged = output_paths(stage, path.stem, args.overlay)
        started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
        with contextlib.ExitStack() as cleanup:
            sink = None
            if low_memory:
                sink = cleanup.enter_context(DiskPlaneSink(stage, path.stem, volume.shape))
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
                input_channel=getattr(args, "channel", None) or 0,
            )
            if sink is not None:  # a stack too big for memory: written plane by plane
                staged = write_low_memory(path, staged, result, sink, meta)
            else:
                write_outputs(
                    path, staged, result, volume, "Z" not in stack.axes, args.overlay, meta
                )
        written = [kind for kind, p in staged.items() if p.is_file()]  # moved as the block ends
    logger.info("%s: %d spines", path.name, len(result.table["id"]))
    return {kind: outputs[kind] for kind in written}


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
    channel = getattr(args, "channel", None) or 0
    volume = stack_zyx(stack, channel=channel)
    voxel = stack.voxel_size_um if stack.voxel_size_source != "none" else None
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
            if bar is None:  # a notice before the first tile: no bar yet
                continue
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


def cmd_segment(args: argparse.Namespace) -> int:
    """Run ``segment`` on the parsed arguments: every input file, in process or on a Dask
    cluster, with a summary CSV for several files; returns the exit status (1 if a file
    failed)."""
    from tqdm import tqdm

    from ..inference import check_model_matches
    from ..models import load_models
    from .batch import check_stems, expand_inputs, run_batch
    from .batch_summary import report_batch, summary_path

    inputs = expand_inputs(args.inputs)
    check_stems(inputs, args.out)
    check_out_folder(Path(args.out))
    summary = summary_path(args, len(inputs))
    cfg, record = segment_config(args)
    models = load_models(cfg.model, cfg.device)
    if record is not None:
        check_model_matches(record, models)
    writable_out_folder(Path(args.out))  # not before the model is known to load
    workers = _capped_workers(args.workers) if args.scheduler is None else args.workers
    outcomes = run_batch(
        segment_file,
        inputs,
        args,
        cfg,
        models=models,
        workers=workers,
        scheduler=args.scheduler,
        bar_factory=tqdm,  # several files: a bar over files; each file: a bar over its tiles
        on_done=lambda outcome: report_batch([outcome], None, final=False),
    )
    failures = report_batch(outcomes, summary, final=True)
    return 1 if failures else 0


def _capped_workers(asked: int) -> int:
    """``--workers``, at most the machine's cores (said on stderr when it is cut)."""
    import os

    cores = os.cpu_count() or 1
    if asked > cores:
        print(
            f"dendrite-panoptic: --workers {asked} is more than this machine's {cores} cores; "
            f"using {cores}",
            file=sys.stderr,
        )
        return cores
    return max(asked, 1)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``segment`` command and its options."""
    seg = command_parser(
        sub,
        "segment",
        "segment TIFF files with a model",
        "Segment the dendrites and spines of TIFF files (2D, 3D, with channels) with a model "
        "(the bundled one by default). Each file gets, in --out: <stem>_dendrite.tif, "
        "<stem>_spines.tif (labels), <stem>_spines.csv and <stem>_dendrites.csv (measurements), "
        "<stem>_spines_roi.zip (an ImageJ ROI set) and <stem>_run.json (the run record: model, "
        "settings, input). Several files get a summary CSV; one file that fails does not stop "
        "the others (exit status 1).",
        "  dendrite-panoptic segment stack.tif --out results\n"
        "  dendrite-panoptic segment 'day*/*.tif' --out results --workers 4 --overlay",
    )
    seg.add_argument(
        "inputs", nargs="+", help="TIFF files (2D, 3D, or with channels), folders or globs"
    )
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=DEVICE_HELP)
    seg.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    seg.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="(y, x) pixel size in µm, overrides the file's (default: the file's)",
    )
    seg.add_argument("--channel", type=int, default=None, help="channel to segment (default 0)")
    seg.add_argument(
        "--score-threshold", type=float, default=None, help="spine score 0-1 (default: the model's)"
    )
    seg.add_argument("--dendrite-threshold", type=float, default=None, help=DENDRITE_THRESHOLD_HELP)
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
        "--tile-size", type=int, default=1024, help="largest tile in px (a multiple of 32)"
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
        help="slab thickness in µm for --stack-mode slabs/auto (default: 3)",
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
        "--from-run",
        default=None,
        help="re-run with the settings of a <stem>_run.json record (default: the options given)",
    )
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument(
        "--workers",
        type=int,
        default=1,
        help="files in parallel (more than 1: a local Dask cluster)",
    )
    seg.add_argument(
        "--scheduler",
        default=None,
        help="send files to a Dask cluster at tcp://HOST:PORT (default: none, run here)",
    )
    seg.add_argument(
        "--summary",
        default=None,
        help="summary CSV across files (default: <out>/summary.csv for several files)",
    )
    seg.set_defaults(func=cmd_segment)
