#!/usr/bin/env bash
# Builds .device-wheels/: what the device image lacks for the service rows of the GPU check (issue 8).
#
# The device image (Python 3.12, CUDA torch, numpy/scipy/pandas/pyarrow/h5py/numba/xarray/httpx/
# typer/..., see the device tool's KINDS.md) has no tiled, pyzmq, bluesky, event-model,
# bluesky-tiled-plugins, duckdb, pydantic, fastapi, sqlalchemy, ..., and nothing can be fetched
# there. This script downloads the smallest set of wheels (below, pinned to the project's .venv)
# that lets `laue-live bench --sinks` (a local `tiled serve config` with duckdb tables, 0MQ) and
# `pytest tests/pipeline` run on top of the image's packages, installs them here into a staging
# folder for CPython 3.12 / manylinux x86_64 (`pip install --target --no-deps`), strips debug
# sections from the extension modules and packs the folder as .device-wheels/site-py312.tar.xz.
#
# Why a packed folder, not the wheels themselves: the wheels take 53 MB (duckdb alone 22 MB,
# numcodecs 9 MB, with debug symbols), and the tree that travels to the device (repo ~7.5 MB,
# BM32 frames ~16 MB, carried folders) is limited to 64 MiB; stripped and xz-packed it is ~27 MB.
# On the device: `tar -xJf .device-wheels/site-py312.tar.xz -C /tmp/laue-site` and
# PYTHONPATH=/tmp/laue-site:<repo> (benchmarks/device_check.sh does it).
#
# Left out on purpose (tiled[all] extras the server and client do not import for our configuration,
# checked on an emulation of the image): hdf5plugin, blosc2, lz4, zstandard, obstore, minio,
# asyncpg, adbc-driver-postgresql/sqlite, h5netcdf, zarr, cryptography, watchfiles, httptools,
# h2, distributed, pytz. Needed although optional-looking: numcodecs (imported
# by tiled.server.zarr), redis (tiled.server.streaming), strawberry-graphql (tiled.graph), ragged/
# awkward/sparse (tiled.adapters.protocols), openpyxl (the image's xarray makes tiled import its
# Excel serializer), websockets (tiled.client.stream, imported by bluesky-tiled-plugins' exporter).
#
# Use: bash benchmarks/device_wheels.sh   (or `bash benchmarks/device_check.sh --prepare`)
# To change the set: edit WHEELS, rebuild, and check on a Python 3.12 venv holding only packages of
# the image's list (torch, numpy, scipy, pandas, pyarrow, h5py, numba, xarray, httpx, typer, pytest,
# ...): PYTHONPATH=<unpacked>:<repo> python -m pytest -q tests/pipeline, and `laue-live bench --device
# cpu --quick --sinks --lauetools off` with the service rows filled in (no "not measured: ...Error").
set -euo pipefail

cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
DEST=${DEVICE_WHEELS_DIR:-$REPO/.device-wheels}
CACHE=${DEVICE_WHEELS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/laue-live-device-wheels}

# name==version; versions as in the project's .venv (pip freeze) when this set was checked
WHEELS=(
  tiled==0.2.20 bluesky==1.15.1 bluesky-tiled-plugins==2.0.12 event-model==1.24.0 pyzmq==27.3.0
  duckdb==1.5.6 adbc-driver-manager==1.13.0 sqlalchemy==2.0.58 greenlet==3.5.6 aiosqlite==0.22.1
  alembic==1.20.1 mako==1.4.3 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0
  python-multipart==0.0.34 asgi-correlation-id==5.0.1 pydantic==2.14.4 pydantic-core==2.50.5
  pydantic-settings==2.11.0 annotated-types==0.8.0 typing-inspection==0.4.5 python-dotenv==1.2.4
  orjson==3.13.0 platformdirs==4.14.9 json-merge-patch==0.3.0 jsonpatch==1.48 jsonpointer==3.12
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  cachetools==8.0.2 canonicaljson==2.0.0 jmespath==1.1.0 entrypoints==0.4.2 stamina==26.1.0
  tenacity==9.2.1 pyjwt==2.15.1 redis==8.2.0 numcodecs==0.16.6 dask==2026.8.0 ndindex==1.10.1
  sparse==0.19.3 ragged==0.3.0 awkward==2.14.0 awkward-cpp==57 strawberry-graphql==0.341.2
  graphql-core==3.3.2 cross-web==0.9.0 websockets==17.4 openpyxl==3.1.5 et-xmlfile==2.0.0
  opentelemetry-api==1.45.3 msgpack-numpy==0.4.8
)
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
          --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64)

PYTHON=${DEVICE_WHEELS_PYTHON:-}
if [[ -z "$PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
pip=("$PYTHON" -m pip --disable-pip-version-check)

# the project's .venv moved on: say so (the device would run other versions than CI does)
if [[ -x .venv/bin/python ]]; then
  frozen=$(.venv/bin/python -m pip freeze 2>/dev/null | tr 'A-Z_' 'a-z-' || true)
  for w in "${WHEELS[@]}"; do
    n=${w%%==*}
    have=$(grep -m1 "^$n==" <<<"$frozen" || true)
    [[ -n "$have" && "$have" != "$w" ]] && echo "note: .venv has $have, the device bundle pins $w" >&2
  done
fi

mkdir -p "$CACHE"
echo "downloading ${#WHEELS[@]} wheels (CPython 3.12, manylinux x86_64) into $CACHE"
quiet() { grep -v "^WARNING: Location '" || true; }  # this machine's pip config: noise per name
"${pip[@]}" download -q --no-deps "${PLATFORM[@]}" -d "$CACHE" "${WHEELS[@]}" 2>&1 | quiet

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# --no-index + --find-links: exactly the downloaded files; --no-deps: the image provides the rest
"${pip[@]}" install -q --no-index --find-links "$CACHE" --no-deps --no-compile --target "$stage/site" \
  "${PLATFORM[@]}" "${WHEELS[@]}" 2>&1 | quiet
rm -rf "$stage/site/bin"  # console scripts whose shebang names this machine's python
find "$stage/site" -mindepth 2 -maxdepth 2 -type d -name tests -exec rm -rf {} +
wheel_mb=$(du -cb "$CACHE"/*.whl 2>/dev/null | tail -n 1 | awk '{printf "%.1f", $1 / 1e6}')
if command -v strip >/dev/null; then
  # debug sections only (symbols for dynamic linking stay): numcodecs 35 -> 3 MB, sqlalchemy 14 -> 9
  find "$stage/site" -name '*.so*' -type f -exec strip --strip-debug {} + 2>/dev/null || true
else
  echo "note: no 'strip' here: the pack is ~7 MB larger" >&2
fi

mkdir -p "$DEST"
rm -f "$DEST"/site-py312.tar.xz "$DEST"/MANIFEST.txt
tar -C "$stage/site" --sort=name -cf - . | xz -6 -T0 >"$DEST/site-py312.tar.xz"
{
  echo "# installed into site-py312.tar.xz with pip install --target --no-deps (CPython 3.12, manylinux x86_64)"
  echo "# wheels: ${#WHEELS[@]}, ${wheel_mb} MB; unpacked $(du -sh "$stage/site" | cut -f1); built $(date -u +%FT%TZ)"
  printf '%s\n' "${WHEELS[@]}"
} >"$DEST/MANIFEST.txt"
if excl="$(git rev-parse --git-path info/exclude 2>/dev/null)"; then
  mkdir -p "$(dirname "$excl")"
  grep -qx '/.device-wheels/' "$excl" 2>/dev/null || echo '/.device-wheels/' >>"$excl"
fi
du -sh "$DEST"
