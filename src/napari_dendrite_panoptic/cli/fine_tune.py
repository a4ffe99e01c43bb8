"""``dendrite-panoptic fine-tune``: what the "Train on corrections" dock does, for corrected
label TIFFs on disk: check each (image, dendrite labels, spine labels) triple, fine-tune a
model on them for some minutes or epochs, choose its thresholds on them, and write the new
model folder (with the corrections saved in it first). Ctrl-C stops after the current batch
and saves the model reached so far; a second Ctrl-C aborts.

Heavy modules (torch via the engine, tqdm) are imported inside the functions.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from .batch import OWN_OUTPUT_SUFFIXES
from .options import add_training_choices, command_parser

LABEL_SUFFIXES = dict(zip(("dendrite", "spines"), OWN_OUTPUT_SUFFIXES, strict=True))
"""The corrected labels of ``<stem>.tif`` are ``<stem>_dendrite.tif`` and ``<stem>_spines.tif``,
the names ``segment`` writes."""


def cmd_fine_tune(args: argparse.Namespace) -> int:
    """Run the command (see :func:`add_parser`); 0 when a model folder was written."""
    from ..models import ModelCard, bundled_model_dir
    from ..training import fine_tune_config, iter_fine_tune

    _check_numbers(args)
    out = _new_model_folder(args)
    base = Path(args.base_model) if args.base_model else bundled_model_dir()
    native = ModelCard.load(base).pixel_size_um
    train, held, raw, notes = _corrections(args, native)
    config = fine_tune_config(
        str(base),
        out,
        train,
        native,
        which=args.which,
        lr=args.lr,
        minutes=None if args.epochs is not None else args.minutes,
        epochs=args.epochs,
        name=args.name or out.name,
        held_out=[v.name for v in held],
        freeze_norm=args.freeze_norm,
        layers=args.layers,
    )
    for note in notes:
        print(note, file=sys.stderr)
    with _stop_on_ctrl_c() as stop:
        events = iter_fine_tune(config, train, held, raw, stop.is_set, args.thresholds)
        outcome, calibration = _follow(events, config)
    _report(outcome, calibration, config, train)
    return 0


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse a length, pixel size or z-step that is not above 0, before any file is read."""
    if args.epochs is not None and args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, not {args.epochs}")
    for flag, value in (
        ("--minutes", args.minutes),
        ("--pixel-size", args.pixel_size),
        ("--z-step", args.z_step),
    ):
        if value is not None and not value > 0:
            raise InputError(f"{flag} must be more than 0, not {value}")


