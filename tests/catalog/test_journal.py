"""The one journal format (laue_live._journal): records, compaction, one journal per run."""

from __future__ import annotations

import threading

import numpy as np

from laue_live._journal import DocumentJournal, Journal, read_records
from laue_live.catalog import read_journal, synthetic_analysis_documents


def test_records_round_trip_with_arrays_and_compaction(tmp_path):
    journal = Journal(tmp_path / "sub" / "x.journal")
    assert list(journal.records()) == []  # no file yet
    journal.append({"event": "start", "raw_uid": "a", "rows": np.arange(4, dtype=np.int32)})
    journal.append({"event": "start", "raw_uid": "b"}, sync=True)
    got = list(read_records(journal.path))
    assert [r["raw_uid"] for r in got] == ["a", "b"] and "v" not in got[0]
    np.testing.assert_array_equal(got[0]["rows"], np.arange(4, dtype=np.int32))
    assert got[0]["rows"].dtype == np.int32
    journal.rewrite([got[1]])  # compaction keeps only what is given, appends go on after it
    journal.append({"event": "stop", "raw_uid": "b"})
    journal.close()
    assert [(r["event"], r["raw_uid"]) for r in journal.records()] == [("start", "b"), ("stop", "b")]
    assert not list(tmp_path.rglob("*.tmp"))


def test_appends_from_several_threads_stay_whole_records(tmp_path):
    journal = Journal(tmp_path / "t.journal", fsync=False)

    def write(k):
        for i in range(200):
            journal.append({"thread": k, "i": i, "pad": "x" * (i % 50)})

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    journal.close()
    records = list(journal.records())
    assert len(records) == 800
    for k in range(4):
        assert [r["i"] for r in records if r["thread"] == k] == list(range(200))


def test_document_journal_keeps_one_file_per_run(tmp_path):
    runs = [list(synthetic_analysis_documents(3, 2, seed=s)) for s in (1, 2)]
    journal = DocumentJournal(tmp_path)
    for a, b in zip(*runs, strict=True):  # two runs interleaved, as two analyses at once
        journal(a[0], a[1])
        journal(b[0], b[1])
    journal("event", {"descriptor": "unknown", "data": {}})  # a document of no known run: skipped
    for docs in runs:
        uid = docs[0][1]["uid"]
        back = list(read_journal(journal.path(uid)))
        assert [n for n, _ in back] == [n for n, _ in docs]
        assert back[-1][1]["run_start"] == uid
    assert len(list(tmp_path.glob("*.journal"))) == 2
