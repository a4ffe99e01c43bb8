"""Does fine-tuning on corrections help on a style the bundled model has never seen?

``--real findspines`` (or ``smirnov``) measures the loop on real fields instead: the bundled
model segments ``--fields`` fields of the set's held-out part (FindSpines validation groups,
Smirnov test crops), one per twin group (Smirnov's crops are frames of about 38 fields, grouped
by thumbnail likeness: ``split_overlap.field_groups``); each is corrected as a user would from
its clicks (spines without a click erased, a disc of 0.4 µm radius painted at every click without a
spine; the dendrite accepted as segmented); the dock's fine-tuning runs ``--minutes`` on them;
the set's other held-out fields (none from the corrected fields' groups) are scored before and
after (spine F1, centroids within the set's tolerance). Rows: the bundled model; the bundled
model at the spine threshold chosen on the corrected fields (no training); the model
fine-tuned on all of them at the base model's threshold, at the threshold the base model
chooses on them, and, as the dock does without a held-out field, at the threshold at which it
keeps as many spines on them as they hold corrected (the rule before 2026-12-07, as many as
the base model keeps at its choice, is in the result files of that day); the model fine-tuned on all
but the last, that one marked "held out" as in the dock (the last step kept, as the dock
keeps it below ``training.HELD_OUT_MIN_SPINES`` held-out spines, or else the step that scores
best on it by spine F1 at each model's best threshold there, since its dendrite is the base
model's own; the thresholds chosen as the dock chooses them). ``--curves`` adds, for the base model and the model
fine-tuned on all fields, spine F1 on the other fields at every threshold 0.30-0.95 (each field
segmented once, spines kept by score, as ``score_ranking.py`` does): the best there is chosen
by looking at the answers, the most any threshold rule could give each model; with
``--real yolo11``, spine F1 at mask IoU 0.5 on the ``val`` images at 0.30-0.975. ``--runs all``
runs only the first fine-tuning (every corrected field trained on), ``--runs held`` only the
second; ``--which`` and ``--layers`` set the dock's "Train" and "Layers", ``--lr`` its
learning rate, ``--keep`` keeps the fine-tuned models.

    python benchmarks/bench_finetune.py --real findspines --fields 4 --minutes 5

``--real yolo11`` measures the loop on the lab that outlines its spines: ``--fields`` images of
its ``train`` split are corrected exactly (each spine's outline, the rest of the neuron as the
dendrite; both layers count as edited), the dock fine-tunes on them, and the base and the new
model are scored on its ``val`` split as ``dendrite-panoptic evaluate --real`` scores it (spine
F1 at mask IoU 0.25 and 0.5, PQ, neuron foreground IoU), at the thresholds each run chose.

    python benchmarks/bench_finetune.py --real yolo11 --fields 6 --minutes 5 --model FOLDER

``--stacks`` measures the loop on two-photon-like stacks of a style outside the generator's
training ranges (:data:`UNSEEN_STACK_STYLE`: dim spines, a long axial blur, many puncta): the
truth of ``--train-images`` stacks plays the user's corrections; fine-tuning runs ``--steps``
(the same run however busy the machine is) once on plane crops only (as before v0.8) and once
with the default share of slab-projection crops (``data.STACK_SLAB_SHARE``) and once on
slab projections alone (that one also at the spine threshold the base model chooses on the
corrected stacks, and at the one at which it keeps as many spines on them as they hold
corrected, as the dock does without a held-out stack); rows also give the bundled model
at the spine threshold chosen on the corrected stacks (no training) and the dock's run (the
last corrected stack held out: the best-scoring step kept, the thresholds chosen as the dock
chooses them); each model segments ``--test-images`` other stacks of the style by the default
stack path and is scored on spine centres (1 µm in (y, x), 2 planes in z, as ``bench_stacks.py``), spine F1 at 3D IoU
0.5 and dendrite IoU.

    python benchmarks/bench_finetune.py --stacks --steps 150 --train-images 3 --test-images 8

The correct-and-retrain loop, measured as the training dock runs it: the bundled model segments
generator images of an unseen style (much dimmer spines, thicker dendrites, a finer pixel size);
the ground truth of ``--train-images`` of them plays the user's correction; fine-tuning runs for
``--minutes`` on this machine's CPU with the dock's settings
(:func:`napari_dendrite_panoptic.corrections.fine_tune_config`); before and after, spine F1 at
IoU 0.5, spine PQ and dendrite IoU are measured on ``--test-images`` other images of that style
(other seeds). Prints one table.

    python benchmarks/bench_finetune.py --minutes 5
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from napari_dendrite_panoptic.data import (
    STACK_SLAB_SHARE,
    correction_source,
    prepare_volume,
    synthetic,
)
from napari_dendrite_panoptic.evaluation import match_instances, pixel_scores
from napari_dendrite_panoptic.evaluation.metrics import pool_instance_scores
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import bundled_model_dir, load_models
from napari_dendrite_panoptic.training import (
    LAYER_CHOICES,
    WHICH_CHOICES,
    fine_tune_config,
    iter_fit,
)

UNSEEN_STYLE = synthetic.SyntheticConfig(
    shape=(1, 320, 320),
    pixel_size_um=0.06,
    dendrite_radius_um=(1.1, 1.5),  # training draws 0.3-1.2 µm
    spine_brightness=0.2,  # training draws 0.35-1.5 of the dendrite's brightness
    spine_density_per_um=2.0,
    peak_photons=40.0,
    n_axons=2,
)
"""The style: outside the generator's training ranges in spine brightness and dendrite width."""


