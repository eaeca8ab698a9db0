#!/usr/bin/env bash
# Make .venv (Python 3.11+) with laue-live and its test tools installed. Idempotent and quiet.
# On a machine without an NVIDIA driver, torch is taken as the CPU build when one is at hand:
# pip would otherwise resolve `torch>=2.4` to a multi-GB CUDA build that such a machine cannot use.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$py" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/pip install -q "torch==2.13.0" 2>/dev/null || true
  fi
fi
.venv/bin/pip install -q -e ".[test]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import laue_live, torch, tiled, bluesky" || { echo "setup failed" >&2; exit 1; }