def _new_model_folder(args: argparse.Namespace) -> Path:
    """``--out``, or ``--name`` in the user models folder; refused when it exists."""
    from ..models import user_model_folder

    name = args.name or datetime.now().strftime("fine-tuned-%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else user_model_folder(name)
    if out.exists():
        unfinished = (out / "corrections").is_dir() and not (out / "card.json").exists()
        why = " (a run that did not finish: its corrections are in it)" if unfinished else ""
        raise InputError(
            f"'{out}' exists already{why}; name a new model folder (a model folder is never "
            "overwritten)"
        )
    return out


def _corrections(args: argparse.Namespace, native_px_um: float) -> tuple[list, list, list, list]:
    """The training volumes, the held-out volumes, the training triples' arrays (saved with the
    model) and notes for the user, from the images and their labels on disk."""
    from ..data import pixel_size_notes

    images, held_out = _images(args.images), _images(args.held_out)
    paths = [p.resolve() for p in (*images, *held_out)]
    if len(set(paths)) < len(paths):
        raise InputError("an image is given twice (to train on and held out, or twice)")
    train, held, raw, notes = [], [], [], []
    for path in images:
        volume, arrays, more = _corrected(path, args)
        train.append(volume)
        raw.append(arrays)
        notes += more
    for path in held_out:
        volume, _, more = _corrected(path, args, held_out=True)
        held.append(volume)
        notes += more
    notes += pixel_size_notes(train, held, native_px_um)
    return train, held, raw, notes


def _images(items: list[str]) -> list[Path]:
    """The images ``items`` name (files, folders' TIFFs, glob patterns, as ``segment`` takes
    them), without the label files of an image among them."""
    from .batch import expand_inputs

    paths = expand_inputs(items) if items else []
    stems = {p.stem for p in paths}

    def of_an_image(p: Path) -> bool:
        return any(p.name.endswith(s) and p.name[: -len(s)] in stems for s in OWN_OUTPUT_SUFFIXES)

    return [p for p in paths if not of_an_image(p)]


def _corrected(
    path: Path, args: argparse.Namespace, held_out: bool = False
) -> tuple[Any, dict[str, Any], list[str]]:
    """One image and its corrected labels as a checked volume (with ``--only-edited``, of the
    planes edited since ``segment`` wrote them, unless ``held_out``), the arrays saved with the
    model, and notes (what the reader chose, ids read as one dendrite, every plane used)."""
    from ..core import mask_to_instances
    from ..data import SemanticSpinesError, judged_held_out, prepare_volume

    stack, image, dendrite, spines, folder = _read_triple(path, args)
    z_um, px_um = _voxel(stack, args)
    notes = list(stack.notes)
    if args.split_components and spines.max() == 1:
        spines = mask_to_instances(spines)
        notes.append(f"'{path.stem}_spines.tif': split into {spines.max()} connected components")
    needed = held_out or args.only_edited  # hashing every plane costs a pass over the labels
    edited = _edited_since_segment(path, folder, dendrite, spines) if needed else None
    planes = None
    if args.only_edited and not held_out:
        planes, note = _only_edited(path, edited, args.which)
        notes += [note] if note else []
    image, dendrite, spines = (a[0] if a.shape[0] == 1 else a for a in (image, dendrite, spines))
    try:
        volume, more = prepare_volume(
            path.name, image, dendrite, spines, px_um, args.which, planes, z_step_um=z_um
        )
    except SemanticSpinesError as exc:
        raise InputError(f"{exc} (--split-components does)") from None
    if held_out and edited is not None:  # labels left as segment wrote them judge nothing
        unedited = [role for role, found in edited.items() if not found]
        volume, note = judged_held_out(volume, unedited, args.which)
        more += [note] if note else []
    voxel = (z_um or 1.0, px_um, px_um) if px_um else None
    arrays = {
        "name": path.stem,
        "image": image,
        "dendrite": dendrite,
        "spines": spines,
        "voxel_size_um": voxel,
    }
    return volume, arrays, [*notes, *more]


def _read_triple(path: Path, args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Path]:
    """The read image stack, its ``--channel`` and its two label files as (Z, Y, X) arrays, and
    the folder the labels are in."""
    import numpy as np

    from ..io import read_tiff, stack_zyx

    if not path.is_file():
        raise InputError(f"'{path}' does not exist or is not a file")
    labels = {role: _label_path(path, args.labels, role) for role in LABEL_SUFFIXES}
    stack = read_tiff(path)
    image = np.asarray(stack_zyx(stack, channel=args.channel))
    dendrite = np.asarray(stack_zyx(read_tiff(labels["dendrite"])))
    spines = np.asarray(stack_zyx(read_tiff(labels["spines"])))
    return stack, image, dendrite, spines, labels["dendrite"].parent


def _edited_since_segment(
    image: Path, folder: Path, dendrite: Any, spines: Any
) -> dict[str, list[int]] | None:
    """The planes of the (Z, Y, X) ``dendrite`` and ``spines`` labels of ``image`` that differ
    from what ``segment`` wrote (keys "dendrites", "spines"), by the plane hashes of its run
    record ``<stem>_run.json`` in ``folder``; None without such a record."""
    import json

    from ..core import LABEL_HASHES
    from ..data import edited_planes

    record = folder / f"{image.stem}_run.json"
    try:
        hashes = json.loads(record.read_text(encoding="utf-8")).get(LABEL_HASHES)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"cannot read the run record '{record}': {exc}") from None
    if not isinstance(hashes, dict):
        return None
    layers = {"dendrites": (dendrite, "dendrite"), "spines": (spines, "spines")}
    return {
        role: edited_planes(labels, list(hashes.get(key) or []))
        for role, (labels, key) in layers.items()
    }


