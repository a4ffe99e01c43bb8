"""Run the bundled model (or ``--model``) on every image of a YOLO11 split; cache its dendrite
and spines.

The learned spine-type classifier is trained partly on the model's own spines (what it sees at
run time, ``scripts/train_spine_types.py --predicted-cache``). This caches, per image, the
predicted dendrite mask and spine labels (compressed npz, one file per split) so training reruns
are fast. CPU, a few seconds per image.

    PYTHONPATH=src python scripts/cache_predicted_spines.py --split train --out runs/pred_train.npz
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_dendrite_panoptic.data import real as rd
from napari_dendrite_panoptic.inference import InferenceConfig, predict
from napari_dendrite_panoptic.models import load_models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="train")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default=None, help="model folder (default: the bundled pair)")
    args = ap.parse_args()
    models = load_models(args.model, "cpu")
    arrays = {}
    t0 = time.perf_counter()
    for k, item in enumerate(rd.load_yolo11(args.split)):
        px = item.pixel_size_um
        result = predict(item.image, (1.0, px, px), InferenceConfig(device="cpu"), models=models)
        arrays[f"{item.name}.dendrite"] = np.asarray(result.dendrite[0]) > 0
        arrays[f"{item.name}.spines"] = np.asarray(result.spines[0]).astype(np.uint16)
        print(
            f"{k + 1} {item.name}: {int(arrays[f'{item.name}.spines'].max())} spines, "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
