"""Fixtures of the 0MQ tests: schema-conform spot tables and CURVE certificates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live._schema import SPOT_COLUMNS


def make_spot_table(frame: int, n: int, seed: int = 0) -> pd.DataFrame:
    """A spot table with every schema column at its dtype and values that differ per frame."""
    rng = np.random.default_rng(seed + frame)
    data = {}
    for c in SPOT_COLUMNS:
        dtype = np.dtype(c.dtype)
        if dtype.kind == "b":
            data[c.name] = rng.random(n) > 0.5
        elif dtype.kind in "iu":
            data[c.name] = rng.integers(0, 2000, n).astype(dtype)
        else:
            data[c.name] = rng.random(n).astype(dtype)
    data["frame"] = np.full(n, frame, dtype="int64")
    data["spot"] = np.arange(n, dtype="int32")
    return pd.DataFrame(data)


@pytest.fixture
def spot_table_factory():
    return make_spot_table


@pytest.fixture(scope="session")
def curve_certs(tmp_path_factory):
    """Server and client certificates made by zmq.auth, plus a stranger's."""
    import zmq.auth

    d = tmp_path_factory.mktemp("curve")
    server_pub, server_sec = zmq.auth.create_certificates(d, "server")
    clients = d / "clients"
    clients.mkdir()
    client_pub, client_sec = zmq.auth.create_certificates(d, "client")
    (clients / "client.key").write_bytes(open(client_pub, "rb").read())
    _, stranger_sec = zmq.auth.create_certificates(d, "stranger")
    return {"server_public": server_pub, "server_secret": server_sec, "client_secret": client_sec,
            "client_keys_dir": clients, "stranger_secret": stranger_sec}
