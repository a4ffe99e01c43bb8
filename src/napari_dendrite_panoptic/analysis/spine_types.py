"""Spine types: mushroom, stubby, branched, thin, filopodium.

Two classifiers, measured against the YOLO11 set's real labels (``scripts/eval_spine_types.py``):

- :func:`classify_rules`: morphological rules in the style of Peters & Kaiserman-Abramof (1970)
  and Harris, Jensen & Tsao (1992): ratios of length, head diameter and neck width, and the number
  of tips for branched spines. Thresholds are :class:`TypeRules` (editable in the dock), their
  defaults tuned on the YOLO11 ``train`` split.
- :func:`classify_learned`: a small convolutional network on a crop of each spine (image, spine
  mask, dendrite mask, rotated so the spine points up, 0.1 µm per pixel) plus its measurements;
  weights ship as ``spine_types.safetensors`` beside this module: an ensemble of three such
  networks (seeds 0, 1, 2, probabilities averaged), trained by ``scripts/train_spine_types.py``
  on the ``train`` split only: its ground-truth outlines and the bundled model's own predicted
  spines on those images (matched to an outline at IoU >= 0.25, with its type), so it sees the
  masks it gets at run time.

The dock and the CLI use the learned classifier when its weights are present, because it
scored higher on ``val`` (numbers in ``docs/spine_analysis.md``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from ..core import SPINE_TYPES

if TYPE_CHECKING:
    from torch import nn

    LearnedClassifier = tuple[list[nn.Module], np.ndarray, np.ndarray]
    """(ensemble members, feature mean, feature std), as :func:`load_learned` returns it."""

WEIGHTS = Path(__file__).with_name("spine_types.safetensors")
"""The learned classifier's weights (safetensors; its metadata holds the feature scaling)."""

CROP_PX = 48
BRANCHED_MIN_TIPS = 2
"""A spine the rules call branched has at least this many tips."""
CROP_UM_PER_PX = 0.1


@dataclass(frozen=True)
class TypeRules:
    """Thresholds of the rule set (µm and ratios), applied in this order:

    1. ``tips >= branched_min_tips`` (and never under 2 tips) → branched;
    2. ``length >= filopodium_min_length_um`` and ``head / neck < filopodium_max_head_neck``
       → filopodium;
    3. ``length / head >= thin_min_length_head`` and ``head < thin_max_head_um`` → thin;
    4. ``head / neck >= mushroom_min_head_neck`` or ``head >= mushroom_min_head_um`` with a neck
       → mushroom;
    5. otherwise stubby (short, no distinct head).

    A spine without a neck has neck width = head diameter (ratio 1). The defaults are the
    thresholds tuned on the YOLO11 ``train`` split (``scripts/eval_spine_types.py --tune``);
    there the tip count did not help, so ``branched_min_tips`` is off (99) unless set.
    """

    branched_min_tips: int = 99
    filopodium_min_length_um: float = 1.8
    filopodium_max_head_neck: float = 1.3
    thin_min_length_head: float = 1.2
    thin_max_head_um: float = 1.0
    mushroom_min_head_neck: float = 1.1
    mushroom_min_head_um: float = 0.6

    def to_dict(self) -> dict:
        """The thresholds as a JSON-ready dict."""
        return asdict(self)


def classify_rules(table: dict[str, np.ndarray], rules: TypeRules | None = None) -> np.ndarray:
    """Spine type names (N,) from a measurement table (:func:`~.spine_measurements.measure_spines`)."""
    r = rules or TypeRules()
    length = np.asarray(table["length_um"], dtype=float)
    head = np.asarray(table["head_diameter_um"], dtype=float)
    neck = np.asarray(table["neck_width_um"], dtype=float)
    neck = np.where(np.isfinite(neck) & (neck > 0), neck, head)
    tips = np.asarray(table["tips"])
    ratio = head / np.maximum(neck, 1e-9)
    # a branched spine has two tips at least, whatever the threshold is set to
    min_tips = max(BRANCHED_MIN_TIPS, r.branched_min_tips)
    has_neck = np.isfinite(np.asarray(table["neck_width_um"], dtype=float))
    out = np.full(length.shape, "stubby", dtype=object)
    rest = np.ones(length.shape, dtype=bool)
    for name, cond in (
        ("branched", tips >= min_tips),
        (
            "filopodium",
            (length >= r.filopodium_min_length_um) & (ratio < r.filopodium_max_head_neck),
        ),
        (
            "thin",
            (length / np.maximum(head, 1e-9) >= r.thin_min_length_head)
            & (head < r.thin_max_head_um),
        ),
        (
            "mushroom",
            (ratio >= r.mushroom_min_head_neck) | ((head >= r.mushroom_min_head_um) & has_neck),
        ),
    ):
        hit = rest & cond
        out[hit] = name
        rest &= ~hit
    return out.astype(str)


