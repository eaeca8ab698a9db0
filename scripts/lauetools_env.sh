#!/usr/bin/env bash
# Make .lauetools-venv: LaueTools 3.2.19 (the paper's baseline) in a virtual environment of its own,
# for the tests and benchmarks that check laue-live against LaueTools itself
# (tests/sim/test_lauetools_crosscheck.py, tests/spots/test_lauetools_interop.py).
#   usage: bash scripts/lauetools_env.sh [DIR]     (default DIR: .lauetools-venv; prints DIR's python)
# Apart from .venv because LaueTools needs numpy < 2.3, and installed with --no-deps because its GUI
# dependency (wxPython) does not build on a headless machine: its runtime dependencies are pinned in
# scripts/lauetools-requirements.txt instead. Idempotent; a venv whose LaueTools does not import is
# made again. Only PyPI is needed (no other download).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.lauetools-venv}
py=${PYTHON:-python3}
check() { "$dir/bin/python" -c "import LaueTools.lauecore, LaueTools.IOLaueTools, LaueTools.LaueGeometry" 2>/dev/null; }
if [[ -x $dir/bin/python ]] && ! check; then
  echo "lauetools_env: $dir exists but LaueTools does not import there: making it again" >&2
  rm -rf "$dir"
fi
if [[ ! -x $dir/bin/python ]]; then
  "$py" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r scripts/lauetools-requirements.txt >&2
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps lauetools==3.2.19 >&2
  check || { echo "lauetools_env: LaueTools does not import in $dir" >&2; exit 1; }
fi
echo "$(cd "$dir" && pwd)/bin/python"
