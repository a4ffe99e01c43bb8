"""Train the learned spine type classifier on the YOLO11 ``train`` split (outlines + types).

Writes ``src/napari_dendrite_panoptic/analysis/spine_types.safetensors`` (or ``--out``): the
weights, and in the metadata the feature scaling and the training record. Only ``train`` is used
for fitting; ``val`` is scored once at the end and printed (it does not steer training).

Training samples are the ground-truth outlines of ``train`` and, with ``--predicted-cache``, also
the bundled model's own spines on ``train`` (cached by ``scripts/cache_predicted_spines.py``),
each matched to a true outline at IoU >= 0.25 and labelled with that outline's type, measured and
cropped with the model's predicted dendrite, as at run time:

    PYTHONPATH=src python scripts/cache_predicted_spines.py --split train --out runs/pred_train.npz
    PYTHONPATH=src python scripts/train_spine_types.py --predicted-cache runs/pred_train.npz
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from napari_dendrite_panoptic.analysis import measure_spines
from napari_dendrite_panoptic.analysis.spine_types import (
    WEIGHTS,
    build_net,
    measurement_features,
    predict_learned_proba,
    spine_crops,
)
from napari_dendrite_panoptic.core import SPINE_TYPES
from napari_dendrite_panoptic.data import real as rd


def dataset(split: str):
    """Crops (N, 3, 48, 48), raw features (N, 9), labels (N,) and image names (N,) of a YOLO11
    split."""
    crops, feats, labels, names = [], [], [], []
    for item in rd.load_yolo11(split):
        px = item.pixel_size_um
        voxel = (1.0, px, px)
        table = measure_spines(item.dendrite, item.spines, voxel, item.image)
        keep = [i for i, s in enumerate(table["id"]) if item.spine_types[int(s)] in SPINE_TYPES]
        table = {k: v[keep] for k, v in table.items()}
        crops.append(spine_crops(item.image, item.dendrite, item.spines, table, voxel))
        feats.append(measurement_features(table, px))
        labels += [SPINE_TYPES.index(item.spine_types[int(s)]) for s in table["id"]]
        names += [item.name] * len(table["id"])
    return np.concatenate(crops), np.concatenate(feats), np.asarray(labels), np.asarray(names)


def predicted_dataset(split: str, cache: str, iou: float = 0.25):
    """Crops, raw features, labels and image names of the cached predicted spines of a split that
    match a true outline (IoU >= ``iou``), labelled with the matched outline's type."""
    from napari_dendrite_panoptic.evaluation import match_instances

    z = np.load(cache)
    crops, feats, labels, names = [], [], [], []
    for item in rd.load_yolo11(split):
        dend = z[f"{item.name}.dendrite"].astype(np.uint8)
        spines = z[f"{item.name}.spines"].astype(np.int32)
        _, match = match_instances(spines, item.spines, iou)
        truth = {p: item.spine_types[t] for t, p, _ in match.pairs}
        truth = {p: t for p, t in truth.items() if t in SPINE_TYPES}
        if not truth:
            continue
        px = item.pixel_size_um
        voxel = (1.0, px, px)
        table = measure_spines(dend, spines, voxel, item.image)
        keep = [i for i, s in enumerate(table["id"]) if int(s) in truth]
        table = {k: v[keep] for k, v in table.items()}
        crops.append(spine_crops(item.image, dend, spines, table, voxel))
        feats.append(measurement_features(table, px))
        labels += [SPINE_TYPES.index(truth[int(s)]) for s in table["id"]]
        names += [item.name] * len(table["id"])
    return np.concatenate(crops), np.concatenate(feats), np.asarray(labels), np.asarray(names)


