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

from ..errors import OutputExistsError

if TYPE_CHECKING:
    from ..inference import InferenceConfig
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
    import dataclasses
    import datetime as dt
    import json
    import time

    import numpy as np

    from ..core import atomic_write_text
    from ..inference import (
        DiskPlaneSink,
        PanopticResult,
        ReleasingPlanes,
        iter_predict,
        result_bytes,
        run_record,
    )
    from ..io import as_zyx, overlay_rgb, read_tiff, save_png, write_labels_tiff, write_table_csv

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
    from ..analysis import write_analysis_outputs

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