def style_sample(seed: int) -> synthetic.SyntheticSample:
    """One image of the unseen style (each seed its own morphology and noise)."""
    return synthetic.generate(seed, UNSEEN_STYLE)


def score(models, samples) -> dict[str, float]:
    """Pooled spine F1/PQ at IoU 0.5 and dendrite IoU of ``models`` on ``samples``."""
    parts, inter, union = [], 0, 0
    for s in samples:
        cfg = InferenceConfig(model=str(models.folder), device="cpu")
        result = predict(s.image, s.voxel_size_um, cfg, models=models)
        parts.append(match_instances(result.spines, s.spines, 0.5)[0])
        pix = pixel_scores(result.dendrite > 0, s.dendrite > 0)
        inter += pix.tp
        union += pix.tp + pix.fp + pix.fn
    pooled = pool_instance_scores(parts)
    return {"spine_f1": pooled.f1, "spine_pq": pooled.pq, "dendrite_iou": inter / max(union, 1)}


PAINT_RADIUS_UM = 0.4
"""Radius of the disc painted at a click the model missed (a spine head)."""


def corrected_from_clicks(models, item) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, dendrite, spines) (Y, X) of a point-annotated field corrected as a user would:
    the model's spines whose centroid matches no click erased, a disc painted at each click
    that no spine matches, the dendrite kept as segmented."""
    from skimage.draw import disk

    from napari_dendrite_panoptic.evaluation import match_points

    px = float(item.pixel_size_um)
    result = predict(item.image, (1.0, px, px), InferenceConfig(device="cpu"), models=models)
    spines = result.spines[0].astype(np.int32)
    table = result.table
    pred = np.stack([table["centroid_y_px"], table["centroid_x_px"]], axis=1)
    clicks = np.asarray(item.centres_px, dtype=float).reshape(-1, 2)
    _, pairs = match_points(pred, clicks, float(item.match_radius_px))
    kept = {int(table["id"][p]) for _, p, _ in pairs}
    spines[~np.isin(spines, list(kept))] = 0
    matched = {t for t, _, _ in pairs}
    next_id = int(spines.max()) + 1
    for t, (y, x) in enumerate(clicks):
        if t in matched:
            continue
        rr, cc = disk((y, x), PAINT_RADIUS_UM / px, shape=spines.shape)
        free = spines[rr, cc] == 0
        spines[rr[free], cc[free]] = next_id
        next_id += 1
    return item.image, result.dendrite[0], spines


def _point_f1(models, items, threshold: float | None) -> float:
    from napari_dendrite_panoptic.evaluation import evaluate_points

    cfg = InferenceConfig(model=str(models.folder), device="cpu", spine_score_threshold=threshold)
    return evaluate_points(models, items, cfg)["f1"]


def _threshold_curve(models, items) -> list[float]:
    """Spine F1 on ``items`` at each of ``score_ranking.THRESHOLDS``, each item segmented once."""
    from score_ranking import THRESHOLDS, f1_curve, spines_of

    return f1_curve(spines_of(models, items), "score", THRESHOLDS)


def _print_curves(curves: dict[str, list[float]], thresholds=None) -> None:
    """The ``--curves`` table: one column per model, its best threshold in bold (``thresholds``:
    those of the curves, ``score_ranking.THRESHOLDS`` by default)."""
    from score_ranking import THRESHOLDS

    print("\n| spine threshold | " + " | ".join(curves) + " |")
    print("|---" * (len(curves) + 1) + "|")
    best = {name: int(np.argmax(curve)) for name, curve in curves.items()}
    for i, threshold in enumerate(thresholds or THRESHOLDS):
        cells = [
            f"**{curve[i]:.3f}**" if best[name] == i else f"{curve[i]:.3f}"
            for name, curve in curves.items()
        ]
        print(f"| {threshold:.3f} | " + " | ".join(cells) + " |")


def real_items(name: str) -> list:
    """The held-out part of real set ``name``, groups filled in (Smirnov's crops by field:
    ``split_overlap.field_groups``)."""
    from napari_dendrite_panoptic.data import real

    if name == "findspines":
        return real.findspines_split(real.load_findspines())[1]
    from split_overlap import field_groups

    items = real.load_smirnov("test")  # frames of about 38 fields: group them by field, so
    fields = field_groups([i.image for i in items])  # no scored crop repeats a corrected one
    return [replace(i, group=f"smirnov-field-{f}") for i, f in zip(items, fields, strict=True)]


def _config(args: argparse.Namespace, out: Path, volumes: list, base, **options):
    """The dock's fine-tuning config for ``volumes`` from the base model (``--model``, else the
    bundled one), with the benchmark's ``--minutes``, ``--threads`` and ``--seed``."""
    cfg = fine_tune_config(
        str(args.model or bundled_model_dir()),
        out,
        volumes,
        base.card.pixel_size_um,
        minutes=args.minutes,
        **options,
    )
    return replace(cfg, threads=args.threads, seed=args.seed)