# ---------------------------------------------------------------------------------------------
# learned classifier
# ---------------------------------------------------------------------------------------------


def measurement_features(table: dict[str, np.ndarray], px_um: float) -> np.ndarray:
    """(N, 9) float32 scale-aware features of the measurement table for the learned model."""
    size = np.asarray(table["area_um2"] if "area_um2" in table else table["volume_um3"], float)
    length = np.maximum(np.asarray(table["length_um"], float), 1e-3)
    head = np.maximum(np.asarray(table["head_diameter_um"], float), 1e-3)
    neck_raw = np.asarray(table["neck_width_um"], float)
    neck = np.where(np.isfinite(neck_raw), neck_raw, head)
    f = [
        np.log(np.maximum(size, 1e-4)),
        np.log(length),
        np.log(head),
        np.asarray(table["neck_length_um"], float),
        np.log(np.maximum(neck, 1e-3)),
        np.minimum(np.asarray(table["tips"], float), 4),
        np.log(head / np.maximum(neck, 1e-3)),
        np.log(length / head),
        np.full(length.shape, px_um),
    ]
    return np.stack(f, 1).astype(np.float32).reshape(-1, 9)


def spine_crops(
    image: np.ndarray,
    dendrite: np.ndarray,
    spines: np.ndarray,
    table: dict[str, np.ndarray],
    voxel_size_um: tuple[float, float, float],
) -> np.ndarray:
    """(N, 3, 48, 48) float32 crops, one per table row: image (divided by the dendrite's median
    intensity), this spine's mask, the dendrite mask; 0.1 µm per crop pixel, centred halfway
    between base and tip, rotated so the spine points to crop row 0. Stacks are projected along z
    over the spine's planes (max)."""
    img = np.asarray(image, dtype=np.float32)
    img = img[None] if img.ndim == 2 else img
    dend = np.asarray(dendrite) > 0
    dend = dend[None] if dend.ndim == 2 else dend
    lab = np.asarray(spines)
    lab = lab[None] if lab.ndim == 2 else lab
    px = float(voxel_size_um[-1])
    ref = (
        float(np.median(img[dend]))
        if dend.any()
        else float(np.median(img[img > 0] if (img > 0).any() else img))
    )
    ref = ref if ref > 0 else 1.0
    n = len(table["id"])
    out = np.zeros((n, 3, CROP_PX, CROP_PX), dtype=np.float32)
    objects = ndi.find_objects(lab)
    half = (CROP_PX - 1) / 2
    g = (np.arange(CROP_PX) - half) * CROP_UM_PER_PX  # µm offsets of the crop grid
    gy, gx = np.meshgrid(g, g, indexing="ij")
    for i in range(n):
        sid = int(table["id"][i])
        sl = objects[sid - 1] if sid - 1 < len(objects) else None
        if sl is None:
            continue
        zs = sl[0]
        plane_img = img[zs].max(0)
        plane_spine = (lab[zs] == sid).any(0).astype(np.float32)
        plane_dend = dend[zs].any(0).astype(np.float32)
        base = np.array([table["base_y_um"][i], table["base_x_um"][i]])
        tip = np.array([table["tip_y_um"][i], table["tip_x_um"][i]])
        axis = tip - base
        norm = np.linalg.norm(axis)
        up = axis / norm if norm > 1e-6 else np.array([-1.0, 0.0])
        right = np.array([-up[1], up[0]])
        centre = 0.5 * (base + tip)
        # crop row r (offset gy) runs against the axis: row 0 is the tip side
        py = centre[0] - gy * up[0] + gx * right[0]
        pxx = centre[1] - gy * up[1] + gx * right[1]
        coords = np.stack([py / px, pxx / px])
        out[i, 0] = ndi.map_coordinates(plane_img, coords, order=1, cval=0.0) / ref
        out[i, 1] = ndi.map_coordinates(plane_spine, coords, order=1, cval=0.0)
        out[i, 2] = ndi.map_coordinates(plane_dend, coords, order=1, cval=0.0)
    return out


