"""The training data mix: ``name:weight,...`` → one sample source, its description, fingerprints.

Sources: ``generator`` (generated planes and stacks, 25 % stacks), ``generator3d`` (generated
stacks only, one plane each), ``generator-slabs`` (projections of generated stacks' slabs, as the
stack path sees a stack: :func:`.samples.slab_sample`), and the real sets in the data folder (:func:`.real.data_root`): ``yolo11``
(train split), ``findspines`` (training groups; the held-out fifth is never drawn),
``findspines-negatives`` (the same fields, crops placed on hard negatives: bright blobs far
from every click in fields clicked completely, :mod:`.real.hard_negatives`) and ``smirnov``
(train split). A real set that is absent is skipped with a warning. The CLI's
``train --data`` takes this string; the engine never imports napari or Qt.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import cache, partial

from .. import __version__
from ..errors import DataNotFoundError, DendritePanopticError

logger = logging.getLogger(__name__)

DEFAULT_MIX = "generator:0.4,yolo11:0.25,findspines:0.2,smirnov:0.15"
"""The mix the CLI trains on when ``--data`` is not given."""

GENERATED = ("generator", "generator3d", "generator-slabs")
REAL_FOLDERS = {
    "yolo11": "spine-types-yolo11",
    "findspines": "findspines",
    "findspines-negatives": "findspines",
    "smirnov": "smirnov2018",
}
"""Each real source and its folder under the data root."""


def parse_mix(mix: str) -> list[tuple[str, float]]:
    """``"generator:0.4,smirnov:0.15"`` → [("generator", 0.4), ("smirnov", 0.15)]; a missing
    weight is 1. Raises :class:`DendritePanopticError` for an unknown name or unreadable weight."""
    parts = []
    for item in mix.split(","):
        name, _, weight = item.strip().partition(":")
        if name not in GENERATED and name not in REAL_FOLDERS:
            raise DendritePanopticError(f"--data: unknown source {name!r}")
        try:
            parts.append((name, float(weight or 1.0)))
        except ValueError:
            raise DendritePanopticError(f"--data: cannot read the weight in {item!r}") from None
    return parts


@cache
def _findspines_split_in(root: str) -> tuple[list, list]:
    from . import real as rd

    return rd.findspines_split(rd.load_findspines(root))


def _findspines_split() -> tuple[list, list]:
    """The FindSpines (train, val) split of the data folder, grouped once per folder for both
    FindSpines sources of a mix."""
    from .real import data_root

    return _findspines_split_in(str(data_root()))


def _real_source(name: str, crop: int, native_px_um: float) -> tuple[Callable, str]:
    """One real set's sample source and description; FileNotFoundError when it is absent."""
    from . import real as rd

    if name == "yolo11":
        src = rd.mask_source(rd.load_yolo11("train"), crop, native_px_um)
        return src, "YOLO11 train split (outlines on synthetic backgrounds)"
    if name == "findspines":
        train, val = _findspines_split()
        src = rd.point_source(train, crop, native_px_um)
        return src, f"FindSpines {len(train)} training images ({len(val)} held out by group)"
    if name == "findspines-negatives":
        train, _ = _findspines_split()
        anchors = [rd.hard_negatives(it.image, it.centres_px, it.pixel_size_um) for it in train]
        src = rd.point_source(train, crop, native_px_um, p_centre=1.0, anchors=anchors)
        n_fields = sum(1 for a in anchors if len(a))
        n_blobs = sum(len(a) for a in anchors)
        return src, f"FindSpines hard negatives ({n_blobs} blobs in {n_fields} training images)"
    src = rd.point_source(rd.load_smirnov("train"), crop, native_px_um)
    return src, "Smirnov train split (pseudo-masks from centres)"


def training_source(
    mix: str, crop: int, native_px_um: float, planes: int = 1
) -> tuple[Callable, str]:
    """The sample source for ``mix`` and its description.

    ``crop``: crop side in px at ``native_px_um`` (µm per px). Generated stacks carry their
    neighbouring planes when ``planes`` > 1 (the real sets are 2D). The source is called as
    ``source(rng)`` and returns a :class:`.samples.TrainingSample`.
    """
    from .samples import generator_sample, slab_sample

    sources, described = [], []
    for name, weight in parse_mix(mix):
        if name == "generator-slabs":
            sources.append((partial(slab_sample, crop=crop, native_px_um=native_px_um), weight))
            described.append(f"{name} {weight:g}")
            continue
        if name in GENERATED:
            draw = partial(
                generator_sample,
                crop=crop,
                native_px_um=native_px_um,
                p3d=1.0 if name == "generator3d" else 0.25,
                neighbours=planes > 1,
            )
            sources.append((draw, weight))
            described.append(f"{name} {weight:g}")
            continue
        try:
            src, what = _real_source(name, crop, native_px_um)
        except DataNotFoundError as exc:  # never a silently different mix
            raise DataNotFoundError(f"--data {name}: {exc}, or leave {name} out") from None
        sources.append((src, weight))
        described.append(f"{what} {weight:g}")
    if not sources:
        raise DendritePanopticError("--data: no training source is available")
    if len(sources) == 1:
        return sources[0][0], described[0]
    from .real import mixed_source

    return mixed_source(sources), "; ".join(described)


def data_fingerprints(mix: str) -> dict[str, str]:
    """For each source in ``mix``: the SHA-256 over the sorted (relative path, size) list of a
    real set's files, or, for the generator, the plugin version that contains it. Absent real
    sets are left out."""
    from .real import data_root

    prints: dict[str, str] = {}
    for name, _ in parse_mix(mix):
        if name in GENERATED:
            prints[name] = f"napari_dendrite_panoptic.synthetic {__version__}"
            continue
        root = data_root() / REAL_FOLDERS[name]
        if not root.is_dir():  # never the fingerprint of a set that is not there
            continue
        digest = hashlib.sha256()
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(f"{f.relative_to(root)}:{f.stat().st_size}\n".encode())
        prints[name] = digest.hexdigest()
    return prints