def _fine_tune_as_dock(cfg, train: list, held: list) -> tuple:
    """Run the dock's fine-tuning (``iter_fine_tune``, never stopped) and return its last
    training event and its threshold choices (the ``"calibrated"`` event's)."""
    from napari_dendrite_panoptic.training import iter_fine_tune

    events = list(iter_fine_tune(cfg, train, held, [], lambda: False))
    done = [e for e in events if not isinstance(e, tuple)][-1]
    choice = next(e[1] for e in events if isinstance(e, tuple) and e[0] == "calibrated")
    return done, choice


def main_real(args: argparse.Namespace) -> None:
    """The correct-and-retrain loop on real fields (see the module docstring)."""
    from napari_dendrite_panoptic.errors import InputError
    from napari_dendrite_panoptic.training import (
        choose_thresholds,
        held_out_score,
    )

    base = load_models(args.model, "cpu")
    items = real_items(args.real)
    rng = np.random.default_rng(args.seed)
    groups = sorted({i.group for i in items})
    corrected, volumes, skipped = [], [], []
    for group in rng.permutation(groups).tolist():  # a field without a dendrite found: next one
        item = next(i for i in items if i.group == group)
        image, dendrite, spines = corrected_from_clicks(base, item)
        try:
            volume, _ = prepare_volume(item.name, image, dendrite, spines, item.pixel_size_um)
        except InputError:
            skipped.append(item.name)
            continue
        volume = replace(volume, unedited=("dendrites",))  # the base model's, as the dock knows
        corrected.append(item)
        volumes.append(volume)
        if len(volumes) == args.fields:
            break
    chosen_groups = {i.group for i in corrected}
    others = [i for i in items if i.group not in chosen_groups]
    label = "bundled" if args.model is None else f"base {base.card.version}"
    rows = {label: _point_f1(base, others, None)}
    curves = {label: _threshold_curve(base, others)} if args.curves else {}
    alone, _ = choose_thresholds(base, volumes)
    rows[
        f"{label}, threshold chosen on the {len(volumes)} corrected fields ({alone.threshold:.2f})"
    ] = _point_f1(base, others, alone.threshold)
    runs = {"all": (volumes, []), "held": (volumes[:-1], volumes[-1:])}
    runs = {key: runs[key] for key in args.runs}
    steps, train_s, counts = {}, {}, ""
    with tempfile.TemporaryDirectory() as tmp:
        for key, (train, held) in runs.items():
            out = Path(tmp) / key
            cfg = _config(
                args,
                out,
                train,
                base,
                name="bench-finetune-real",
                layers=args.layers,
                lr=args.lr,
                which=args.which,
            )
            if args.steps:
                cfg = replace(cfg, steps=args.steps, max_seconds=None)
            t0 = time.perf_counter()
            done, choice = _fine_tune_as_dock(cfg, train, held)
            train_s[key] = time.perf_counter() - t0
            steps[key] = done.step
            tuned = load_models(out, "cpu")
            if args.keep:
                shutil.copytree(out, args.keep / key, dirs_exist_ok=False)
            if key == "all" and args.curves:
                curves[f"fine-tuned on the {len(train)}"] = _threshold_curve(tuned, others)
            if key == "all":
                rows[
                    f"fine-tuned on the {len(train)}, the base model's threshold kept "
                    f"({alone.base_threshold:.2f}; the dock before 2026-12-06)"
                ] = _point_f1(tuned, others, alone.base_threshold)
                rows[
                    f"fine-tuned on the {len(train)}, the base model's choice on them "
                    f"({alone.threshold:.2f}; the dock without a held-out field, 2026-12-06)"
                ] = _point_f1(tuned, others, alone.threshold)
                counts = (
                    f"# spines on the {len(train)} corrected fields: {choice[0].amount:.0f} "
                    f"corrected; the base model keeps {alone.kept_at_threshold} at its choice "
                    f"{alone.threshold:.2f}; the fine-tuned model keeps "
                    + ", ".join(
                        f"{k} at {t:.2f}"
                        for t, k in zip(choice[0].sweep, choice[0].kept, strict=True)
                    )
                )
                name = (
                    f"fine-tuned on the {len(train)}, no held-out field: the threshold at which "
                    f"it keeps as many spines on them as they hold corrected "
                    f"({choice[0].threshold:.2f}; the dock now)"
                )
            else:
                new, old = (held_out_score(m, cfg.which) for m in (done.metrics, done.base_metrics))
                verdict = new >= old
                kept = (
                    "the last step kept: too few held-out spines to choose one"
                    if done.kept_last
                    else f"step {done.best_step} of {steps[key]} kept, the best on it"
                )
                name = (
                    f"fine-tuned on {len(train)}, 1 held out ({kept}; "
                    + ("above" if verdict else "below")
                    + f" the base model there; threshold chosen on the held-out field: "
                    f"{choice[0].threshold:.2f}"
                    + (", by count on all" if choice[0].counted else "")
                    + ")"
                )
            rows[name] = _point_f1(tuned, others, None)
    spines = sum(len(i.centres_px) for i in corrected)
    if args.keep:
        names = {"corrected": [i.name for i in corrected], "others": [i.name for i in others]}
        (args.keep / "fields.json").write_text(json.dumps(names, indent=1))
    print(
        f"# bench_finetune --real {args.real}: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(
        f"# corrected {len(corrected)} field(s) ({spines} clicked spines): "
        + ", ".join(i.name for i in corrected)
        + f"; scored on {len(others)} other field(s) of other groups"
        + (f"; skipped (no dendrite found): {', '.join(skipped)}" if skipped else "")
    )
    print(
        "# fine-tuning: "
        + " and ".join(str(n) for n in steps.values())
        + " steps in "
        + " and ".join(f"{t:.0f}" for t in train_s.values())
        + " s ("
        + (f"asked {args.steps} steps" if args.steps else f"budget {args.minutes:g} min each")
        + ", incl. validation and "
        f"choosing the thresholds), batch {cfg.batch_size} × {cfg.crop_size}², "
        f"layers {cfg.layers}, lr {cfg.lr:g}, training {cfg.which}"
    )
    if counts:
        print(counts)
    print("| model | spine F1 on the other fields | change |\n|---|---|---|")
    first = next(iter(rows.values()))
    for name, f1 in rows.items():
        print(f"| {name} | {f1:.3f} | {f1 - first:+.3f} |")
    if curves:
        _print_curves(curves)