def jitter_masks(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Grow or shrink the spine mask (channel 1) and the dendrite mask (channel 2) of each crop
    of (B, 3, 48, 48) by one crop pixel (0.1 µm), each with probability 1/3: a predicted
    outline is seldom the annotator's."""
    x = x.clone()
    for c in (1, 2):
        move = torch.from_numpy(rng.integers(-1, 2, size=len(x)))  # -1 shrink, 0 keep, 1 grow
        grown = torch.nn.functional.max_pool2d(x[:, c : c + 1], 3, 1, 1)[:, 0]
        shrunk = -torch.nn.functional.max_pool2d(-x[:, c : c + 1], 3, 1, 1)[:, 0]
        x[move == 1, c] = grown[move == 1]
        x[move == -1, c] = shrunk[move == -1]
    return x


def fit(xtr, ftr, ytr, epochs: int, seed: int, mask_jitter: bool = False):
    """Train one network (AdamW, cosine schedule, mirror / brightness / shift augmentation, and
    with ``mask_jitter`` masks grown or shrunk by a pixel)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_net(ftr.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt = torch.from_numpy(xtr)
    ft = torch.from_numpy(ftr.astype(np.float32))
    yt = torch.from_numpy(ytr)
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(yt)))
        total = 0.0
        for k in range(0, len(order), 64):
            b = order[k : k + 64]
            x = xt[b].clone()
            flip = torch.rand(len(b)) < 0.5  # a mirrored spine is the same type
            x[flip] = x[flip].flip(-1)
            x[:, 0] *= torch.empty(len(b), 1, 1).uniform_(0.7, 1.3)
            if mask_jitter:
                x = jitter_masks(x, rng)
            shift = rng.integers(-3, 4, size=2)
            x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(net(x, ft[b]), yt[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        sched.step()
        print(f"seed {seed} epoch {epoch + 1}: loss {total / len(yt):.3f}", flush=True)
    net.eval()
    return net


def cross_validate(
    xtr, ftr, ytr, ntr, is_pred, folds: int, epochs: int, seed: int, mask_jitter: bool = False
) -> None:
    """Group k-fold over the train images (all samples of an image in one fold): one network per
    fold; prints the accuracy on the held-out fold's predicted spines and outlines, with and
    without the mirror view."""
    images = np.unique(ntr)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(images), np.arange(len(images)) % folds, strict=True))
    fold = np.array([fold_of[n] for n in ntr])
    hits = {(kind, m): [] for kind in ("predicted", "outlines") for m in (False, True)}
    for k in range(folds):
        tr, te = fold != k, fold == k
        mean, std = ftr[tr].mean(0), ftr[tr].std(0) + 1e-6
        net = fit(xtr[tr], (ftr[tr] - mean) / std, ytr[tr], epochs, seed, mask_jitter)
        for mirror in (False, True):
            p = predict_learned_proba(([net], mean, std), xtr[te], ftr[te], mirror)
            right = p.argmax(1) == ytr[te]
            hits[("predicted", mirror)] += list(right[is_pred[te]])
            hits[("outlines", mirror)] += list(right[~is_pred[te]])
    for (kind, mirror), h in hits.items():
        view = "mirror view averaged" if mirror else "one view"
        print(f"cv {folds} folds, {kind}, {view}: accuracy {np.mean(h):.3f} ({sum(h)}/{len(h)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="ensemble members")
    ap.add_argument("--out", default=str(WEIGHTS))
    ap.add_argument("--cache", default=None, help="npz cache of the measured splits")
    ap.add_argument(
        "--predicted-cache",
        default=None,
        help="npz of the bundled model's predictions on train (cache_predicted_spines.py): "
        "its matched spines are added to the training samples",
    )
    ap.add_argument(
        "--cv",
        type=int,
        default=0,
        help="group k-fold over the train images with the first seed instead of training the "
        "shipped weights (val is not read)",
    )
    ap.add_argument(
        "--mask-jitter",
        action="store_true",
        help="grow or shrink each crop's spine and dendrite masks by a pixel while training",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    keys = ("xtr", "ftr", "ytr", "ntr", "xva", "fva", "yva")
    z = np.load(args.cache) if args.cache and os.path.exists(args.cache) else None
    if z is not None and all(k in z for k in keys):
        xtr, ftr, ytr, ntr, xva, fva, yva = (z[k] for k in keys)
    else:
        xtr, ftr, ytr, ntr = dataset("train")
        xva, fva, yva, _ = dataset("val")
        if args.cache:
            np.savez(
                args.cache, **dict(zip(keys, (xtr, ftr, ytr, ntr, xva, fva, yva), strict=True))
            )
    n_outlines = len(ytr)
    if args.predicted_cache:
        xp, fp, yp, npred = predicted_dataset("train", args.predicted_cache)
        xtr, ftr, ytr, ntr = (
            np.concatenate([xtr, xp]),
            np.concatenate([ftr, fp]),
            np.concatenate([ytr, yp]),
            np.concatenate([ntr, npred]),
        )
    print(
        f"train {n_outlines} outlines + {len(ytr) - n_outlines} predicted spines, val {len(yva)};"
        f" measured in {time.perf_counter() - t0:.0f} s"
    )
    if args.cv:
        is_pred = np.arange(len(ytr)) >= n_outlines
        cross_validate(
            xtr, ftr, ytr, ntr, is_pred, args.cv, args.epochs, args.seeds[0], args.mask_jitter
        )
        return
    mean, std = ftr.mean(0), ftr.std(0) + 1e-6
    state = {}
    val_probs = []
    for member, seed in enumerate(args.seeds):
        net = fit(xtr, (ftr - mean) / std, ytr, args.epochs, seed, args.mask_jitter)
        p = predict_learned_proba(([net], mean, std), xva, fva)  # as at run time
        val_probs.append(p)
        print(f"seed {seed}: val accuracy {np.mean(p.argmax(1) == yva):.3f}")
        state.update({f"m{member}.{k}": v.contiguous() for k, v in net.state_dict().items()})
    acc = float(np.mean(np.mean(val_probs, 0).argmax(1) == yva))
    print(f"ensemble val accuracy {acc:.3f} on {len(yva)} spines")
    from safetensors.torch import save_file

    meta = {
        "features": json.dumps({"mean": mean.tolist(), "std": std.tolist()}),
        "training": json.dumps(
            {
                "data": "spine-types-yolo11 train split (outlines, types)"
                + (
                    " + the bundled model's spines on train matched at IoU >= 0.25"
                    if args.predicted_cache
                    else ""
                ),
                "samples": {"outlines": n_outlines, "predicted": int(len(ytr) - n_outlines)},
                "epochs": args.epochs,
                "seeds": args.seeds,
                "classes": list(SPINE_TYPES),
            }
        ),
    }
    from napari_dendrite_panoptic.core import atomic_path

    with atomic_path(args.out) as tmp:
        save_file(state, str(tmp), meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
