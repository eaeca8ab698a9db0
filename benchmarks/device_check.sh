#!/usr/bin/env bash
# GPU check of the per-frame path (issue 8): one script for one call of the device tool.
#
# Steps, each under `timeout` so that one failure never loses the others' results:
#   1. bundle  - the device image has CUDA torch (and numpy/scipy/pandas/pyarrow/h5py/typer/...) in its
#                own python3 but no tiled/pyzmq/bluesky/duckdb/..., and nothing can be fetched there:
#                .device-wheels/site-py312.tar.xz (made here by benchmarks/device_wheels.sh, ~27 MB,
#                carried) is unpacked into /tmp/laue-site and the checks run that python3 with
#                PYTHONPATH=/tmp/laue-site:<repo>, so the bench runs WITH its sinks (local Tiled server
#                + 0MQ) and tests/pipeline's service test runs too.
#      or setup - without the bundle: `bash scripts/setup.sh` (fails offline on the device image, ~2 min
#                lost), then that python3 with PYTHONPATH=<repo>: pipeline, tests and `bench --no-sinks`
#                only (the sinks and tests/pipeline/test_bench.py's service test need tiled/zmq).
#   2. gpu     - nvidia-smi and torch's view of the device (into summary.txt).
#   3. smoke   - FramePipeline on CUDA with 16 BM32 frames: fp16 CNN compiled (or its fallback,
#                logged), fp16 eager, exact fit; host syncs per batch (torch's sync debug mode) and
#                a rough ms per frame. A quick signal even if pytest or the bench break.
#   4. pytest  - `python -m pytest -q tests/pipeline -p no:cacheprovider` (the cuda-parametrized
#                tests: peaks identical to numpy, descriptors within tolerance, fp16 vs fp32).
#   5. bench   - `laue-live bench --device cuda --json $OUT/bench_cuda.json --lauetools off` (no
#                LaueTools venv can be made offline) + `--sinks` when tiled/zmq import (`--no-sinks`
#                otherwise) + $BENCH_ARGS; its printed table goes to $OUT/bench_cuda.md.
#   6. sinks   - (with --sinks) the service rows read back from bench_cuda.json: frames/s through
#                analysis + Tiled + 0MQ, frames lost; fails if a row recorded an error (the bench
#                itself exits 0 then).
#   Last, a summary of every step's exit code (also in $OUT/summary.txt); exit 1 if any failed.
#
# Use, from a session whose task has a device:
#   here, once:  bash benchmarks/device_check.sh --prepare
#                (copies the real BM32 frames, ~16 MB, from ../shared/data/bm32 into .device-shared/,
#                 ignored through .git/info/exclude: ../shared does not travel to the device; and runs
#                 benchmarks/device_wheels.sh: .device-wheels/, ~27 MB, ignored the same way. The
#                 travelling tree, repo ~7.5 MB included, must stay under 64 MiB)
#   then:        run(command="bash benchmarks/device_check.sh", carry=[".device-shared", ".device-wheels"],
#                    timeout_s=540)
#   Files back in $OUT (the tool returns at most 8): summary.txt, setup.log, smoke.log, pytest.log,
#   bench_cuda.md, bench_cuda.json, bench_stderr.log.
# Budget: DEVICE_CHECK_BUDGET_S (default 480 s) for all steps together; caps per step BUNDLE_S=60 (or
# SETUP_S=150), SMOKE_S=120, PYTEST_S=180; the bench gets whatever is left. DEVICE_CHECK_PYTHON names
# the python to use (default: the image's python3). A dry run without a GPU, in a Python 3.12 venv
# holding only packages of the image's list:
#   OUT=/tmp/dc DEVICE_CHECK_PYTHON=/tmp/img312/bin/python DEVICE_CHECK_DEVICE=cpu BENCH_ARGS=--quick \
#     bash benchmarks/device_check.sh
set -u

cd "$(dirname "$0")/.." || exit 2
REPO=$PWD