UNSEEN_STACK_STYLE = {
    "spine_brightness": 0.45,  # training draws 0.8-1.5 of the shaft's brightness
    "psf_fwhm_z_um": 3.6,  # training draws 1.5-3 µm
    "puncta_per_100um2": 1.5,  # training draws 0.1-0.8
    "shaft_puncta_per_um": 0.25,  # training draws 0-0.12
}
"""The stack style of ``--stacks``: each seed's two-photon configuration
(:func:`~napari_dendrite_panoptic.data.synthetic.random_twophoton_config`) with these fields
set outside the generator's training ranges."""

STACK_SHAPE = (16, 256, 256)


def style_stack(seed: int) -> synthetic.SyntheticSample:
    """One (Z, Y, X) stack of :data:`UNSEEN_STACK_STYLE`."""
    rng = np.random.default_rng((seed, 2))
    cfg = replace(synthetic.random_twophoton_config(rng, STACK_SHAPE), **UNSEEN_STACK_STYLE)
    return synthetic.generate_twophoton(seed, cfg)


def score_stacks(models, stacks, threshold: float | None = None) -> dict[str, float]:
    """Pooled spine centre P/R/F1, spine F1 at 3D IoU 0.5 and dendrite IoU of the default
    stack path on ``stacks`` (at spine score ``threshold``, None: the model's)."""
    from napari_dendrite_panoptic.evaluation import (
        instance_centres,
        match_stack_centres,
        table_centres,
    )
    from napari_dendrite_panoptic.evaluation.metrics import detection_scores

    counts, parts, dend = np.zeros(3, int), [], np.zeros(3, int)
    for s in stacks:
        cfg = InferenceConfig(
            model=str(models.folder), device="cpu", spine_score_threshold=threshold
        )
        result = predict(s.image, s.voxel_size_um, cfg, models=models)
        pred = table_centres(result.table)
        m = match_stack_centres(pred, instance_centres(s.spines), s.voxel_size_um[1])
        counts += (m.tp, m.fp, m.fn)
        parts.append(match_instances(result.spines, s.spines, 0.5)[0])
        d = pixel_scores(result.dendrite > 0, s.dendrite > 0)
        dend += (d.tp, d.fp, d.fn)
    p, r, f = detection_scores(*counts)
    tp, fp, fn = dend
    return {
        "centre_p": p,
        "centre_r": r,
        "centre_f1": f,
        "f1_iou50": pool_instance_scores(parts).f1,
        "dendrite_iou": tp / max(1, tp + fp + fn),
    }


