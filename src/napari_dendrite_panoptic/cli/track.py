"""``dendrite-panoptic track``: the same dendrites imaged in several sessions -> one id per spine
for the whole series, the fate of each spine from one session to the next, and per-branch
turnover.

Each input is an image to segment with a model (the bundled one by default), or the outputs of an
earlier ``segment`` run: its ``<stem>_spines.tif`` or ``<stem>_run.json`` (the ``_dendrite.tif``
beside it is used, the ``_spines.csv`` for detection scores, and the run's input image, when it is
still there, for registration).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .options import DEVICE_HELP, command_parser

logger = logging.getLogger("napari_dendrite_panoptic")

_SEGMENT_SUFFIXES = ("_spines.tif", "_run.json")


def _segment_stem(path: Path) -> Path | None:
    for suffix in _SEGMENT_SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return None


def _file_day(path: Path) -> dt.datetime | None:
    """The acquisition date of a TIFF from its DateTime tag, if it has one."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get("DateTime")
            return dt.datetime.strptime(str(tag.value), "%Y:%m:%d %H:%M:%S") if tag else None
    except Exception:  # noqa: BLE001 - no date is a normal case
        return None


def _scores_and_types(csv_path: Path) -> tuple[dict[int, float], dict[int, str]]:
    import csv

    scores: dict[int, float] = {}
    types: dict[int, str] = {}
    if not csv_path.is_file():
        return scores, types
    reader = None
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                i = int(row["id"])
                if row.get("score") not in (None, "", "nan"):
                    scores[i] = float(row["score"])
                if row.get("type"):
                    types[i] = row["type"]
    except KeyError:
        raise InputError(f"{csv_path} has no 'id' column: is it a segment run's table?") from None
    except UnicodeDecodeError:
        raise InputError(f"{csv_path} is not UTF-8 text") from None
    except (TypeError, ValueError) as exc:
        line = reader.line_num if reader is not None else 1
        raise InputError(f"{csv_path}, line {line}: {exc}") from None
    return scores, types


def _from_segment_run(stem: Path):
    """A session from the files of an earlier ``segment`` run; the image path it was made from."""
    import numpy as np

    from ..inference import load_record
    from ..io import read_tiff, stack_zyx
    from ..tracking import Session
    from .segment_outputs import output_paths

    files = output_paths(stem.parent, stem.name, overlay=False)
    spines_path, dendrite_path = files["spines"], files["dendrite"]
    for p in (spines_path, dendrite_path):
        if not p.is_file():
            raise InputError(f"{p} is missing: track needs both label files of a segment run")
    spines = read_tiff(spines_path)
    dendrite = np.asarray(stack_zyx(read_tiff(dendrite_path)))
    image, source = None, None
    run = files["run"]
    if run.is_file():
        given = load_record(run).get("input")
        recorded = given.get("path") if isinstance(given, dict) else None
        if isinstance(recorded, str) and Path(recorded).is_file():
            source = Path(recorded)
            image = np.asarray(stack_zyx(read_tiff(source)))
            if image.shape != dendrite.shape:
                image = None
    scores, types = _scores_and_types(files["csv"])
    session = Session(
        dendrite=dendrite,
        spines=np.asarray(stack_zyx(spines)).astype(np.uint32),
        voxel_size_um=spines.voxel_size_um,
        image=image,
        name=stem.name,
        scores=scores,
        types=types,
    )
    return session, source or spines_path


def _read_image(path: Path, channel: int):
    """The (Z, Y, X) pixels of ``channel`` of an image to segment and its voxel size (µm);
    a channel the file does not have is refused, as ``segment`` refuses it."""
    import numpy as np

    from ..io import read_tiff, stack_zyx

    stack = read_tiff(path)
    return np.asarray(stack_zyx(stack, channel=channel)), stack.voxel_size_um


def _segmented(path: Path, image, args: argparse.Namespace, state: dict[str, Any]):
    """A session from an image read by :func:`_read_image`, segmented with the model (loaded
    once)."""
    from ..inference import InferenceConfig, predict
    from ..tracking import Session

    cfg = InferenceConfig(
        model=str(args.model) if args.model else None,
        device=args.device,
        pixel_size_um=args.pixel_size,
    )
    if "models" not in state:
        from ..models import load_models

        state["models"] = load_models(cfg.model, cfg.device)
    volume, voxel = image
    result = predict(volume, voxel, cfg, models=state["models"])
    state["model"] = result.model_name
    table = result.table
    scores = {int(i): float(s) for i, s in zip(table["id"], table["score"], strict=True)}
    session = Session(
        dendrite=result.dendrite,
        spines=result.spines,
        voxel_size_um=result.voxel_size_um,
        image=volume,
        name=path.stem,
        scores=scores,
    )
    return session