if [[ "${1:-}" == "--prepare" ]]; then
  src="${LAUE_LIVE_SHARED:-$REPO/../shared}/data/bm32"
  [[ -d "$src" ]] || { echo "no BM32 frames at $src (set LAUE_LIVE_SHARED)" >&2; exit 1; }
  mkdir -p .device-shared/data
  chmod -R u+w .device-shared 2>/dev/null
  rm -rf .device-shared/data/bm32
  cp -rL "$src" .device-shared/data/bm32
  chmod -R u+w .device-shared  # the reference folder is read-only; its copy need not be
  if excl="$(git rev-parse --git-path info/exclude 2>/dev/null)"; then
    mkdir -p "$(dirname "$excl")"
    grep -qx '/.device-shared/' "$excl" 2>/dev/null || echo '/.device-shared/' >>"$excl"
  fi
  du -sh .device-shared
  bash benchmarks/device_wheels.sh || exit 1
  echo 'now: run(command="bash benchmarks/device_check.sh", carry=[".device-shared", ".device-wheels"], timeout_s=540)'
  exit 0
fi

OUT="${OUT:-$REPO/device_check_out}"
mkdir -p "$OUT"
TMPD=$(mktemp -d)
DEVICE=${DEVICE_CHECK_DEVICE:-cuda}
export PYTHONUNBUFFERED=1 PIP_RETRIES=0 PIP_TIMEOUT=5 PIP_DISABLE_PIP_VERSION_CHECK=1
START=$(date +%s)
BUDGET=${DEVICE_CHECK_BUDGET_S:-480}
NAMES=()
CODES=()
TIMES=()

left() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME CAP_S LOGFILE CMD...: run CMD under timeout (the smaller of CAP_S and the budget left),
# its output to the console and appended to LOGFILE; records the exit code (124: timed out,
# 125: not run, no time left).
step() {
  local name=$1 cap=$2 log=$3
  shift 3
  local t rc t0
  t=$(left)
  ((cap < t)) && t=$cap
  echo
  echo "=== $name (limit ${t}s, $(date -u +%H:%M:%S)) ==="
  t0=$(date +%s)
  if ((t < 10)); then
    echo "not run: no time left in the ${BUDGET}s budget"
    rc=125
  else
    timeout -k 10 "$t" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
  fi
  NAMES+=("$name")
  CODES+=("$rc")
  TIMES+=("$(($(date +%s) - t0))")
  echo "=== $name: exit $rc after $(($(date +%s) - t0))s ==="
}

# --------------------------------------------------------------------------- 1. bundle or setup
BUNDLE=$REPO/.device-wheels/site-py312.tar.xz
SITE=""
if [[ -f "$BUNDLE" ]]; then
  # what the image lacks, unpacked (not pip-installed: the wheels would not fit the 64 MiB tree)
  SITE=${DEVICE_SITE:-/tmp/laue-site}
  # shellcheck disable=SC2016
  step bundle "${BUNDLE_S:-60}" "$OUT/setup.log" bash -c \
    'rm -rf "$2" && mkdir -p "$2" &&
     { tar -xJf "$1" -C "$2" || python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$1" "$2"; } &&
     echo "unpacked $1 into $2: $(du -sh "$2" | cut -f1)" &&
     { head -n 2 "$(dirname "$1")/MANIFEST.txt" 2>/dev/null || true; }' _ "$BUNDLE" "$SITE"
elif [[ -n "${SKIP_SETUP:-}" ]]; then
  step setup 10 "$OUT/setup.log" echo "setup not run (SKIP_SETUP is set)"
else
  step setup "${SETUP_S:-150}" "$OUT/setup.log" bash scripts/setup.sh
fi

CUDA_OK="import torch, laue_live.pipeline; assert '$DEVICE' == 'cpu' or torch.cuda.is_available()"
PY=""
SITE_PATH="${SITE:+$SITE:}$REPO"
use_image_python() {  # the first candidate that imports torch + the pipeline with PYTHONPATH=[bundle:]repo
  local cand path
  for cand in "$@"; do
    command -v "$cand" >/dev/null 2>&1 || continue
    path=$SITE_PATH
    # the bundle holds CPython 3.12 builds: on any other python they would break its imports
    if [[ -n "$SITE" ]] && ! "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
      echo "$cand is not Python 3.12: the bundle is left out (no sinks)" | tee -a "$OUT/setup.log"
      path=$REPO
    fi
    if PYTHONPATH=$path "$cand" -c "$CUDA_OK" 2>/dev/null; then
      PY=$cand
      export PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}"
      return 0
    fi
  done
  return 1
}
if [[ -n "${DEVICE_CHECK_PYTHON:-}" ]]; then
  use_image_python "$DEVICE_CHECK_PYTHON"