def _mask_scores(models, items, spine: float | None = None, dendrite: float | None = None):
    """``evaluate_masks`` of ``models`` on ``items`` at these thresholds (None: the card's)."""
    from napari_dendrite_panoptic.evaluation import evaluate_masks

    cfg = InferenceConfig(
        model=str(models.folder), device="cpu", spine_score_threshold=spine,
        dendrite_threshold=dendrite,
    )  # fmt: skip
    return evaluate_masks(models, items, cfg)


OUTLINE_THRESHOLDS = tuple(round(float(t), 3) for t in np.arange(0.30, 0.9751, 0.025))
"""The spine thresholds of ``--real yolo11 --curves``: up to 0.975, above the dock's sweep."""


def _mask_curve(models, items) -> list[float]:
    """Spine F1 at mask IoU 0.5 on mask-annotated ``items`` at each of
    :data:`OUTLINE_THRESHOLDS`: each item segmented once at the lowest, its spines then kept by
    score."""
    cfg = InferenceConfig(
        model=str(models.folder), device="cpu", spine_score_threshold=OUTLINE_THRESHOLDS[0]
    )
    found = []
    for item in items:
        px = float(item.pixel_size_um)
        result = predict(item.image, (1.0, px, px), cfg, models=models)
        scores = dict(zip(result.table["id"], result.table["score"], strict=True))
        found.append((result.spines[0], scores, item.spines))
    curve = []
    for threshold in OUTLINE_THRESHOLDS:
        parts = []
        for spines, scores, truth in found:
            low = [i for i, score in scores.items() if score < threshold]
            kept = np.where(np.isin(spines, low), 0, spines)
            parts.append(match_instances(kept, truth, 0.5)[0])
        curve.append(pool_instance_scores(parts).f1)
    return curve


