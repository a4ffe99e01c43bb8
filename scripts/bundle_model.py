"""Make a trained model folder the bundled pair: its weights, a card that names no path, its scores.

    .venv/bin/python scripts/bundle_model.py runs/v06b/model --version 0.6 \
        --base "the 2026-12-05 candidate (base_model_provenance)" \
        --base "bundled v0.5 (commit 8d14f6e, 2026-11-27)" \
        --description-add "v0.6 (2026-12-06) = ..." \
        --eval docs/results/eval_real_v06.json --eval docs/results/eval_generator_v06.json \
        --measured-with "dendrite-panoptic evaluate ... ; see docs/models.md"

Copies the model's weight files into ``src/napari_dendrite_panoptic/models/weights/bundled``
and writes its card there with: ``version``; the bundled description extended by
``--description-add`` (once: bundling the same model again does not repeat it); ``metrics`` from the ``dendrite-panoptic evaluate --json`` files (later
files win on a shared key) and ``measured_with``; and the ``base_model`` paths of the newest
levels of the provenance chain (and their ``config``) replaced by the ``--base`` words, one per
level, newest first (a card names no path outside its folder). The
model training runs' own folders (``output_model``, ``work_dir``, and a ``base_model`` still given as
a folder at an older level) are left out or named in words at every level. The model
folder is loaded first (its weights must match the SHA-256 in its card) and the bundled
folder once more with :func:`napari_dendrite_panoptic.models.load_models` before the script reports success.
Each file is written atomically; weights first, the card last.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from napari_dendrite_panoptic.core import atomic_write_text
from napari_dendrite_panoptic.models import load_models

BUNDLED = (
    Path(__file__).resolve().parents[1] / "src/napari_dendrite_panoptic/models/weights/bundled"
)


LOCAL_FOLDERS = ("output_model", "work_dir")
"""Training-config keys that name the machine's own folders: left out of a bundled card."""

EARLIER_RUN = "the model folder this run started from (base_model_identity names its weights)"


def forget_local_folders(level: dict) -> None:
    """Down the provenance chain from ``level``: drop :data:`LOCAL_FOLDERS` from each config
    and replace a ``base_model`` that is still a folder path (no spaces) by words."""
    while level:
        config = level.get("config", {})
        for key in LOCAL_FOLDERS:
            config.pop(key, None)
        for where in (level, config):
            base = where.get("base_model")
            if isinstance(base, str) and base and " " not in base:
                where["base_model"] = EARLIER_RUN
        level = level.get("base_model_provenance", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument(
        "--base",
        action="append",
        required=True,
        help="the base model in words (no path); again for the base's base, and so on",
    )
    parser.add_argument("--description-add", required=True)
    parser.add_argument("--eval", action="append", type=Path, default=[])
    parser.add_argument("--measured-with", required=True)
    args = parser.parse_args()

    load_models(args.model, "cpu")  # refuses weights whose SHA-256 the card does not vouch for
    card = json.loads((args.model / "card.json").read_text())
    old = json.loads((BUNDLED / "card.json").read_text())
    for key in ("spines", "dendrites"):
        name = card[key]["weights_file"]
        tmp = BUNDLED / f".{name}.tmp"
        shutil.copyfile(args.model / name, tmp)
        tmp.replace(BUNDLED / name)

    card["version"] = args.version
    described = old["description"]
    if args.description_add not in described:  # bundling the same model again adds nothing
        described = f"{described} {args.description_add}"
    card["description"] = described
    level = card["provenance"]
    for words in args.base:  # newest first, down the provenance chain
        level["base_model"] = words
        if "base_model" in level.get("config", {}):
            level["config"]["base_model"] = words
        level = level.get("base_model_provenance", {})
    forget_local_folders(card["provenance"])
    metrics: dict = {}
    for path in args.eval:
        metrics.update(json.loads(path.read_text()))
    metrics["measured_with"] = args.measured_with
    card["metrics"] = metrics
    atomic_write_text(BUNDLED / "card.json", json.dumps(card, indent=1, sort_keys=True) + "\n")
    models = load_models(BUNDLED, "cpu")
    print(f"bundled {args.model} as v{args.version}: {models.card.name} {models.card.version}")


if __name__ == "__main__":
    main()