def _only_edited(
    image: Path, edited: dict[str, list[int]] | None, which: str
) -> tuple[list[int] | None, str | None]:
    """The planes to train on with ``--only-edited``: those edited in the labels whose network
    trains (``which``); (None, a note) without ``segment``'s record, every plane then used.
    Refused when no plane was edited."""
    if edited is None:
        return None, (
            f"'{image.name}': no run record of 'segment' with its labels' plane hashes beside "
            "the labels, so every plane is used."
        )
    roles = ("dendrites", "spines") if which == "both" else (which,)
    planes = sorted(set().union(*(edited[r] for r in roles)))
    if not planes:
        raise InputError(
            f"'{image.name}': no plane was edited since 'segment' wrote its labels; correct "
            "some planes first, or leave out --only-edited"
        )
    return planes, None


def _label_path(image: Path, folder: str | None, role: str) -> Path:
    """Where the corrected ``role`` labels of ``image`` are; refused when absent."""
    where = Path(folder) if folder else image.parent
    path = where / f"{image.stem}{LABEL_SUFFIXES[role]}"
    if not path.is_file():
        raise InputError(
            f"no corrected {role} labels for '{image.name}': expected {path} (the names "
            "'segment' writes; --labels names the folder)"
        )
    return path


def _voxel(stack: Any, args: argparse.Namespace) -> tuple[float | None, float | None]:
    """(z-step, pixel size) in µm: the flags, else the file's metadata, else None (unknown)."""
    known = stack.voxel_size_source != "none"
    px = args.pixel_size
    if px is None and known:
        px = stack.voxel_size_um[1]
    z = args.z_step
    if z is None and known and "Z" in stack.axes:
        z = stack.voxel_size_um[0]
    return z, px