def main_outlines(args: argparse.Namespace) -> None:
    """The correct-and-retrain loop on the outlined lab (YOLO11): ``--fields`` images of its
    ``train`` split corrected exactly (each spine's outline, the neuron around them as the
    dendrite), fine-tuned as the dock does, scored on its ``val`` split (15 images)."""
    from napari_dendrite_panoptic.data import real
    from napari_dendrite_panoptic.training import choose_thresholds

    base = load_models(args.model, "cpu")
    pool = real.load_yolo11("train")
    rng = np.random.default_rng(args.seed)
    corrected = [pool[i] for i in rng.permutation(len(pool))[: args.fields]]
    volumes = [
        prepare_volume(i.name, i.image, i.dendrite, i.spines, i.pixel_size_um)[0] for i in corrected
    ]
    test = real.load_yolo11("val")
    label = "bundled" if args.model is None else f"base {base.card.version}"
    rows = {label: _mask_scores(base, test)}
    curves = {label: _mask_curve(base, test)} if args.curves else {}
    spine, dendrite = choose_thresholds(base, volumes)
    rows[
        f"{label}, thresholds chosen on the {len(volumes)} corrected images (spine "
        f"{spine.threshold:.2f}, dendrite {dendrite.threshold:.2f})"
    ] = _mask_scores(base, test, spine.threshold, dendrite.threshold)
    runs = {"all": (volumes, []), "held": (volumes[:-1], volumes[-1:])}
    steps = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.runs:
            train, held = runs[key]
            out = Path(tmp) / key
            cfg = _config(
                args, out, train, base, name="bench-finetune-outlines", layers=args.layers,
                lr=args.lr, which=args.which,
            )  # fmt: skip
            if args.steps:
                cfg = replace(cfg, steps=args.steps, max_seconds=None)
            done, choice = _fine_tune_as_dock(cfg, train, held)
            steps[key] = done.step
            tuned = load_models(out, "cpu")
            chosen = ", ".join(
                f"{c.kind} {c.base_threshold:.2f} -> {c.threshold:.2f}" for c in choice
            )
            if key == "all":
                rows[
                    f"fine-tuned on the {len(train)}, the base model's thresholds kept "
                    f"(spine {spine.base_threshold:.2f}, dendrite {dendrite.base_threshold:.2f})"
                ] = _mask_scores(tuned, test, spine.base_threshold, dendrite.base_threshold)
                name = f"fine-tuned on the {len(train)}, as the dock chooses ({chosen})"
                if args.curves:
                    curves[f"fine-tuned on the {len(train)}"] = _mask_curve(tuned, test)
            else:
                name = f"fine-tuned on {len(train)}, 1 held out, as the dock chooses ({chosen})"
            rows[name] = _mask_scores(tuned, test)
    n_spines = sum(len(np.unique(i.spines[i.spines > 0])) for i in corrected)
    print(
        f"# bench_finetune --real yolo11: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(
        f"# corrected {len(corrected)} train image(s) ({n_spines} outlined spines): "
        + ", ".join(i.name for i in corrected)
        + f"; scored on the {len(test)} val images"
    )
    print(
        f"# fine-tuning: {' and '.join(str(n) for n in steps.values())} steps "
        + (f"(asked {args.steps})" if args.steps else f"(budget {args.minutes:g} min each)")
        + f", batch {cfg.batch_size} × {cfg.crop_size}², layers {args.layers}, lr {args.lr:g}, "
        f"training {args.which}"
    )
    print("| model | spine F1 at IoU 0.25 | spine F1 at IoU 0.5 | PQ | foreground IoU |")
    print("|---|---|---|---|---|")
    for name, m in rows.items():
        print(
            f"| {name} | {m['spine_f1_iou25']:.3f} | {m['spine_f1_iou50']:.3f} | "
            f"{m['spine_pq_iou50']:.3f} | {m['foreground_iou']:.3f} |"
        )
    if curves:
        print("\nspine F1 at mask IoU 0.5 on the val images, by spine threshold:")
        _print_curves(curves, OUTLINE_THRESHOLDS)


