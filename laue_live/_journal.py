"""Append-only journals on local disk: what must survive a crash, in the project's one binary format.

A journal file is a sequence of records ``uint32 big-endian length + payload``, the payload a map
in laue-live's msgpack encoding (:mod:`laue_live._codec`: a version field, numpy arrays as typed
buffers, never pickle). A torn last record (a crash in the middle of a write) is ignored when the
file is read back.

:class:`Journal` is one such file. Its users:

* :class:`DocumentJournal`: one journal per Bluesky run, a record ``{"name", "doc"}`` per document
  (the spool of :class:`laue_live.catalog.SpooledAnalysisWriter`, and the batches the Tiled writer
  gave up on), replayed into Tiled by :func:`laue_live.catalog.replay_journal`;
* the analysis service's record of the raw runs it started and finished
  (:class:`laue_live.service.AnalysisService`).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from laue_live._codec import pack_payload, unpack_payload

__all__ = ["Journal", "DocumentJournal", "read_records", "read_journal", "JOURNAL_SUFFIX"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
#: File suffix of the journals of :class:`DocumentJournal`.
JOURNAL_SUFFIX = ".journal"


def read_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the records of a journal file in order; a torn last record ends the iteration.

    Raises
    ------
    WireError
        A record that is whole but not laue-live's encoding (the file is not a journal).
    """
    data = Path(path).read_bytes()
    pos = 0
    while pos + _HEADER.size <= len(data):
        (n,) = _HEADER.unpack_from(data, pos)
        if pos + _HEADER.size + n > len(data):
            logger.warning("journal %s: torn last record ignored (%d bytes)", path, len(data) - pos)
            return
        record = unpack_payload(memoryview(data)[pos + _HEADER.size: pos + _HEADER.size + n])
        pos += _HEADER.size + n
        record.pop("v", None)
        yield record


class Journal:
    """One append-only journal file (see the module docstring for the format); thread-safe.

    Parameters
    ----------
    path
        The file; created (with its folder) on the first append.
    fsync
        ``os.fsync`` on :meth:`append` with ``sync=True`` and on :meth:`rewrite`. Every record is
        flushed to the OS in any case, so a crash of this process loses nothing the OS already has.
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._file: BinaryIO | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    def records(self) -> Iterator[dict[str, Any]]:
        """Yield the records in the file (none if it does not exist)."""
        if self.path.exists():
            yield from read_records(self.path)

    def append(self, record: dict[str, Any], *, sync: bool = False) -> None:
        """Append one record (a map of msgpack types and numpy arrays); ``sync``: fsync it too.

        Raises
        ------
        OSError
            The disk is full or not writable (the caller decides whether that is fatal).
        WireError
            The record holds something the encoding cannot carry.
        """
        blob = pack_payload(record)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open until close()
            self._file.write(_HEADER.pack(len(blob)) + blob)
            self._file.flush()
            if sync and self.fsync:
                os.fsync(self._file.fileno())

    def rewrite(self, records: Iterable[dict[str, Any]]) -> None:
        """Replace the file's content by ``records`` atomically (compaction); appends go on after them."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with self._lock:
            self._close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                for record in records:
                    blob = pack_payload(record)
                    f.write(_HEADER.pack(len(blob)) + blob)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, self.path)  # readers see the old file or the new one, never half of one

    def close(self) -> None:
        """Close the file (it is reopened by the next append)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_journal(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """Yield the ``(name, doc)`` documents of a :class:`DocumentJournal` file; a torn last record ends it."""
    for record in read_records(path):
        yield record["name"], record["doc"]


class DocumentJournal:
    """Document sink ``(name, doc)`` that appends each run's documents to ``<directory>/<uid>.journal``.

    Parameters
    ----------
    directory
        Folder of the journal files (created if missing).
    fsync
        ``os.fsync`` after the stop document of each run (the file is flushed after every
        document in any case).
    """

    def __init__(self, directory: str | os.PathLike, *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._journals: dict[str, Journal] = {}  # run uid -> its open journal
        self._desc_run: dict[str, str] = {}  # descriptor uid -> run uid
        self._lock = threading.Lock()

    def path(self, run_uid: str) -> Path:
        """Journal file of a run."""
        return self.directory / f"{run_uid}{JOURNAL_SUFFIX}"

    def _run_of(self, name: str, doc: dict) -> str | None:
        if name == "start":
            return doc.get("uid")
        if name in ("descriptor", "stop"):
            run = doc.get("run_start")
            if name == "descriptor" and run:
                self._desc_run[doc["uid"]] = run
            return run
        return self._desc_run.get(doc.get("descriptor", ""))

    def __call__(self, name: str, doc: dict) -> None:
        """Append one document to its run's journal (raises on a full disk: the caller logs it)."""
        with self._lock:
            run = self._run_of(name, doc)
            if run is None:
                logger.warning("journal: %s document of no known run skipped", name)
                return
            journal = self._journals.get(run)
            if journal is None:
                journal = self._journals[run] = Journal(self.path(run), fsync=self.fsync)
        # encoded and written outside this lock: the documents of other runs do not wait
        journal.append({"name": name, "doc": doc}, sync=name == "stop")
        if name == "stop":
            with self._lock:
                journal.close()
                self._journals.pop(run, None)

    def close(self) -> None:
        """Close every open journal file (runs without a stop document stay replayable)."""
        with self._lock:
            for journal in self._journals.values():
                journal.close()
            self._journals.clear()
