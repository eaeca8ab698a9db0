"""Security: keyed writes, read-only access, keys never on command lines or in logs, loopback
sockets, CURVE for 0MQ, no pickle (see also test_bad_input.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psutil
import pytest

from laue_live.catalog import CatalogSettings, LocalTiledServer, open_catalog, synthetic_analysis_documents

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


def _write_run(container, n=2):
    from laue_live.catalog import make_analysis_writer

    docs = list(synthetic_analysis_documents(n, 3))
    with make_analysis_writer(container) as w:
        for name, doc in docs:
            w(name, doc)
    return docs[0][1]["uid"]


def test_writes_need_the_key_anonymous_reads_on_a_public_server(tiled_data_dir, fault_report):
    """``--public`` (allow_anonymous_access): anyone on the host may query, only the key may write."""
    import httpx
    from tiled.client import from_uri

    with LocalTiledServer(tiled_data_dir, public=True) as server:
        writer = open_catalog(server.settings)  # the writer's key
        uid = _write_run(writer.analysis)
        path = server.settings.analysis_path
        anon = from_uri(server.uri, api_key=None)  # no key at all
        run = anon[path][uid]
        assert len(run["spots"].base["internal"].read()) == 6, "anonymous read works"
        with pytest.raises(Exception) as no_key:  # noqa: B017 - tiled raises an HTTPStatusError subclass
            anon[path].create_container("intruder")
        assert "401" in str(no_key.value) or "403" in str(no_key.value)
        with pytest.raises(Exception) as no_key_append:  # noqa: B017
            anon[path][uid]["spots"].base["internal"].append_partition(0, {"frame": [1]})
        assert "401" in str(no_key_append.value) or "403" in str(no_key_append.value)
        wrong = httpx.post(
            f"{server.uri}/api/v1/metadata/{path}",
            headers={"Authorization": "Apikey wrong0key"},
            json={"data": {"type": "container", "attributes": {"metadata": {}}}},
        )
        assert wrong.status_code == 401
        assert "intruder" not in list(writer.analysis)
    fault_report.add(
        "security",
        "anonymous client on a `--public` server: query, then create/append",
        "query works; create and append refused (401); a wrong key: 401",
        0,
    )


def test_no_key_no_access_on_a_private_server(tiled_server, fault_report):
    import httpx

    r = httpx.get(f"{tiled_server.uri}/api/v1/search/", timeout=10)
    assert r.status_code == 401
    r = httpx.get(
        f"{tiled_server.uri}/api/v1/search/",
        headers={"Authorization": f"Apikey {tiled_server.api_key}"},
        timeout=10,
    )
    assert r.status_code == 200
    fault_report.add(
        "security", "request without a key to the default (single-user) server", "401; with the key: 200", 0
    )


def test_keys_come_from_env_or_file_never_the_command_line(tmp_path, monkeypatch, fault_report):
    import typer.main

    from laue_live.cli import app

    cli = typer.main.get_command(app)
    offenders = []
    for name, cmd in cli.commands.items():
        cmds = [(name, cmd)] + [(f"{name} {n}", c) for n, c in getattr(cmd, "commands", {}).items()]
        for cname, c in cmds:
            for p in c.params:
                for opt in p.opts:
                    # a path to a key file is fine (--curve-secret FILE); the key itself is not
                    td = getattr(p, "type_descriptor", None)
                    is_path = getattr(td, "annotation", None) is Path or "certificate" in (p.help or "")
                    if re.search(r"(api[-_]?key|secret|password|token)$", opt.lower()) and not is_path:
                        offenders.append(f"laue-live {cname} {opt}")
    assert not offenders, f"secrets as command-line options: {offenders}"
    key_file = tmp_path / "key"
    key_file.write_text("FileKey123\n")
    s = CatalogSettings.load(env={"LAUE_LIVE_TILED_API_KEY_FILE": str(key_file)})
    assert s.api_key == "FileKey123"
    s = CatalogSettings.load(env={"LAUE_LIVE_TILED_API_KEY": "EnvKey456"})
    assert s.api_key == "EnvKey456"
    assert "EnvKey456" not in repr(s) and "EnvKey456" not in str(s)
    with pytest.raises(Exception) as bad:  # noqa: B017
        CatalogSettings.load(env={"LAUE_LIVE_TILED_API_KEY": "not-alnum!secret"})
    assert "not-alnum!secret" not in str(bad.value)
    with pytest.raises(Exception) as in_uri:  # noqa: B017
        CatalogSettings.load(env={"LAUE_LIVE_TILED_URI": "http://127.0.0.1:1/?api_key=Leak789"})
    assert "api_key" in str(in_uri.value)
    fault_report.add(
        "security",
        "secrets as CLI options; key in the URI; malformed key",
        f"no CLI option takes a key ({len(cli.commands)} commands checked); key in a URI "
        "refused; error messages never echo the key",
        0,
    )


def test_the_key_never_reaches_logs_or_reprs(tiled_data_dir, caplog, fault_report):
    caplog.set_level(logging.DEBUG)
    with LocalTiledServer(tiled_data_dir) as server:
        key = server.api_key
        cat = open_catalog(server.settings)
        _write_run(cat.analysis)
        texts = [repr(server), repr(server.settings), repr(cat)]
        # an error path too: an append to a missing node (logged by the writer)
        from laue_live.catalog import make_analysis_writer

        w = make_analysis_writer(cat.analysis)
        w("descriptor", {"uid": "d", "run_start": "nope", "name": "spots", "data_keys": {}})
        try:
            w.close(30)
        except Exception as exc:  # noqa: BLE001 - expected: the run does not exist
            texts.append(str(exc))
    log = server.log_path.read_text()
    assert key not in log and "***" in log, "tiled prints its URL with the key: it must be redacted"
    records = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records)
    assert key not in records
    for t in texts:
        assert key not in t, t
    fault_report.add(
        "security",
        "key in server log, client logs (DEBUG), reprs, error messages",
        "absent everywhere (tiled's startup URL redacted to ***)",
        0,
    )


def test_sockets_bind_loopback_by_default(tiled_server, fault_report):
    from laue_live.stream import SafeProxy, SpotPublisher, normalize_address

    with SpotPublisher() as pub, SafeProxy() as proxy:
        for address in (pub.address, proxy.in_address, proxy.out_address):
            assert address.removeprefix("tcp://").startswith("127.0.0.1:"), address
        listening = [c for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening), listening
    with pytest.raises(Exception):  # noqa: B017 - a bare port would bind every interface (bluesky's default)
        normalize_address(5567, bind=True)
    server_proc = psutil.Process(int(tiled_server.process.pid))
    tiled_listen = [c for c in server_proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert tiled_listen and all(c.laddr.ip == "127.0.0.1" for c in tiled_listen)
    fault_report.add(
        "security",
        "listening sockets of the publisher, the proxy and the Tiled server",
        "all on 127.0.0.1; a bare port is refused",
        0,
    )


def test_curve_encrypts_and_admits_only_listed_clients(curve_certs, fault_report):
    import numpy as np

    from laue_live.catalog import random_spot_table
    from laue_live.stream import CurveClient, CurveServer, SpotPublisher, SpotSubscriber

    server_pub, server_sec = curve_certs["server_public"], curve_certs["server_secret"]
    client_sec, stranger_sec = curve_certs["client_secret"], curve_certs["stranger_secret"]
    allowed = curve_certs["client_keys_dir"]
    table = random_spot_table(0, 10, np.random.default_rng(0))
    with SpotPublisher(curve=CurveServer(secret_file=server_sec, client_keys_dir=allowed)) as pub:
        good = SpotSubscriber(pub.address, curve=CurveClient(client_sec, server_pub))
        stranger = SpotSubscriber(pub.address, curve=CurveClient(stranger_sec, server_pub))
        plain = SpotSubscriber(pub.address)
        try:
            assert pub.wait_for_subscribers(1, 10)
            assert good.wait_ready(10)
            for i in range(5):
                pub.publish_table(table, frame=i)
            got = [f.frame for f in good.frames(timeout=2.0, limit=5)]
            assert got == list(range(5))
            assert stranger.next_frame(timeout=1.0) is None and not stranger.ready
            assert plain.next_frame(timeout=1.0) is None and not plain.ready
            assert "key_secret" not in repr(pub) or "secret_file" in repr(pub)
        finally:
            for s in (good, stranger, plain):
                s.close()
    fault_report.add(
        "security",
        "CURVE publisher with an allow-list: listed client, unlisted key, plain client",
        "listed client gets every table; unlisted and plain clients get nothing",
        0,
    )


_MULTI_USER_CONFIG = """
authentication:
  providers:
    - provider: local
      authenticator: tiled.authenticators:DictionaryAuthenticator
      args:
        users_to_passwords:
          operator: "${LAUE_TEST_OPERATOR_PASSWORD}"
  secret_keys: ["${LAUE_TEST_TILED_SECRET}"]
  tiled_admins:
    - {provider: local, id: operator}