def build_net(n_features: int = 9) -> nn.Module:
    """The learned classifier: 3 conv blocks on the crop, joined with the measurement features."""
    import torch
    from torch import nn

    class SpineTypeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
            )
            self.head = nn.Sequential(
                nn.Linear(64 + n_features, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 5)
            )

        def forward(self, crops, feats):
            return self.head(torch.cat([self.conv(crops).flatten(1), feats], 1))

    return SpineTypeNet()


def load_learned(path: str | Path | None = None) -> LearnedClassifier | None:
    """(nets, mean, std) of the shipped learned classifier (an ensemble: the weights of member
    ``k`` are stored under ``m<k>.``), or None when its weights are absent."""
    from safetensors.torch import load_file, safe_open

    p = Path(path) if path else WEIGHTS
    if not p.exists():
        return None
    with safe_open(str(p), "pt") as fh:
        meta = json.loads(fh.metadata()["features"])
    state = load_file(str(p))
    members = sorted({k.split(".", 1)[0] for k in state})
    nets = []
    for m in members:
        net = build_net(len(meta["mean"]))
        net.load_state_dict(
            {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(m + ".")}
        )
        net.eval()
        nets.append(net)
    return nets, np.asarray(meta["mean"], np.float32), np.asarray(meta["std"], np.float32)


def predict_learned_proba(
    model: LearnedClassifier, crops: np.ndarray, features: np.ndarray, mirror: bool = True
) -> np.ndarray:
    """(N, 5) class probabilities (order :data:`SPINE_TYPES`) of crops (N, 3, 48, 48) and raw
    features (N, 9), averaged over the ensemble and, with ``mirror``, over each crop and its
    mirror image (a mirrored spine is the same type; the networks were trained with mirrored
    crops, and averaging both views raised accuracy by 0.004-0.006 in a 5-fold cross-validation
    over the ``train`` images: ``scripts/train_spine_types.py --cv 5``)."""
    import torch

    nets, mean, std = model
    if len(crops) == 0:
        return np.zeros((0, 5), dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
    f = torch.from_numpy(((features - mean) / std).astype(np.float32))
    with torch.no_grad():
        views = (x, x.flip(-1)) if mirror else (x,)
        probs = [torch.softmax(net(view, f), 1) for net in nets for view in views]
    return torch.stack(probs).mean(0).numpy()


def classify_learned(
    image: np.ndarray,
    dendrite: np.ndarray,
    spines: np.ndarray,
    table: dict[str, np.ndarray],
    voxel_size_um: tuple[float, float, float],
    model: LearnedClassifier | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Type names (N,) and their probabilities (N,) from the learned classifier, or None when
    its weights are absent."""
    model = model or load_learned()
    if model is None:
        return None
    crops = spine_crops(image, dendrite, spines, table, voxel_size_um)
    proba = predict_learned_proba(
        model, crops, measurement_features(table, float(voxel_size_um[-1]))
    )
    # not forced to agree with the tip count: forbidding "branched" below two measured tips
    # dropped the branched spines of YOLO11 val found from over 0.6 to 0.16 (the tip count
    # misses many annotated branches)
    k = proba.argmax(1) if len(proba) else np.zeros(0, int)
    names = np.array([SPINE_TYPES[j] for j in k], dtype=str)
    return names, proba.max(1) if len(proba) else np.zeros(0)


def classify(
    table: dict[str, np.ndarray],
    image: np.ndarray | None = None,
    dendrite: np.ndarray | None = None,
    spines: np.ndarray | None = None,
    voxel_size_um: tuple[float, float, float] | None = None,
    method: str = "auto",
    rules: TypeRules | None = None,
) -> tuple[np.ndarray, str]:
    """Spine types (N,) and the method used (``"learned"`` or ``"rules"``).

    ``method="auto"`` uses the learned classifier when its weights and an image are there, else
    the rules.
    """
    if method not in ("auto", "learned", "rules"):
        raise ValueError(f"method must be auto, learned or rules, got {method!r}")
    if method != "rules" and image is not None and dendrite is not None and spines is not None:
        got = classify_learned(image, dendrite, spines, table, voxel_size_um or (1.0, 1.0, 1.0))
        if got is not None:
            return got[0], "learned"
    if method == "learned":
        raise FileNotFoundError(f"the learned spine type classifier is absent ({WEIGHTS})")
    return classify_rules(table, rules), "rules"