elif [[ -z "$SITE" && -x .venv/bin/python ]] && .venv/bin/python -c "$CUDA_OK" 2>/dev/null; then
  PY=.venv/bin/python
else
  use_image_python python3 /opt/torch/.venv/bin/python3 ||
    { [[ -x .venv/bin/python ]] && .venv/bin/python -c "$CUDA_OK" 2>/dev/null && PY=.venv/bin/python; }
fi
{
  echo "python for the checks: ${PY:-NONE FOUND} (PYTHONPATH=${PYTHONPATH:-})"
  [[ -n "$PY" ]] && "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  [[ -n "$PY" ]] && "$PY" -c "import tiled, zmq, bluesky, duckdb; print('sinks: tiled', tiled.__version__, 'pyzmq', zmq.__version__, 'bluesky', bluesky.__version__, 'duckdb', duckdb.__version__)"
  # the image's versions of what the bundle builds on (checked with numpy 2.5, pandas 3.1, typer 0.29)
  [[ -n "$SITE" && -n "$PY" ]] && "$PY" -c "from importlib.metadata import version as v
print('image:', ', '.join(f'{n} {v(n)}' for n in ('numpy', 'pandas', 'pyarrow', 'typer', 'click', 'typing_extensions', 'anyio', 'httpx', 'numba')))"
} 2>&1 | tee -a "$OUT/setup.log"
PY=${PY:-python3}
export PY

if [[ -z "${LAUE_LIVE_SHARED:-}" ]]; then
  for d in "$REPO/.device-shared" "$REPO/shared" "$REPO/../shared"; do
    if [[ -d "$d/data/bm32" ]]; then
      export LAUE_LIVE_SHARED=$d
      break
    fi
  done
fi
echo "real BM32 frames: ${LAUE_LIVE_SHARED:-not found (tests that need them skip)}" | tee -a "$OUT/setup.log"

# -------------------------------------------------------------------------------------- 2. gpu
cat >"$TMPD/gpu.py" <<'PYEOF'
import torch

if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(torch.cuda.get_device_name(0), f"sm_{p.major}{p.minor}", p.multi_processor_count, "SMs",
          round(p.total_memory / 2**30, 1), "GiB; cudnn", torch.backends.cudnn.version())
else:
    print("torch sees no CUDA device")
PYEOF
# shellcheck disable=SC2016
step gpu 30 "$OUT/summary.txt" bash -c 'nvidia-smi; "$PY" "$1"' _ "$TMPD/gpu.py"

# ------------------------------------------------------------------------------------ 3. smoke
cat >"$TMPD/smoke.py" <<'PYEOF'
"""FramePipeline on the device: does every path run, host syncs per batch, rough ms per frame."""
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from laue_live.pipeline import FramePipeline, count_host_syncs

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
device = sys.argv[1]
cuda = device == "cuda"
shared = os.environ.get("LAUE_LIVE_SHARED")
frames = []
if shared and (Path(shared) / "data/bm32").is_dir():
    import tifffile

    frames = [tifffile.imread(p) for p in sorted((Path(shared) / "data/bm32").glob("*.tif"))]