@contextlib.contextmanager
def _stop_on_ctrl_c() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (the run then stops after the current batch and saves
    the model reached so far); a second Ctrl-C interrupts at once. Outside the main thread
    (where signals cannot be caught) the event is only set by the caller."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("stopping after this batch (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow(events: Iterator[Any], config: Any) -> tuple[Any, Any]:
    """Show a run's events on a progress bar; return its last event (None when it ended without
    a model folder) and its threshold choices (None when not chosen)."""
    from tqdm import tqdm

    from ..training import progress_text

    timed = config.max_seconds is not None
    bar = tqdm(total=int(config.max_seconds) if timed else config.steps, desc="fine-tuning")
    bar.set_postfix_str("saving the corrections")
    outcome = calibration = None
    for event in events:
        if isinstance(event, tuple):
            if event[0] == "calibrated":
                calibration = event[1]
            continue
        outcome = event
        bar.n = min(bar.total, int(event.elapsed_s) if timed else event.step)
        text = progress_text(event)
        if event.kind == "validation":
            tqdm.write(text)
        elif text:
            bar.set_postfix_str(text)
        bar.refresh()
    bar.close()
    return outcome, calibration


def _report(outcome: Any, calibration: Any, config: Any, train: list) -> None:
    """Print how the run ended, where its model is, its passes, thresholds and verdict."""
    from ..data import steps_per_epoch
    from ..training import (
        calibration_text,
        drop_checkpoint,
        held_out_verdict,
        passes_text,
        saved_text,
    )

    if outcome is None or not outcome.model_folder:
        raise InputError("the run ended before a model was saved")
    if outcome.kind == "done":
        drop_checkpoint(Path(config.work_dir))
    per_epoch = steps_per_epoch(train, config.crop_size, config.pixel_size_um, config.batch_size)
    kept, worse = held_out_verdict(outcome, config.which)
    print(saved_text(outcome))
    for line in (passes_text(outcome.step, per_epoch), calibration_text(calibration), kept):
        if line:
            print(line)
    if worse:
        print(f"warning: {worse}", file=sys.stderr)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``fine-tune`` command and its options."""
    ft = command_parser(
        sub,
        "fine-tune",
        "fine-tune a model on your corrected labels",
        "Fine-tune the spine and dendrite networks on images whose labels you corrected, as "
        "napari's 'Train on corrections' dock does: each IMAGE.tif needs IMAGE_dendrite.tif "
        "and IMAGE_spines.tif (the names 'segment' writes) beside it or in --labels. The "
        "corrections are saved in the new model folder first; after training, the spine "
        "threshold (and, on corrected --held-out images, the dendrite threshold) is chosen on "
        "them and written into the new model's card, which 'segment --model' then uses. "
        "Ctrl-C stops after the current batch and saves the model reached so far.",
        "  dendrite-panoptic segment a.tif b.tif --out results\n"
        "  (correct results/a_spines.tif, results/b_spines.tif ... in napari or Fiji)\n"
        "  dendrite-panoptic fine-tune a.tif b.tif --labels results --out my_lab --minutes 5\n"
        "  dendrite-panoptic segment c.tif --out results --model my_lab",
    )
    ft.add_argument(
        "images",
        nargs="+",
        help="corrected images to train on: TIFF files, folders (their TIFFs, without the "
        "label files of an image among them) or glob patterns",
    )
    ft.add_argument(
        "--labels",
        default=None,
        help="folder with the corrected labels (default: each image's own folder)",
    )
    ft.add_argument(
        "--held-out",
        action="append",
        default=[],
        metavar="IMAGE",
        help="a corrected image scored while training, not trained on (repeat for several); "
        "with 100 corrected spines or more in all they choose the step kept and the "
        "thresholds (default: none)",
    )
    ft.add_argument(
        "--out",
        default=None,
        help="the new model folder (default: --name in the user models folder, where napari's "
        "model pickers find it)",
    )
    ft.add_argument(
        "--name",
        default=None,
        help="the new model's name (default: the --out folder's name, else fine-tuned-DATE-TIME)",
    )
    ft.add_argument(
        "--base-model",
        default=None,
        help="model folder to start from (default: the bundled model)",
    )
    length = ft.add_mutually_exclusive_group()
    length.add_argument(
        "--minutes",
        type=float,
        default=5.0,
        help="training time; the learning rate decays over it (about a minute and a quarter "
        "per corrected 512² image on a 2-core CPU did well)",
    )
    length.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the corrected planes instead of minutes (about 45 did well) "
        "(default: use --minutes)",
    )
    add_training_choices(ft)
    ft.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    ft.add_argument(
        "--freeze-norm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the base model's normalisation statistics (batches of 2 are too few to "
        "re-estimate them)",
    )
    ft.add_argument(
        "--thresholds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="choose the spine score and dendrite thresholds on the corrections after training",
    )
    ft.add_argument(
        "--only-edited",
        action="store_true",
        help="train only on the planes whose labels you changed since 'segment' wrote them (its "
        "run record <stem>_run.json beside the labels keeps a hash of each plane), so untouched "
        "planes of a stack don't teach the model its own mistakes; held-out images use every "
        "plane",
    )
    ft.add_argument(
        "--split-components",
        action="store_true",
        help="split spine labels that are a 0/1 mask into instances (connected components)",
    )
    ft.add_argument("--channel", type=int, default=0, help="channel of the images to train on")
    ft.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="pixel size in µm (default: the image's metadata, else the model's)",
    )
    ft.add_argument(
        "--z-step",
        type=float,
        default=None,
        help="distance between a stack's planes in µm (default: the image's metadata, else "
        "slabs of 4 planes)",
    )
    ft.set_defaults(func=cmd_fine_tune)
