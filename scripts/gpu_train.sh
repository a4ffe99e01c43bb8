#!/usr/bin/env bash
# Train the spine network of the bundled pair further on one CUDA GPU, in one call.
#
# The real sets must be in a folder beside the checkout's root, e.g.
#   mkdir -p .gpu_data && cp -r ../shared/data/{README.md,findspines,smirnov2018,spine-types-yolo11} .gpu_data/
# then, on the GPU machine, from the checkout's root (7 minutes of training):
#   SEED=23 VERSION=0.6 bash scripts/gpu_train.sh 7.0
#
# It trains the spine network further (three input planes; a 1-plane base is widened first), so
# the bundled dendrite network stays (docs/models.md, "Reproduce"). Give each run its own seed
# so that it draws new crops, and a version for its card. To go on from an earlier run's model,
# name its folder in BASE (v0.3's second part: BASE=<first part's model> SEED=22 ... 3.0), and
# another data mix in DATA (v0.6's: DATA=generator:0.2,generator3d:0.2,findspines:0.2,
# findspines-negatives:0.1,smirnov:0.15,yolo11:0.15; LR=1.5e-4 for a base already trained). The
# model folder (17 MB) goes to $OUT/model and the log to $OUT/train.log; score it with
# `dendrite-panoptic evaluate` and `scripts/calibrate_threshold.py`. To check it on a CPU:
#   OUT=/tmp/check SEED=1 DEVICE=cpu WORKERS=0 BATCH=2 PYTHON=.venv/bin/python bash scripts/gpu_train.sh 0.5
set -euo pipefail
minutes=${1:?usage: gpu_train.sh MINUTES}
seed=${SEED:?set SEED to a seed no earlier run used (21 and 22 were)}
out=${OUT:-runs/gpu}
mkdir -p "$out"
export PYTHONPATH=src OMP_NUM_THREADS=1 DENDRITE_PANOPTIC_DATA="$PWD/.gpu_data"
"${PYTHON:-python3}" -m napari_dendrite_panoptic.cli train --work "$(mktemp -d)" --out "$out/model" \
    --base-model "${BASE:-src/napari_dendrite_panoptic/models/weights/bundled}" --input-planes 3 \
    --which spines --data "${DATA:-generator:0.2,generator3d:0.3,yolo11:0.15,findspines:0.2,smirnov:0.15}" \
    --steps 100000 --max-minutes "$minutes" --batch-size "${BATCH:-16}" --lr "${LR:-5e-4}" --warmup 100 \
    --checkpoint-every 500 --workers "${WORKERS:-14}" --device "${DEVICE:-cuda}" --seed "$seed" \
    --validate 0 --name dendrite-panoptic --model-version "${VERSION:-0.5}" 2>&1 |
    tr '\r' '\n' | awk 'NR % 50 == 1 || !/^training:/' > "$out/train.log"
tail -3 "$out/train.log"
