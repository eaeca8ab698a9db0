"""Fixtures of the fault-injection suite and the generated reliability report.

Every test records what it tried (``fault_report.add(...)``, after its assertions passed). With
``LAUE_LIVE_WRITE_REPORT=1`` the session writes the table to ``docs/reliability_report.md``.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[2] / "docs" / "reliability_report.md"


class FaultReport:
    def __init__(self):
        self.rows: list[tuple[str, str, str, int | str, str]] = []

    def add(self, category: str, fault: str, result: str, frames_lost: int = 0, test: str = ""):
        self.rows.append((category, fault, result, frames_lost, test))

    def markdown(self) -> str:
        lines = [
            "# Reliability report (generated)",
            "",
            "Written by `LAUE_LIVE_WRITE_REPORT=1 pytest -m faults` (tests/faults/); each row is added by a",
            "test only after its assertions passed. *Frames lost* counts frames of the raw run without a",
            "row in the analysis run (analysed or recorded as failed); it must be 0. *n/a*: malformed input",
            "that holds no run to attach frames to (no start document, no image field declared, frames",
            "after the stop document); each gets a log line naming what is wrong.",
            "",
            f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs.",
            "",
            "| area | fault or bad input | result | frames lost | test |",
            "|---|---|---|---|---|",
        ]
        for cat, fault, result, lost, test in sorted(self.rows, key=lambda r: (r[0], r[4], r[1])):
            lines.append(f"| {cat} | {fault} | {result} | {lost} | `{test}` |")
        total = sum(r[3] for r in self.rows if isinstance(r[3], int))
        lines += ["", f"**{len(self.rows)} faults/inputs tried, {total} frames lost in total.**", ""]
        return "\n".join(lines)


_REPORT = FaultReport()


@pytest.fixture
def fault_report(request):
    """Add a row: ``fault_report.add(category, fault, result, frames_lost)``.

    Rows are held with the test and enter the report only if the whole test passed
    (:func:`pytest_runtest_makereport`), wherever the test calls ``add``.
    """
    pending = request.node.stash.setdefault(_PENDING, [])

    class _Bound:
        def add(self, category, fault, result, frames_lost=0):
            pending.append((category, fault, result, frames_lost, request.node.name.split("[")[0]))

    return _Bound()


_PENDING = pytest.StashKey[list]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        rows = item.stash.get(_PENDING, [])
        if report.passed:
            for row in rows:
                _REPORT.add(*row)
        rows.clear()
    return report


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("LAUE_LIVE_WRITE_REPORT") == "1" and _REPORT.rows:
        REPORT.write_text(_REPORT.markdown())