def _days(args: argparse.Namespace, files: list[Path]) -> tuple[list[float | None], str]:
    n = len(files)
    if args.days:
        try:
            days = [float(v) for v in args.days.split(",")]
        except ValueError as exc:
            raise InputError(
                f"--days must be numbers separated by commas, got {args.days!r}"
            ) from exc
        if len(days) != n:
            raise InputError(f"--days gives {len(days)} days for {n} sessions")
        return days, "--days"
    stamps = [_file_day(f) for f in files]
    if all(stamps):
        return [(s - stamps[0]).total_seconds() / 86400 for s in stamps], "TIFF DateTime tags"
    return [None] * n, "unknown (per-day rates are NaN; give --days)"


def cmd_track(args: argparse.Namespace) -> int:
    """Run ``track``: load or segment every session, track, write the outputs."""
    from .. import __version__
    from ..tracking import TrackConfig, TrackResult, iter_track, track_outputs, write_track_outputs

    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    paths = [Path(p) for p in args.inputs]
    if len(paths) < 2:
        raise InputError("track needs at least two sessions")
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p} does not exist")
    out = Path(args.out)
    names = [(_segment_stem(p) or p.with_suffix("")).name for p in paths]
    if not args.overwrite:
        taken = [p for p in track_outputs(out, names).values() if p.exists()]
        if taken:
            from ..errors import OutputExistsError

            raise OutputExistsError(f"{taken[0]} exists (use --overwrite to replace it)")
    stems = [_segment_stem(p) for p in paths]
    # every input and setting is read and checked (a segment run's label files, an image's
    # channel, the days, the matching distance) before the first image is segmented, so bad
    # input costs no segmentation
    loaded = [
        _from_segment_run(stem) if stem else _read_image(p, args.channel)
        for p, stem in zip(paths, stems, strict=True)
    ]
    sources = [item[1] if stem else p for p, stem, item in zip(paths, stems, loaded, strict=True)]
    days, day_source = _days(args, sources)
    cfg = TrackConfig(max_distance_um=args.max_distance, max_gap=args.max_gap)
    state: dict[str, Any] = {}
    sessions, inputs = [], []
    for k, (p, stem, item, day) in enumerate(zip(paths, stems, loaded, days, strict=True)):
        print(f"session {k + 1}: {'reading' if stem else 'segmenting'} {p}", file=sys.stderr)
        session = item[0] if stem else _segmented(p, item, args, state)
        session.day = day
        sessions.append(session)
        inputs.append({"path": str(p), "how": "segment outputs" if stem else "segmented"})
    result = None
    for event in iter_track(sessions, cfg):
        if isinstance(event, TrackResult):
            result = event
        else:
            print(f"[{event.done}/{event.total}] {event.step}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    record = {
        "software": {"name": "napari-dendrite-panoptic", "version": __version__},
        "command": "track",
        "started": started.isoformat(),
        "duration_s": round(time.perf_counter() - t0, 3),
        "inputs": inputs,
        "model": state.get("model"),
        "days": days,
        "days_from": day_source,
        "parameters": {
            "max_distance_um": cfg.max_distance_um,
            "uncertain_score": cfg.uncertain_score,
            "uncertain_quality": cfg.uncertain_quality,
            "border_um": cfg.border_um,
            "max_gap": cfg.max_gap,
        },
        "registration": [
            {
                "session": k + 1,
                "quality": round(float(r.quality), 4),
                "rotation_deg": round(float(r.rotation_deg), 3),
                "blocks": int(len(r.nodes_um)),
            }
            for k, r in enumerate(result.registrations)
        ],
    }
    written = write_track_outputs(result, out, record, overwrite=args.overwrite)
    for p in written.values():
        print(p)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``track`` command and its options."""
    trk = command_parser(
        sub,
        "track",
        "track spines over imaging sessions: persistent ids, gained/lost/stable, turnover",
        __doc__.replace("``", "'"),
        "  dendrite-panoptic track day0.tif day2.tif day7.tif --out tracks --days 0,2,7\n"
        "  dendrite-panoptic track out/day0_run.json out/day2_run.json --out tracks",
    )
    trk.add_argument(
        "inputs",
        nargs="+",
        help="one TIFF per session (image, or a segment "
        "run's _spines.tif / _run.json), in time order; the first is the reference",
    )
    trk.add_argument("--out", required=True, help="output folder")
    trk.add_argument(
        "--days",
        help="day of each session, comma-separated (e.g. 0,2,7); default "
        "from the TIFFs' DateTime tags",
    )
    trk.add_argument(
        "--max-distance",
        type=float,
        default=1.5,
        help="farthest (µm, after registration) one spine may be from itself in the "
        "session before (default 1.5)",
    )
    trk.add_argument(
        "--max-gap",
        type=int,
        default=1,
        help="sessions in a row a spine may be missed and, found again, keep its id "
        "(0: match consecutive sessions only)",
    )
    trk.add_argument("--model", help="model folder or name for images (default: the bundled model)")
    trk.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=DEVICE_HELP)
    trk.add_argument(
        "--pixel-size",
        type=float,
        help="pixel size in µm when the TIFF has none (default: the model's)",
    )
    trk.add_argument(
        "--channel", type=int, default=0, help="channel of the images to segment (default 0)"
    )
    trk.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    trk.set_defaults(func=cmd_track)
