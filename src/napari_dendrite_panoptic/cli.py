"""Command line: ``dendrite-panoptic segment | sample`` over the same engine as the dock widgets."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import DendritePanopticError, OutputExistsError

logger = logging.getLogger("napari_dendrite_panoptic")


def _segment_outputs(out: Path, stem: str, overlay: bool) -> dict[str, Path]:
    paths = {
        "dendrite": out / f"{stem}_dendrite.tif",
        "spines": out / f"{stem}_spines.tif",
        "csv": out / f"{stem}_spines.csv",
    }
    if overlay:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def segment_file(path: Path, args: argparse.Namespace, models, bar_factory) -> dict[str, Path]:
    """Segment one TIFF and write its outputs; returns the written paths."""
    import numpy as np

    from .inference import InferenceConfig, PanopticResult, iter_predict
    from .io import as_zyx, read_tiff, write_labels_tiff
    from .overlay import overlay_rgb, save_png
    from .tables import write_table_csv

    outputs = _segment_outputs(Path(args.out), path.stem, args.overlay)
    existing = [p for p in outputs.values() if p.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(
            f"{existing[0]} exists already; pass --overwrite to replace it or choose another --out"
        )
    stack = read_tiff(path)
    volume = as_zyx(stack, channel=args.channel)
    voxel = stack.voxel_size_um if stack.voxel_size_source != "none" else None
    if voxel is None and args.pixel_size is None:
        logger.warning("%s stores no voxel size; assuming the model's pixel size", path)
    cfg = InferenceConfig(
        model=str(args.model) if args.model else None,
        device=args.device,
        pixel_size_um=args.pixel_size,
        spine_score_threshold=args.score_threshold,
        dendrite_threshold=args.dendrite_threshold,
        tile_size=args.tile_size,
    )
    result = None
    bar = None
    for event in iter_predict(volume, voxel, cfg, models=models):
        if isinstance(event, PanopticResult):
            result = event
            continue
        if bar is None:
            bar = bar_factory(total=event.total, desc=path.name, unit="tile")
        bar.n = event.done
        bar.set_postfix_str(event.message, refresh=True)
    if bar is not None:
        bar.close()
    assert result is not None
    squeeze = "Z" not in stack.axes
    dendrite = result.dendrite[0] if squeeze else result.dendrite
    spines = result.spines[0] if squeeze else result.spines
    meta = {
        "model": result.model_name,
        "pixel_size_source": result.pixel_size_source,
        "source_image": str(path),
    }
    write_labels_tiff(outputs["dendrite"], dendrite.astype(np.uint8), result.voxel_size_um, meta)
    write_labels_tiff(outputs["spines"], spines, result.voxel_size_um, meta)
    write_table_csv(outputs["csv"], result.table)
    if args.overlay:
        save_png(
            outputs["overlay"], overlay_rgb(np.asarray(volume), result.dendrite, result.spines)
        )
    logger.info("%s: %d spines", path.name, len(result.table["id"]))
    return outputs


def _cmd_segment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .models.store import load_models

    inputs = [Path(p) for p in args.inputs]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    models = load_models(args.model, args.device)
    failures = 0
    for path in inputs:
        try:
            written = segment_file(path, args, models, tqdm)
        except DendritePanopticError as exc:
            failures += 1
            print(f"dendrite-panoptic: {path}: {exc}", file=sys.stderr)
            continue
        for p in written.values():
            print(p)
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


def build_parser() -> argparse.ArgumentParser:
    """The ``dendrite-panoptic`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dendrite-panoptic",
        description="Panoptic segmentation of dendrites and dendritic spines in TIFF stacks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment TIFF files with a model")
    seg.add_argument("inputs", nargs="+", help="TIFF files (2D, 3D, or with channels)")
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    seg.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    seg.add_argument(
        "--pixel-size", type=float, default=None, help="(y, x) pixel size in µm, overrides metadata"
    )
    seg.add_argument("--channel", type=int, default=0, help="channel to segment (default 0)")
    seg.add_argument("--score-threshold", type=float, default=0.5, help="spine score (0-1)")
    seg.add_argument("--dendrite-threshold", type=float, default=0.5, help="dendrite prob (0-1)")
    seg.add_argument("--tile-size", type=int, default=512, help="tile size in px (multiple of 32)")
    seg.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.set_defaults(func=_cmd_segment)

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
