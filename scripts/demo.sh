#!/usr/bin/env bash
# Main job: set up, write the bundled synthetic sample stack, segment it, write labels, a per-spine
# table and an overlay PNG into demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo_output
.venv/bin/dendrite-panoptic sample demo_output/sample_stack.tif --ground-truth --overwrite
.venv/bin/dendrite-panoptic segment demo_output/sample_stack.tif --out demo_output --overlay --overwrite
echo "outputs in demo_output/ (open sample_stack_overlay.png to look at the result)"
