"""Publish rate of spot tables over 0MQ: laue-live's msgpack wire format vs a pickle baseline.

Measures, for the same spot tables (schema columns, ``--rows`` spots per frame):

* encode and decode alone (tables/s, MB/s);
* end to end on loopback: a publisher in this process sends ``--tables`` tables on a PUB socket
  as fast as it can (NOBLOCK, high-water mark ``--hwm``); a subscriber in another process
  receives and decodes each into a pandas DataFrame. Tables/s at the publisher and at the
  subscriber, and how many the subscriber lost.

The pickle baseline is ``pickle.dumps(DataFrame)`` / ``pickle.loads`` (what bluesky's 0MQ default
does); it is run here only between two local processes of this benchmark. Nothing is asserted:
figures are printed side by side.

    python benchmarks/bench_stream.py --rows 1000 --tables 2000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import pickle
import time

import numpy as np
import pandas as pd
import zmq

from laue_live import SPOT_COLUMNS
from laue_live.stream import decode_message, decode_spot_table, encode_spot_table


def make_table(n: int, frame: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(frame)
    data = {}
    for c in SPOT_COLUMNS:
        dt = np.dtype(c.dtype)
        data[c.name] = (rng.random(n) > 0.5) if dt.kind == "b" else rng.random(n).astype(dt) * 100
    data["frame"] = np.full(n, frame, "int64")
    return pd.DataFrame(data)


def encode(codec: str, table: pd.DataFrame, frame: int) -> bytes:
    if codec == "msgpack":
        return encode_spot_table(table, frame=frame, seq=frame + 1, run={"uid": "bench"})
    return b"laue.spots spots " + pickle.dumps({"frame": frame, "seq": frame + 1, "table": table},
                                              protocol=pickle.HIGHEST_PROTOCOL)


def decode(codec: str, message: bytes) -> pd.DataFrame:
    if codec == "msgpack":
        return decode_spot_table(decode_message(message).payload)
    return pickle.loads(message.split(b" ", 2)[2])["table"]  # baseline only: trusted local peer


def _subscriber(codec: str, address: str, n: int, ready, result) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 100000)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(address)
    ready.set()
    got, rows, t0 = 0, 0, None
    while got < n and sock.poll(3000):
        message = sock.recv()
        if message.startswith(b"laue.hello"):
            continue
        t0 = t0 or time.perf_counter()
        rows += len(decode(codec, message))
        got += 1
    result.put((got, rows, time.perf_counter() - (t0 or time.perf_counter())))
    sock.close(0)
    ctx.term()


def end_to_end(codec: str, tables: list[pd.DataFrame], hwm: int) -> dict:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, hwm)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.bind("tcp://127.0.0.1:*")
    address = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
    spawn = mp.get_context("spawn")
    ready, result = spawn.Event(), spawn.Queue()
    proc = spawn.Process(target=_subscriber, args=(codec, address, len(tables), ready, result))
    proc.start()
    ready.wait(60)
    pub.poll(60000)  # the subscription arrives: readiness handshake, no sleep
    pub.recv()
    sent = dropped = 0
    t0 = time.perf_counter()
    for i, table in enumerate(tables):
        try:
            pub.send(encode(codec, table, i), zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            dropped += 1
    t_pub = time.perf_counter() - t0
    got, rows, t_sub = result.get(timeout=600)
    proc.join(60)
    pub.close(0)
    ctx.term()
    return {"pub_tables_s": len(tables) / t_pub, "sent": sent, "dropped": dropped, "received": got,
            "sub_tables_s": got / t_sub if t_sub > 0 else float("nan"), "rows": rows}


def codec_rates(codec: str, tables: list[pd.DataFrame]) -> dict:
    t0 = time.perf_counter()
    messages = [encode(codec, t, i) for i, t in enumerate(tables)]
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in messages:
        decode(codec, m)
    t_dec = time.perf_counter() - t0
    size = sum(len(m) for m in messages) / len(messages)
    return {"bytes": size, "enc_tables_s": len(tables) / t_enc, "dec_tables_s": len(tables) / t_dec,
            "enc_MB_s": size * len(tables) / t_enc / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000, help="spots per frame (table rows)")
    parser.add_argument("--tables", type=int, default=2000, help="tables sent per codec")
    parser.add_argument("--hwm", type=int, default=100000, help="publisher high-water mark (messages)")
    args = parser.parse_args()
    distinct = [make_table(args.rows, i) for i in range(50)]
    tables = [distinct[i % 50] for i in range(args.tables)]
    print(f"spot tables: {args.rows} rows x {len(SPOT_COLUMNS)} columns, {args.tables} tables, "
          f"loopback tcp, subscriber in another process")
    results = {c: {**codec_rates(c, tables), **end_to_end(c, tables, args.hwm)}
               for c in ("msgpack", "pickle")}
    rows = [("message size (kB)", "bytes", 1e-3, "{:.1f}"),
            ("encode (tables/s)", "enc_tables_s", 1, "{:.0f}"),
            ("encode (MB/s)", "enc_MB_s", 1, "{:.0f}"),
            ("decode to DataFrame (tables/s)", "dec_tables_s", 1, "{:.0f}"),
            ("publish, end to end (tables/s)", "pub_tables_s", 1, "{:.0f}"),
            ("received + decoded (tables/s)", "sub_tables_s", 1, "{:.0f}"),
            ("received / sent / dropped", None, 1, None)]
    print(f"{'':34s} {'msgpack (laue-live)':>20s} {'pickle (baseline)':>20s}")
    for label, key, scale, fmt in rows:
        cells = []
        for c in ("msgpack", "pickle"):
            r = results[c]
            cells.append(f"{r['received']}/{r['sent']}/{r['dropped']}" if key is None
                         else fmt.format(r[key] * scale))
        print(f"{label:34s} {cells[0]:>20s} {cells[1]:>20s}")


if __name__ == "__main__":
    main()
