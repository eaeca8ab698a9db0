"""Layer contracts between subpackages, checked statically (AST of every module).

The science (spots, cnn, doubles, pipeline, schema, calibration) is plain numpy/torch and must not
import the ecosystem adapters; the service code must not depend on the simulator, which only the
tests, the demo, the profiles and training use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "laue_live"

ECOSYSTEM = {"bluesky", "ophyd", "tiled", "zmq", "event_model", "databroker", "bluesky_tiled_plugins",
             "dask", "distributed"}
SCIENCE = ["spots", "cnn", "doubles", "pipeline", "geometry", "_schema.py", "_errors.py"]
SCIENCE_MAY_NOT_IMPORT_PROJECT = {"laue_live.callbacks", "laue_live.catalog", "laue_live.stream",
                                  "laue_live.service", "laue_live.views", "laue_live.sim",
                                  "laue_live.analysis", "laue_live.parallel", "laue_live.cli"}
# training data may come from the simulator (the brief: tests, the demo and training use it)
TRAINING_DATA = {"cnn/_data.py", "cnn/_datasets.py", "doubles/_synth.py", "doubles/_train.py",
                 "doubles/_evaluate.py", "cnn/_evaluate.py", "cnn/_report.py"}
# the simulator is for tests, the demo, training and the profiles, never for the live service
SERVICE = ["callbacks", "catalog", "stream", "service", "analysis", "views", "dashboard"]


def _modules(parts: list[str]):
    for part in parts:
        path = PKG / part
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", list(_modules(SCIENCE)), ids=lambda p: str(p.relative_to(PKG)))
def test_science_imports_no_ecosystem_adapter(path: Path):
    bad = {n for n in _imports(path) if n.split(".")[0] in ECOSYSTEM}
    forbidden = SCIENCE_MAY_NOT_IMPORT_PROJECT
    if str(path.relative_to(PKG)) in TRAINING_DATA:
        forbidden = forbidden - {"laue_live.sim"}
    bad |= {n for n in _imports(path) if any(n == m or n.startswith(m + ".") for m in forbidden)}
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", list(_modules(SERVICE)), ids=lambda p: str(p.relative_to(PKG)))
def test_service_does_not_depend_on_the_simulator(path: Path):
    bad = {n for n in _imports(path) if n == "laue_live.sim" or n.startswith("laue_live.sim.")}
    assert not bad, f"{path.relative_to(PKG)} imports the simulator: {sorted(bad)}"


def test_no_pickle_in_library_code():
    offenders = []
    for path in PKG.rglob("*.py"):
        for name in _imports(path):
            if name.split(".")[0] in {"pickle", "cPickle", "dill", "cloudpickle"}:
                offenders.append(f"{path.relative_to(PKG)}: {name}")
        text = path.read_text()
        for needle in ("recv_pyobj(", "send_pyobj(", "pickle.loads("):
            if needle in text:
                offenders.append(f"{path.relative_to(PKG)}: {needle}")
    assert not offenders, offenders
