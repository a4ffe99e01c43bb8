"""``dendrite-panoptic train``: train or fine-tune the networks on a data mix, resumably."""

from __future__ import annotations

import argparse
import dataclasses
import os

from ..errors import InputError
from .options import DEVICE_HELP, add_training_choices, command_parser


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data import data_fingerprints, training_source
    from ..models import resolve_device
    from ..training import TrainConfig, iter_fit, loader_plan, run_input_planes

    if args.max_minutes is not None and not args.max_minutes > 0:
        raise InputError(f"--max-minutes must be more than 0, not {args.max_minutes}")
    planes = run_input_planes(args.input_planes, args.base_model)
    on_gpu = resolve_device(args.device).type == "cuda"
    cpus = os.cpu_count() or 1
    workers, threads = loader_plan(args.workers, args.threads, on_gpu, cpus, args.which)
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
        threads=threads,
        validate_images=args.validate,
        device=args.device,
        workers=workers,
        max_seconds=args.max_minutes * 60 if args.max_minutes is not None else None,
        input_planes=args.input_planes,
        freeze_norm=args.freeze_norm,
        precision=args.precision,
        layers=args.layers,
    )
    # the data sets are read once the settings are known to be usable
    source, description = training_source(args.data, args.crop, args.pixel_size, planes)
    cfg = dataclasses.replace(cfg, data_description=description)
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` command and its options."""
    from ..data import DEFAULT_MIX

    tr = command_parser(
        sub,
        "train",
        "train or fine-tune the spine and dendrite networks",
        "Train the spine (Mask R-CNN) and dendrite (FCN) networks, or fine-tune a model "
        "(--base-model), on a weighted mix of sources: the synthetic generator and the real data "
        "sets (found through the DENDRITE_PANOPTIC_DATA setting); to fine-tune on your own "
        "corrected images, use 'fine-tune'. "
        "Checkpoints in --work let a stopped run resume; the new model folder, with its model "
        "card, is written to --out at the end.",
        "  dendrite-panoptic train --out my_model --work ckpt --steps 2000\n"
        "  dendrite-panoptic train --out tuned --work ckpt2 --base-model my_model "
        "--data generator:1 --steps 200 --freeze-norm",
    )
    tr.add_argument("--out", required=True, help="new model folder to write")
    tr.add_argument("--work", required=True, help="folder for the resumable checkpoint")
    tr.add_argument(
        "--data",
        default=DEFAULT_MIX,
        help="sources and their weights, comma-separated SOURCE:WEIGHT; sources: generator, "
        "generator3d, generator-slabs (projections of generated stacks' slabs), yolo11, findspines, findspines-negatives (crops on bright blobs far from "
        "every click), smirnov",
    )
    tr.add_argument(
        "--steps", type=int, default=2000, help="training steps (the schedule's length)"
    )
    tr.add_argument(
        "--until",
        type=int,
        default=None,
        help="stop at this step, keeping the schedule of --steps (default: at --steps)",
    )
    tr.add_argument("--batch-size", type=int, default=2, help="images per step")
    tr.add_argument("--crop", type=int, default=256, help="crop size in px")
    tr.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    tr.add_argument("--warmup", type=int, default=100, help="steps of learning-rate warm-up")
    add_training_choices(tr)
    tr.add_argument(
        "--base-model", default=None, help="model folder to fine-tune (default: train anew)"
    )
    tr.add_argument("--pixel-size", type=float, default=0.08, help="native pixel size in µm")
    tr.add_argument(
        "--checkpoint-every", type=int, default=25, help="steps between resumable checkpoints"
    )
    tr.add_argument("--seed", type=int, default=0, help="random seed (data order, crops)")
    tr.add_argument(
        "--validate", type=int, default=4, help="held-out generator images scored at the end"
    )
    tr.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: all cores; with --which dendrites on the CPU, the cores "
        "the batch worker leaves)",
    )
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=DEVICE_HELP)
    tr.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes drawing batches ahead (default: 2 on the CPU, all cores but two on a GPU)",
    )
    tr.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="time budget: stop and save when spent (the learning rate decays over it) "
        "(default: no limit)",
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
    tr.add_argument(
        "--freeze-norm",
        action="store_true",
        help="keep the base model's BatchNorm statistics and normalise with them while "
        "training (for fine-tuning with small batches; needs --base-model)",
    )
    tr.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="forward arithmetic while training: auto is bfloat16 where the CPU (AVX512-BF16, "
        "AMX) or GPU computes it natively, else float32; weights stay float32",
    )
    tr.add_argument("--name", default="dendrite-panoptic", help="the new model's name")
    tr.add_argument("--model-version", default="0.1", help="the new model's version")
    tr.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the checkpoint in --work",
    )
    tr.set_defaults(func=cmd_train)
