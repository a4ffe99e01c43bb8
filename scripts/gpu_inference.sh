#!/usr/bin/env bash
# Measure inference on one CUDA GPU in one call: 1024² planes per second for this plugin's
# pipeline and its two peers, then where the plugin's time goes on one plane (the operators on
# the GPU, the plugin's Python functions), to see what keeps it from 30 planes/s
# (docs/performance.md, "On a GPU"). On the GPU machine, from the checkout's root:
#   bash scripts/gpu_inference.sh
# Output: $OUT/bench_inference_gpu.txt (default OUT=runs/gpu). To check it on a CPU:
#   OUT=/tmp/check DEVICE=cpu SIZE=256 RUNS=1 PYTHON=.venv/bin/python bash scripts/gpu_inference.sh
set -euo pipefail
out=${OUT:-runs/gpu}
mkdir -p "$out"
export PYTHONPATH=src
py=${PYTHON:-python3}
bench=(benchmarks/bench_inference.py --device "${DEVICE:-cuda}" --size "${SIZE:-1024}")
{
    "$py" "${bench[@]}" --only a,b,c --runs "${RUNS:-10}"
    "$py" "${bench[@]}" --only a --runs 1 --profile
} 2>&1 | grep -v '^\(USDT\|ERROR\|WARNING\):' | tee "$out/bench_inference_gpu.txt"