database:
  uri: sqlite:///DIR/auth.db
  init_if_not_exists: true
trees:
  - path: /
    tree: catalog
    args:
      uri: sqlite:///DIR/catalog.db
      init_if_not_exists: true
      writable_storage: [DIR/data, "duckdb:///DIR/tables.duckdb"]
"""


@pytest.mark.slow
def test_scoped_reader_and_writer_keys_on_a_multi_user_server(tmp_path, fault_report):
    """Tiled multi-user mode: a read-only key queries and reads, only the writer key writes."""
    import os
    import secrets
    import signal
    import subprocess
    import sys
    import time

    import httpx
    from tiled.client import from_uri
    from tiled.queries import Key

    from laue_live.catalog import free_port

    (tmp_path / "data").mkdir()
    config = tmp_path / "tiled.yml"
    config.write_text(_MULTI_USER_CONFIG.replace("DIR", str(tmp_path)))
    password, port = secrets.token_hex(8), free_port()
    env = {
        **os.environ,
        "LAUE_TEST_OPERATOR_PASSWORD": password,
        "LAUE_TEST_TILED_SECRET": secrets.token_hex(32),
    }
    tiled = Path(sys.executable).with_name("tiled")
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(tiled), "serve", "config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{uri}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)  # polling another process's start-up (bounded)
        token = httpx.post(
            f"{uri}/api/v1/auth/provider/local/token", data={"username": "operator", "password": password}
        ).json()["access_token"]

        def make_key(scopes, note):
            r = httpx.post(
                f"{uri}/api/v1/auth/apikey",
                headers={"Authorization": f"Bearer {token}"},
                json={"scopes": scopes, "expires_in": None, "note": note},
            )
            assert r.status_code == 200, r.text
            return r.json()["secret"]

        reader_key = make_key(["read:metadata", "read:data"], "laue-live reader")
        writer_key = make_key(
            ["read:metadata", "read:data", "write:metadata", "write:data", "create:node"], "laue-live writer"
        )
        writer = from_uri(uri, api_key=writer_key)
        analysis = writer.create_container("analysis")
        uid = _write_run(analysis)
        reader = from_uri(uri, api_key=reader_key)
        assert len(reader["analysis"][uid]["spots"].base["internal"].read()) == 6, "the reader reads"
        found = reader["analysis"].search(Key("start.kind") == "laue-spots")
        assert len(found) == 1, "the reader queries"
        with pytest.raises(Exception, match="401|Not enough permissions"):  # noqa: B017
            reader["analysis"].create_container("intruder")
        with pytest.raises(Exception, match="401|Not enough permissions"):  # noqa: B017
            reader["analysis"][uid]["spots"].base["internal"].append_partition(0, {"frame": [1]})
        assert password not in (tmp_path / "server.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
    fault_report.add(
        "security",
        "Tiled multi-user mode: scoped read-only key vs writer key",
        "reader key queries and reads; its create and append are refused (401 not enough permissions); "
        "writer key writes the analysis run",
        0,
    )
