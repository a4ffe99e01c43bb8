"""Time the panoptic pipeline per 1024x1024 plane, and the backbone choice, on this machine.

    .venv/bin/python benchmarks/bench_inference.py [--model FOLDER] [--runs 3] [--big]

Prints a table: seconds per plane (median of --runs after one warm-up) and planes/s for
(a) this plugin's pipeline with the given model (read from memory -> both networks -> merge ->
labels), and (b) the paper's architecture, torchvision maskrcnn_resnet50_fpn with its default
transform plus fcn_resnet50 (random weights: speed does not depend on them). ``--backbones``
also times the spine network's trunk options on one 512x512 tile. ``--big`` segments one
4096x4096 plane and reports its time and the peak resident memory.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import numpy as np
import torch


def _median_time(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _plane(size: int) -> np.ndarray:
    from napari_dendrite_panoptic import synthetic

    cfg = synthetic.SyntheticConfig(shape=(1, size, size), pixel_size_um=0.08, n_dendrites=3)
    return synthetic.generate(0, cfg).image


def bench_ours(model: str | None, runs: int, size: int) -> float:
    from napari_dendrite_panoptic.inference import InferenceConfig, predict
    from napari_dendrite_panoptic.models.store import load_models

    image = _plane(size)
    models = load_models(model, "cpu")
    cfg = InferenceConfig(device="cpu")
    return _median_time(lambda: predict(image, (1.0, 0.08, 0.08), cfg, models), runs)


def bench_paper(runs: int, size: int) -> float:
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.models.segmentation import fcn_resnet50

    det = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    seg = fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False).eval()
    image = torch.rand(3, size, size)

    @torch.inference_mode()
    def run() -> None:
        det([image])
        seg(image[None])

    return _median_time(run, runs)


def bench_backbones(runs: int) -> list[tuple[str, float]]:
    from napari_dendrite_panoptic.models.builders import build_spine_model, count_parameters

    rows = []
    tile = torch.rand(1, 1, 512, 512)
    for trunk in ("resnet18", "resnet34"):
        model = build_spine_model({"trunk": trunk}).eval()
        with torch.inference_mode():
            t = _median_time(lambda m=model: m.backbone(tile), runs)
        rows.append(
            (
                f"spine trunk {trunk} + FPN, 512x512 tile ({count_parameters(model) / 1e6:.1f} M params)",
                t,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--big", action="store_true")
    parser.add_argument("--backbones", action="store_true")
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}"
    )
    rows = [("(a) this plugin, bundled pipeline", bench_ours(args.model, args.runs, args.size))]
    if not args.skip_paper:
        rows.append(
            ("(b) paper: maskrcnn_resnet50_fpn + fcn_resnet50", bench_paper(args.runs, args.size))
        )
    print(f"\n| pipeline ({args.size}x{args.size} plane, CPU) | s/plane | planes/s |")
    print("|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {1 / t:.3f} |")
    if len(rows) == 2:
        print(f"\nratio (a)/(b) planes/s: {rows[1][1] / rows[0][1]:.2f}")
    if args.backbones:
        print("\n| backbone (forward only) | s/tile |")
        print("|---|---|")
        for name, t in bench_backbones(args.runs):
            print(f"| {name} | {t:.3f} |")
    if args.big:
        from napari_dendrite_panoptic.inference import InferenceConfig, predict

        image = _plane(4096)
        t0 = time.perf_counter()
        result = predict(image, (1.0, 0.08, 0.08), InferenceConfig(model=args.model, device="cpu"))
        dt = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"\n4096x4096 plane: {dt:.1f} s, {len(result.table['id'])} spines, "
            f"peak resident memory of the process {peak:.0f} MiB"
        )


if __name__ == "__main__":
    main()
