"""CatalogSettings: precedence, validation, secrets never shown."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from laue_live import SettingsError
from laue_live.catalog import CatalogSettings, generate_api_key, redact


def test_precedence_arguments_env_file(tmp_path):
    f = tmp_path / "cat.yml"
    f.write_text("catalog:\n  uri: http://file:1\n  api_key: filekey1\n  data_dir: /file/dir\n"
                 "  raw_path: beamline/raw\n")
    env = {"LAUE_LIVE_TILED_URI": "http://env:2", "LAUE_LIVE_TILED_API_KEY": "envkey2"}
    s = CatalogSettings.load(settings_file=f, env={})
    assert (s.uri, s.api_key, str(s.data_dir), s.raw_path) == ("http://file:1", "filekey1", "/file/dir",
                                                               "beamline/raw")
    s = CatalogSettings.load(settings_file=f, env=env)
    assert (s.uri, s.api_key) == ("http://env:2", "envkey2")
    s = CatalogSettings.load(uri="http://arg:3/", api_key="argkey3", settings_file=f, env=env)
    assert (s.uri, s.api_key) == ("http://arg:3", "argkey3")


def test_key_sources_tiled_env_and_key_file(tmp_path):
    assert CatalogSettings.load(env={"TILED_API_KEY": "abc123"}).api_key == "abc123"
    kf = tmp_path / "key"
    kf.write_text("fromfile9\n")
    assert CatalogSettings.load(env={"LAUE_LIVE_TILED_API_KEY_FILE": str(kf)}).api_key == "fromfile9"
    # The laue-live variable wins over tiled's own.
    assert CatalogSettings.load(env={"TILED_API_KEY": "b", "LAUE_LIVE_TILED_API_KEY": "a"}).api_key == "a"


def test_toml_settings_file(tmp_path):
    f = tmp_path / "cat.toml"
    f.write_text('[catalog]\nuri = "https://tiled.beamline.example:8000"\n')
    assert CatalogSettings.load(settings_file=f, env={}).uri == "https://tiled.beamline.example:8000"


@pytest.mark.parametrize("env", [
    {"LAUE_LIVE_TILED_API_KEY": "not-alnum"},
    {"LAUE_LIVE_TILED_API_KEY": "with space"},
    {"LAUE_LIVE_TILED_URI": "ftp://host"},
    {"LAUE_LIVE_TILED_URI": "http://host:1?api_key=abc"},
    {"LAUE_LIVE_TILED_API_KEY_FILE": "/nonexistent/key"},
])
def test_bad_settings_raise_settings_error(env):
    with pytest.raises(SettingsError) as info:
        CatalogSettings.load(env=env)
    # The offending key is never echoed in the message.
    for value in env.values():
        if "api_key=" not in value and "/" not in value and ":" not in value:
            assert value not in str(info.value)


def test_bad_settings_files(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("uri: [unclosed\n")
    with pytest.raises(SettingsError, match="cannot be parsed"):
        CatalogSettings.load(settings_file=bad, env={})
    unknown = tmp_path / "unknown.yml"
    unknown.write_text("uri: http://h:1\npassword: x\n")
    with pytest.raises(SettingsError, match="unknown key"):
        CatalogSettings.load(settings_file=unknown, env={})
    with pytest.raises(SettingsError, match="cannot read"):
        CatalogSettings.load(settings_file=tmp_path / "missing.yml", env={})
    with pytest.raises(SettingsError):
        CatalogSettings(raw_path="")


def test_repr_and_logs_never_show_the_key(caplog):
    key = generate_api_key()
    s = CatalogSettings(uri="http://h:1", api_key=key)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings %r %s", s, s)
    assert key not in repr(s) and key not in str(s) and key not in caplog.text
    assert "***" in repr(s)
    assert redact(f"GET http://h/api?api_key={key}&x=1", key) == "GET http://h/api?api_key=***&x=1"


def test_generated_embedded_key_is_alphanumeric_private_and_stable(tmp_path):
    s = CatalogSettings(data_dir=tmp_path / "d")
    key = s.embedded_api_key()
    assert key.isalnum() and len(key) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "d" / "api_key").st_mode)
    assert mode == 0o600
    assert CatalogSettings(data_dir=tmp_path / "d").embedded_api_key() == key
    assert generate_api_key() != key


def test_tabular_store_from_the_settings_file_and_fixed_per_data_dir(tmp_path, tiled_data_dir):
    from laue_live.catalog import LocalTiledServer

    f = tmp_path / "catalog.yml"
    f.write_text("tabular: postgresql\n")
    assert CatalogSettings.load(settings_file=f, env={}).tabular == "postgresql"
    f.write_text("tabular: oracle\n")
    with pytest.raises(SettingsError, match="tabular must be one of"):
        CatalogSettings.load(settings_file=f, env={})
    # a catalog keeps the store it was made with: its nodes point there
    with pytest.raises(SettingsError, match="holds a catalog with duckdb table storage"):
        LocalTiledServer(tiled_data_dir, tabular="postgresql").start()
    assert not (tiled_data_dir / "server.json").exists()