def main_stacks(args: argparse.Namespace) -> None:
    """Fine-tuning on corrected stacks, plane crops only against plane and slab crops (see the
    module docstring)."""
    from napari_dendrite_panoptic.training import (
        choose_thresholds,
        match_corrected_count,
    )

    base = load_models(args.model, "cpu")
    train = [style_stack(40_000 + i) for i in range(args.train_images)]
    test = [style_stack(41_000 + i) for i in range(args.test_images)]
    volumes = [
        prepare_volume(
            f"stack-{i}", s.image, s.dendrite, s.spines, s.voxel_size_um[1],
            z_step_um=s.voxel_size_um[0],
        )[0]
        for i, s in enumerate(train)
    ]  # fmt: skip
    steps = args.steps or 150
    label = "bundled" if args.model is None else f"base {base.card.version}"
    rows = {label: score_stacks(base, test)}
    alone, _ = choose_thresholds(base, volumes)
    rows[f"{label}, spine threshold chosen on the {len(volumes)} corrected stacks "
         f"({alone.base_threshold:.2f} -> {alone.threshold:.2f})"] = score_stacks(
        base, test, alone.threshold
    )  # fmt: skip
    timing = {}
    planes = base.card.input_planes
    with tempfile.TemporaryDirectory() as tmp:
        for share in args.shares:
            out = Path(tmp) / f"share{share:g}"
            cfg = _config(args, out, volumes, base, name="bench-finetune-stacks", lr=args.lr)
            cfg = replace(cfg, steps=steps, max_seconds=None)
            source = correction_source(
                volumes, cfg.crop_size, base.card.pixel_size_um, planes > 1, slab_share=share
            )
            t0 = time.perf_counter()
            list(iter_fit(cfg, source=source))
            timing[share] = time.perf_counter() - t0
            name = (
                "fine-tuned on plane crops only (before v0.8)"
                if share == 0
                else f"fine-tuned, {share:.0%} of crops from slab projections"
            )
            tuned = load_models(out, "cpu")
            rows[name] = score_stacks(tuned, test)
            if share == 1.0:
                rows[
                    f"fine-tuned, 100% slab projections, spine threshold chosen on the "
                    f"{len(volumes)} by the base model before training ({alone.threshold:.2f})"
                ] = score_stacks(tuned, test, alone.threshold)
                own, _ = choose_thresholds(tuned, volumes)
                counted = match_corrected_count(own)
                rows[
                    f"fine-tuned, 100% slab projections, the spine threshold at which it keeps "
                    f"as many spines on the {len(volumes)} as they hold corrected "
                    f"({counted.threshold:.2f}; the dock without a held-out stack now)"
                ] = score_stacks(tuned, test, counted.threshold)
        # the dock: the last stack held out (best step kept, thresholds chosen on it)
        out = Path(tmp) / "dock"
        train, held = volumes[:-1], volumes[-1:]
        cfg = _config(args, out, train, base, name="bench-finetune-stacks", lr=args.lr)
        cfg = replace(cfg, steps=steps, max_seconds=None)
        best, choice = _fine_tune_as_dock(cfg, train, held)
        by = f", by count on all {len(volumes)}" if choice[0].counted else ""
        rows[
            f"as the dock: fine-tuned on {len(train)}, 1 held out (step {best.best_step} kept, "
            f"spine threshold {choice[0].base_threshold:.2f} -> {choice[0].threshold:.2f}{by})"
        ] = score_stacks(load_models(out, "cpu"), test)
    n_true = sum(len(s.spine_types) for s in test)
    print(
        f"# bench_finetune --stacks: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(
        f"# style {UNSEEN_STACK_STYLE}; stacks {STACK_SHAPE}; {len(volumes)} corrected, "
        f"{len(test)} scored ({n_true} true spines); {steps} steps of "
        f"{cfg.batch_size} x {cfg.crop_size}² each, lr {args.lr:g}"
        + (" (" + ", ".join(f"{t:.0f} s" for t in timing.values()) + ")" if timing else "")
    )
    print("| model | centre P | centre R | centre F1 | F1 at 3D IoU 0.5 | dendrite IoU |")
    print("|---|---|---|---|---|---|")
    for name, m in rows.items():
        print(
            f"| {name} | {m['centre_p']:.3f} | {m['centre_r']:.3f} | {m['centre_f1']:.3f} | "
            f"{m['f1_iou50']:.3f} | {m['dendrite_iou']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning time budget")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="fine-tune for this many steps instead of --minutes (the same run however busy "
        "the machine is, for comparing settings)",
    )
    parser.add_argument(
        "--freeze-norm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the base model's BatchNorm statistics (default: as the dock does)",
    )
    parser.add_argument("--train-images", type=int, default=2, help="corrected images")
    parser.add_argument("--test-images", type=int, default=6, help="other images scored")
    parser.add_argument(
        "--lr", type=float, default=3e-4, help="fine-tuning learning rate (the dock's: 3e-4)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning batches")
    parser.add_argument(
        "--real",
        choices=["findspines", "smirnov", "yolo11"],
        help="measure on this real set's fields (yolo11: its train images corrected, val scored)",
    )
    parser.add_argument("--fields", type=int, default=4, help="real fields corrected")
    parser.add_argument(
        "--stacks", action="store_true", help="measure on corrected two-photon-like stacks"
    )
    parser.add_argument(
        "--shares",
        type=lambda text: [float(v) for v in text.split(",") if v],
        default=[0.0, STACK_SLAB_SHARE, 1.0],
        help="with --stacks: shares of slab-projection crops to fine-tune with, comma-separated "
        "('' for none: the dock's row only)",
    )
    parser.add_argument("--layers", default="all", choices=LAYER_CHOICES, help="as the dock")
    parser.add_argument(
        "--which",
        default="both",
        choices=WHICH_CHOICES,
        help="with --real: the networks that train, as the dock's 'Train'",
    )
    parser.add_argument(
        "--runs",
        default="all,held",
        type=lambda text: [v for v in text.split(",") if v],
        help="with --real: the fine-tuning runs, comma-separated: 'all' (every corrected field "
        "trained on) and 'held' (the last one held out); default both",
    )
    parser.add_argument(
        "--curves",
        action="store_true",
        help="with --real: F1 at every threshold for the base and the fine-tuned model (with "
        "yolo11: at mask IoU 0.5, thresholds up to 0.975)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="with --real: keep the fine-tuned models in this new folder ('all', 'held') with "
        "the names of the corrected and the scored fields (fields.json)",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="base model folder (default: the bundled pair)"
    )
    args = parser.parse_args()
    if not args.runs or set(args.runs) - {"all", "held"}:
        parser.error(f"--runs takes 'all', 'held' or both, not {','.join(args.runs)!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.real == "yolo11":
        if args.keep:
            parser.error("--keep works with --real findspines or smirnov only")
        main_outlines(args)
        return
    if args.real:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=False)
        main_real(args)
        return
    if args.stacks:
        main_stacks(args)
        return

    base = load_models(args.model, "cpu")
    train = [style_sample(100 + i) for i in range(args.train_images)]
    test = [style_sample(200 + i) for i in range(args.test_images)]
    before = score(base, test)
    volumes = [
        prepare_volume(f"corrected-{i}", s.image, s.dendrite, s.spines, s.voxel_size_um[1])[0]
        for i, s in enumerate(train)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "finetuned"
        cfg = _config(args, out, volumes, base, name="bench-finetune", lr=args.lr)
        if args.freeze_norm is not None:
            cfg = replace(cfg, freeze_norm=args.freeze_norm)
        if args.steps:
            cfg = replace(cfg, steps=args.steps, max_seconds=None)
        t0 = time.perf_counter()
        events = list(iter_fit(cfg, source=correction_source(volumes, cfg.crop_size, 0.08)))
        train_s = time.perf_counter() - t0
        steps = events[-1].step
        after = score(load_models(out, "cpu"), test)

    print(
        f"# bench_finetune: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(
        f"# style: spine brightness {UNSEEN_STYLE.spine_brightness}, dendrite radius "
        f"{UNSEEN_STYLE.dendrite_radius_um} µm, pixel {UNSEEN_STYLE.pixel_size_um} µm; "
        f"{args.train_images} corrected image(s), {args.test_images} test image(s)"
    )
    print(
        f"# fine-tuning: {steps} steps in {train_s:.0f} s ("
        + (f"asked {args.steps}" if args.steps else f"budget {args.minutes:g} min")
        + f"), lr {args.lr:g}, batch {cfg.batch_size} × {cfg.crop_size}², BatchNorm "
        + ("frozen" if cfg.freeze_norm else "trained")
    )
    print(f"{'metric':<14}{'bundled':>10}{'fine-tuned':>12}{'change':>10}")
    for key in ("spine_f1", "spine_pq", "dendrite_iou"):
        b, a = before[key], after[key]
        print(f"{key:<14}{b:>10.3f}{a:>12.3f}{a - b:>+10.3f}")
    gain = after["spine_f1"] - before["spine_f1"]
    print(
        f"# target: spine F1 gain >= 0.15 -> {'met' if gain >= 0.15 else 'NOT met'} ({gain:+.3f})"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
