"""``dendrite-panoptic train``: train or fine-tune the networks on a data mix, resumably."""

from __future__ import annotations

import argparse
import os


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data import data_fingerprints, training_source
    from ..models import resolve_device
    from ..training import TrainConfig, iter_fit, loader_plan, run_input_planes

    planes = run_input_planes(args.input_planes, args.base_model)
    source, description = training_source(args.data, args.crop, args.pixel_size, planes)
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
        data_description=description,
        validate_images=args.validate,
        device=args.device,
        workers=workers,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        input_planes=args.input_planes,
        freeze_norm=args.freeze_norm,
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
