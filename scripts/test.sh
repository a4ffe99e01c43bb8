#!/usr/bin/env bash
# Whole test suite, headless: napari needs a real OpenGL context, which xvfb-run provides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests
xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python -m pytest -p no:cacheprovider "$@"