if not frames:  # no real frames carried: one simulated BM32-size frame with ~1,500 spots
    import pandas as pd

    from laue_live.sim import RenderConfig, render_frame

    rng = np.random.default_rng(0)
    shape = (2018, 2016)
    spots = pd.DataFrame({"row": rng.uniform(0, shape[0], 1500), "col": rng.uniform(0, shape[1], 1500),
                          "intensity": np.exp(rng.uniform(np.log(1e-3), 0, 1500))})
    frames = [render_frame(spots, RenderConfig(), rng=rng, frame_shape=shape).frame]
print("frames:", [f.shape for f in frames], frames[0].dtype)
batch = [frames[i % len(frames)] for i in range(16)]


def count_syncs(pipe, frames):
    out, n = count_host_syncs(lambda: pipe.process(frames), pipe.device)
    return out, "n/a" if n is None else n


for method, kw in (("cnn", {}), ("cnn", {"cnn_compile": False}), ("fit", {})):
    try:
        t0 = time.perf_counter()
        pipe = FramePipeline(method, device, batch_frames=16, **kw)
        out = pipe.process(batch)  # warm-up: compiles the fp16 CNN for its bucket sizes
        warm = time.perf_counter() - t0
        out, n_sync = count_syncs(pipe, batch)
        if cuda:
            torch.cuda.synchronize()
        reps = 5 if cuda else 1
        t0 = time.perf_counter()
        for _ in range(reps):
            out = pipe.process(batch)
        dt = (time.perf_counter() - t0) / (reps * len(batch))
        print(f"{pipe!r} compiled={getattr(pipe.cnn, 'compiled', None)}: first call {warm:.1f} s; "
              f"{n_sync} host syncs per batch of 16; {1e3 * dt:.3f} ms/frame ({1 / dt:.0f} frames/s; "
              f"process() calls do not overlap); {np.mean([len(t) for t in out]):.0f} spots/frame")
    except Exception:
        logging.exception("%s %s failed", method, kw)
        sys.exit(1)
if cuda:
    print("max GPU memory allocated:", round(torch.cuda.max_memory_allocated() / 2**30, 2), "GiB")
    if batch[0].dtype == np.uint16:  # the host copy into the pinned staging buffer, per thread count
        from laue_live.pipeline._pipeline import _fill_staging

        host = torch.empty((len(batch), *batch[0].shape), dtype=torch.int16, pin_memory=True).numpy()
        for threads in sorted({1, 2, 4, pipe.staging_threads}):
            _fill_staging(host, batch, np.dtype(np.int16), threads)
            t0 = time.perf_counter()
            for _ in range(5):
                _fill_staging(host, batch, np.dtype(np.int16), threads)
            dt = (time.perf_counter() - t0) / (5 * len(batch))
            print(f"staging copy into pinned memory, {threads} thread(s): {1e3 * dt:.3f} ms/frame"
                  f"{' (the default)' if threads == pipe.staging_threads else ''}")
PYEOF
step smoke "${SMOKE_S:-120}" "$OUT/smoke.log" "$PY" "$TMPD/smoke.py" "$DEVICE"

# ----------------------------------------------------------------------------------- 4. pytest
pytest_args=(-q tests/pipeline -p no:cacheprovider -rA --basetemp="$TMPD/pytest")
"$PY" -c "import pytest_timeout" 2>/dev/null && pytest_args+=(--timeout 150)  # one hung test, not all
step pytest "${PYTEST_S:-180}" "$OUT/pytest.log" "$PY" -m pytest "${pytest_args[@]}"

# ------------------------------------------------------------------------------------ 5. bench
# shellcheck disable=SC2206
bench_args=(--device "$DEVICE" --json "$OUT/bench_cuda.json" --lauetools off ${BENCH_ARGS:-})
SINKS=""
if "$PY" -c "import tiled, zmq" 2>/dev/null; then
  SINKS=1
  bench_args+=(--sinks)  # explicit: --quick alone turns them off
