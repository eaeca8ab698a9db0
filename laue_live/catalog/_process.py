"""Child processes of the embedded catalog (Tiled, PostgreSQL): stopping them and reading their logs."""

from __future__ import annotations

import logging
import signal
import subprocess
from pathlib import Path

__all__ = ["stop_child", "log_tail"]

logger = logging.getLogger(__name__)


def stop_child(proc: subprocess.Popen | None, what: str, sig: int = signal.SIGTERM,
               timeout_s: float = 10.0) -> None:
    """Send ``sig`` to ``proc`` and wait ``timeout_s`` seconds, then SIGKILL it; no-op if it ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("%s (pid %d) ignored %s; killing it", what, proc.pid, signal.Signals(sig).name)
        proc.kill()
        proc.wait(timeout=timeout_s)


def log_tail(path: Path, n: int = 2000) -> str:
    """Return the last ``n`` characters of a log file ("" when it cannot be read)."""
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""
