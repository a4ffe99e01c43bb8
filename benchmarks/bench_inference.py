"""Time the whole panoptic pipeline per 1024x1024 plane, side by side with the peers.

    .venv/bin/python benchmarks/bench_inference.py [--device cpu|cuda] [--runs 3] [--size 1024]
        [--only a,b,c] [--model FOLDER] [--backbones] [--big] [--check-deepd3]

Each pipeline runs in its own process (so that its peak memory is its own) on the same
synthetic plane, saved once as a TIFF: read the TIFF → both networks → merge → label images.
Reported: seconds per plane (median of ``--runs`` after one warm-up run), planes/s, peak memory
(resident set of the process on the CPU; ``torch.cuda.max_memory_allocated`` on a GPU), and the
ratios of (a) to the others in planes/s.

(a) this plugin's pipeline with the bundled model (or ``--model``), `inference.predict`;
(b) the paper's architecture: torchvision ``maskrcnn_resnet50_fpn`` with its default transform
    plus ``fcn_resnet50``, random weights (speed does not depend on them), the plane repeated to
    3 channels as those networks expect, masks thresholded and labelled;
(c) DeepD3's dual-decoder U-Net with 32 base filters (the model zoo's "32F"), re-implemented in
    PyTorch from its published layer layout (``deepd3_unet.py``; ``--check-deepd3`` compares its
    parameter count with the Keras model's), on the whole plane, then DeepD3's simple
    post-processing (threshold, connected components of the spine map);
(f) (a) with ``test_time_flips`` (``segment --flips``): each plane in four mirror views
    (``--only a,f``).

``--backbones`` also times the spine network's trunk options on one 512x512 tile; ``--big``
segments one 4096x4096 plane with (a) and reports time and peak memory; ``--profile`` says
where (a)'s time goes on one plane after a warm-up: the operators that take most of it
(``torch.profiler``, the device's own time on a GPU) and the plugin's Python functions
(``cProfile``, cumulative), to find what keeps a GPU from 30 planes/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
NAMES = {
    "a": "(a) this plugin, bundled pipeline",
    "b": "(b) paper: maskrcnn_resnet50_fpn + fcn_resnet50",
    "c": "(c) DeepD3 dual-decoder U-Net, 32F (PyTorch re-implementation)",
    "f": "(f) this plugin with --flips (four mirror views vote)",
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_time(fn, runs: int, device: str) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _write_plane(size: int, folder: Path) -> Path:
    from napari_dendrite_panoptic.data import synthetic
    from napari_dendrite_panoptic.io import write_tiff_atomic

    cfg = synthetic.SyntheticConfig(shape=(1, size, size), pixel_size_um=0.08, n_dendrites=3)
    image = synthetic.generate(0, cfg).image[0]
    return write_tiff_atomic(folder / f"plane_{size}.tif", image, (1.0, 0.08, 0.08))


def _read(path: Path) -> np.ndarray:
    from napari_dendrite_panoptic.io import read_tiff, stack_zyx

    return np.asarray(stack_zyx(read_tiff(path)))[0]


def pipeline_ours(path: Path, device: str, model: str | None, flips: bool = False):
    from napari_dendrite_panoptic.inference import InferenceConfig, predict
    from napari_dendrite_panoptic.models import load_models

    models = load_models(model, device)
    cfg = InferenceConfig(model=model, device=device, test_time_flips=flips)

    def run() -> None:
        predict(_read(path), (1.0, 0.08, 0.08), cfg, models)

    return run


def pipeline_ours_flips(path: Path, device: str, model: str | None):
    return pipeline_ours(path, device, model, flips=True)


def pipeline_paper(path: Path, device: str, model: str | None):
    from skimage.measure import label
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.models.segmentation import fcn_resnet50

    det = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval().to(device)
    seg = fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False).eval().to(device)

    @torch.inference_mode()
    def run() -> None:
        plane = torch.from_numpy(_read(path).astype(np.float32))
        plane = ((plane - plane.min()) / (plane.max() - plane.min() + 1e-6)).to(device)
        rgb = plane[None].expand(3, -1, -1)
        out = det([rgb])[0]
        dendrite = seg(rgb[None])["out"].argmax(1)[0].cpu().numpy()
        spines = np.zeros(plane.shape, np.int32)
        for i, m in enumerate((out["masks"][:, 0] > 0.5).cpu().numpy(), start=1):
            spines[m & (spines == 0)] = i
        label(dendrite > 0)

    return run


def pipeline_deepd3(path: Path, device: str, model: str | None):
    from skimage.measure import label

    sys.path.insert(0, str(HERE))
    from deepd3_unet import DeepD3UNet

    net = DeepD3UNet(filters=32).eval().to(device)

    @torch.inference_mode()
    def run() -> None:
        plane = _read(path).astype(np.float32)
        h, w = plane.shape
        ph, pw = -h % 32, -w % 32  # DeepD3 pads planes to a multiple of 32
        plane = np.pad((plane - plane.min()) / (np.ptp(plane) + 1e-6) * 2 - 1, ((0, ph), (0, pw)))
        x = torch.from_numpy(plane)[None, None].to(device)
        dendrite, spines = (t[0, 0, :h, :w].cpu().numpy() for t in net(x))
        label(spines > 0.5)
        label(dendrite > 0.5)

    return run


PIPELINES = {
    "a": pipeline_ours,
    "b": pipeline_paper,
    "c": pipeline_deepd3,
    "f": pipeline_ours_flips,
}


def _peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(key: str, path: Path, device: str, runs: int, model: str | None) -> None:
    """Time one pipeline in this process; print one JSON line."""
    run = PIPELINES[key](path, device, model)
    seconds = _median_time(run, runs, device)
    print(json.dumps({"key": key, "seconds": seconds, "peak_mib": _peak_mib(device)}))


def profile_ours(path: Path, device: str, model: str | None, rows: int = 15) -> None:
    """Print where one plane of pipeline (a) spends its time, after a warm-up run: the top
    operators by self time (on the device with CUDA) and the plugin's functions by cumulative
    time."""
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity, profile

    run = pipeline_ours(path, device, model)
    run()  # warm-up: model loading, kernel choice
    _sync(device)
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run()
        _sync(device)
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"\noperators of one plane, by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=rows))
    stats = cProfile.Profile()
    stats.runcall(lambda: (run(), _sync(device)))
    print("the plugin's functions of one plane, by cumulative time:")
    pstats.Stats(stats).sort_stats("cumulative").print_stats("napari_dendrite_panoptic", rows)


def bench_backbones(runs: int, device: str) -> list[tuple[str, float]]:
    from napari_dendrite_panoptic.models import build_spine_model
    from napari_dendrite_panoptic.models.builders import count_parameters

    rows = []
    tile = torch.rand(1, 1, 512, 512, device=device)
    for trunk in ("resnet18", "resnet34"):
        model = build_spine_model({"trunk": trunk}).eval().to(device)
        with torch.inference_mode():
            t = _median_time(lambda m=model: m.backbone(tile), runs, device)
        params = count_parameters(model) / 1e6
        rows.append((f"spine trunk {trunk} + FPN, 512x512 tile ({params:.1f} M params)", t))
    return rows


def check_deepd3() -> None:
    sys.path.insert(0, str(HERE))
    from deepd3_unet import DeepD3UNet, keras_parameter_count, torch_parameter_count

    ours, keras = torch_parameter_count(DeepD3UNet(32)), keras_parameter_count(32)
    print(f"DeepD3 32F parameters: PyTorch {ours:,} (incl. BN statistics), Keras layout {keras:,}")
    if ours != keras:
        raise SystemExit("parameter counts differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--only", default="a,b,c", help="pipelines to time, e.g. a,c")
    parser.add_argument("--big", action="store_true")
    parser.add_argument("--backbones", action="store_true")
    parser.add_argument("--check-deepd3", action="store_true")
    parser.add_argument("--profile", action="store_true", help="where (a)'s time goes")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plane", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.plane), args.device, args.runs, args.model)
        return
    if args.check_deepd3:
        check_deepd3()
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}" + (f", GPU {gpu}" if gpu else "")
    )
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plane = _write_plane(args.size, Path(tmp))
        for key in args.only.split(","):
            cmd = [sys.executable, __file__, "--child", key, "--plane", str(plane)]
            cmd += ["--device", args.device, "--runs", str(args.runs)]
            if args.model:
                cmd += ["--model", args.model]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows[key] = json.loads(out.strip().splitlines()[-1])
    print(
        f"\n| pipeline ({args.size}x{args.size} plane, {args.device}) | s/plane | planes/s | peak MiB |"
    )
    print("|---|---|---|---|")
    for key, row in rows.items():
        s = row["seconds"]
        print(f"| {NAMES[key]} | {s:.3f} | {1 / s:.2f} | {row['peak_mib']:.0f} |")
    if "a" in rows:
        for other in ("b", "c", "f"):
            if other in rows:
                ratio = rows[other]["seconds"] / rows["a"]["seconds"]
                print(f"ratio (a)/({other}) in planes/s: {ratio:.2f}")
    if args.backbones:
        print("\n| backbone (forward only) | s/tile |")
        print("|---|---|")
        for name, t in bench_backbones(args.runs, args.device):
            print(f"| {name} | {t:.3f} |")
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            profile_ours(_write_plane(args.size, Path(tmp)), args.device, args.model)
    if args.big:
        from napari_dendrite_panoptic.data import synthetic
        from napari_dendrite_panoptic.inference import InferenceConfig, predict

        cfg = synthetic.SyntheticConfig(shape=(1, 4096, 4096), pixel_size_um=0.08, n_dendrites=3)
        image = synthetic.generate(0, cfg).image
        t0 = time.perf_counter()
        result = predict(
            image, (1.0, 0.08, 0.08), InferenceConfig(model=args.model, device=args.device)
        )
        dt = time.perf_counter() - t0
        print(
            f"\n4096x4096 plane: {dt:.1f} s, {len(result.table['id'])} spines, "
            f"peak memory of the process {_peak_mib(args.device):.0f} MiB"
        )


if __name__ == "__main__":
    main()
