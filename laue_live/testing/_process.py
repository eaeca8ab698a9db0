"""Read a child process's output with a bounded wait (no sleeps), for tests of the command line."""

from __future__ import annotations

import selectors
import subprocess
import time

__all__ = ["read_line"]


def read_line(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    """Return the first stdout line of ``proc`` that contains ``needle``, waiting at most ``timeout`` s.

    Raises
    ------
    AssertionError
        No such line within ``timeout`` seconds (the lines seen and, if it exited, stderr in the message).
    """
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = []
    try:
        while time.monotonic() < deadline:
            if not sel.select(deadline - time.monotonic()):
                break
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                return line
    finally:
        sel.close()
    raise AssertionError(f"{needle!r} not printed within {timeout} s; got {seen!r}; "
                         f"stderr: {proc.stderr.read() if proc.poll() is not None else ''}")