else
  bench_args+=(--no-sinks)
  echo "tiled/zmq missing in this python: the bench runs --no-sinks" | tee -a "$OUT/bench_stderr.log"
fi
if [[ "$PY" == .venv/bin/python && -x .venv/bin/laue-live ]]; then
  bench_cmd=(.venv/bin/laue-live bench)
else
  bench_cmd=("$PY" -c "import sys; sys.argv[0] = 'laue-live'; from laue_live.cli import main; main()" bench)
fi
# the table (stdout) to bench_cuda.md; progress bars and logs (stderr) to bench_stderr.log only
# shellcheck disable=SC2016
step bench "$(left)" /dev/null bash -c 'md=$1 err=$2; shift 2; "$@" >"$md" 2>>"$err"' _ \
  "$OUT/bench_cuda.md" "$OUT/bench_stderr.log" "${bench_cmd[@]}" "${bench_args[@]}"
echo "--- bench_cuda.md ---"
cat "$OUT/bench_cuda.md" 2>/dev/null
echo "--- bench_stderr.log (last lines) ---"
tail -n 5 "$OUT/bench_stderr.log" 2>/dev/null | tr '\r' '\n' | tail -n 5

# ------------------------------------------------------------------------------------ 6. sinks
# the bench records a failed service row in its JSON and goes on (exit 0): fail the check here
cat >"$TMPD/sinks.py" <<'PYEOF'
import json
import sys

try:
    rows = json.load(open(sys.argv[1])).get("sinks") or {}
except (OSError, ValueError) as exc:
    sys.exit(f"sinks: no bench JSON to read ({exc})")
bad = not rows
for mode, r in rows.items():
    if "error" in r:
        bad = True
        print(f"sinks {mode}: FAILED {r['error']}")
    else:
        bad |= r.get("frames_lost", 1) != 0
        print(f"sinks {mode}: {r['analysis_and_sinks_frames_per_s']:.1f} frames/s through analysis + Tiled"
              f" + 0MQ ({r['frames']} frames; analysis alone {r['analysis_frames_per_s']:.1f}, sinks alone "
              f"{r['sinks_only_frames_per_s']:.1f}), frames lost {r['frames_lost']}, limit {r['limit']}")
if not rows:
    print("sinks: no service rows in the JSON")
sys.exit(1 if bad else 0)
PYEOF
if [[ -n "$SINKS" ]]; then
  step sinks 30 "$TMPD/sinks.log" "$PY" "$TMPD/sinks.py" "$OUT/bench_cuda.json"
fi

# ---------------------------------------------------------------------------------- summary
failed=0
for c in "${CODES[@]}"; do [[ "$c" == 0 ]] || failed=1; done
{
  echo
  echo "=== device_check summary ($(date -u +%FT%TZ), device $DEVICE, $(($(date +%s) - START)) of ${BUDGET}s used) ==="
  for i in "${!NAMES[@]}"; do
    printf '%-7s exit %3s  %4ss\n' "${NAMES[$i]}" "${CODES[$i]}" "${TIMES[$i]}"
  done
  echo "(exit 124: timed out; 125: not run, no time left. setup, if run, fails on the offline device"
  echo " image, which is expected: the checks then use that image's python3, see below)"
  grep -h "^python for the checks\|^sinks: tiled\|^image:\|^real BM32" "$OUT/setup.log" 2>/dev/null
  grep -h "^sinks[ :]" "$TMPD/sinks.log" 2>/dev/null
  grep -E "(passed|failed).* in [0-9.]+s" "$OUT/pytest.log" 2>/dev/null | tail -n 1
  grep -h "host syncs\|staging copy\|compiled=" "$OUT/smoke.log" "$OUT/pytest.log" 2>/dev/null | sort -u
} | tee -a "$OUT/summary.txt"
rm -rf "$TMPD"
exit "$failed"
