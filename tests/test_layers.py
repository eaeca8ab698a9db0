"""Layer contracts between subpackages: import-linter's contracts of pyproject.toml, plus the AST checks.

``lint-imports`` checks the science's layers (training > describe > pipeline > doubles > cnn > spots
> geometry > base), that the live science imports no ecosystem package (bluesky, tiled, zmq, ...)
and neither the simulator nor any integration package, on the import graph of the whole package
(imports inside functions included, so lazy imports cannot hide a cycle).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "laue_live"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# the simulator is for tests, the demo, training and the profiles, never for the live service
SERVICE = ["callbacks", "catalog", "stream", "service", "analysis", "views", "dashboard"]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.is_file():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the test extra (pip install -e '.[test]')")
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_import_linter_contracts_are_kept():
    r = _lint_imports(ROOT)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, f"lint-imports found broken contracts:\n{r.stdout}\n{r.stderr}"
    assert "0 broken" in r.stdout


def test_import_linter_catches_an_upward_import(tmp_path):
    """The contracts bite: a copy of the package whose spots imports cnn (the old cycle) is refused."""
    shutil.copytree(PKG, tmp_path / "laue_live", ignore=shutil.ignore_patterns("__pycache__", "*.safetensors",
                                                                                "*.png", "*.csv"))
    frame = tmp_path / "laue_live" / "spots" / "_prepare.py"
    frame.write_text(frame.read_text() + "\nfrom laue_live.cnn import get_predictor  # noqa: E402\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    r = _lint_imports(tmp_path)  # lint-imports puts its working directory first on the path
    assert r.returncode == 1, r.stdout
    assert "laue_live.spots is not allowed to import laue_live.cnn" in r.stdout
    assert "1 broken" in r.stdout


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
