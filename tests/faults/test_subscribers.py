"""A 0MQ subscriber that stalls or disappears: the publisher and the analysis go on."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky.plans import count

from laue_live.callbacks import make_run_router
from laue_live.catalog import random_spot_table
from laue_live.stream import SpotPublisher, SpotSubscriber

from ._helpers import Collect, InlineDetector, n_spots

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

WAIT = 10.0


def test_stalled_and_vanished_subscribers_do_not_stop_the_analysis(RE, analyzer, fault_report):
    n = 12
    sink = Collect()
    with SpotPublisher(hwm=2) as pub:
        stalled = SpotSubscriber(pub.address, hwm=1)  # never reads
        vanishing = SpotSubscriber(pub.address, hwm=1)
        healthy = SpotSubscriber(pub.address)
        assert pub.wait_for_subscribers(3, WAIT)  # the publisher attaches peers while it works
        for sub in (stalled, vanishing, healthy):
            assert sub.wait_ready(WAIT)

        def on_trigger(i):
            if i == n // 2:
                vanishing.close()  # disappears in the middle of the run, without a goodbye

        det = InlineDetector(name="laue", on_trigger=on_trigger)
        router = make_run_router([pub, sink], analyzer=analyzer, batch_size=2)
        RE.subscribe(router)
        RE(count([det], n))
        assert router.wait(60), "the analysis stopped"
        frames = sink.frames()
        assert sorted(frames) == list(range(n))
        assert {i: r["n_spots"] for i, r in frames.items()} == {i: n_spots(i) for i in range(n)}
        got = [f.frame for f in healthy.frames(timeout=2.0, limit=n)]
        assert got == list(range(n)), "a healthy subscriber still gets every table"
        # Then flood: the stalled subscriber's queue fills, every publish returns at once.
        rng = np.random.default_rng(0)
        table = random_spot_table(0, 2000, rng)
        before = pub.stats()
        results = [pub.publish_table(table, frame=i) for i in range(300)]
        stats = pub.stats()
        assert stats["dropped"] > before["dropped"], "the stalled subscriber's queue never filled"
        assert results.count(False) == stats["dropped"] - before["dropped"]
        for sub in (stalled, healthy):
            sub.close()
    fault_report.add(
        "0MQ",
        "one subscriber never reads, one closes mid-run, one healthy",
        f"analysis complete (all {n} frames), healthy subscriber got every table; flood of "
        f"300 tables: {stats['dropped'] - before['dropped']} dropped and counted for the "
        "stalled subscriber, publisher never blocked",
        0,
    )
