"""Settings precedence and validation: flags > environment > config file > defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dicomweb_proxy.config import ConfigError, load_settings


def test_defaults_match_the_reference_proxy():
    settings = load_settings({}, environ={})
    assert (settings.port, settings.base_path) == (8080, "/aetitle")
    assert settings.index_url.startswith("sqlite:///") and settings.index_url.endswith(
        "data/index.sqlite"
    )
    assert settings.cache_dir == Path("data/cache")


def test_precedence(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text('port = 9000\nbase_path = "/dicomweb"\nworkers = 3\n')
    environ = {"PORT": "9100", "DICOMWEB_PROXY_WORKERS": "4", "CACHE_ROOT": "/tmp/c"}
    settings = load_settings({"workers": 5}, environ=environ, config_file=config)
    assert settings.port == 9100  # environment beats the file
    assert settings.base_path == "/dicomweb"  # the file beats the default
    assert settings.workers == 5  # a flag beats everything
    assert settings.cache_dir == Path("/tmp/c")
    assert settings.sources["port"] == "environment variable PORT"
    ours = load_settings({}, environ={"PORT": "1", "DICOMWEB_PROXY_PORT": "2"})
    assert ours.port == 2


def test_settings_travel_to_workers_through_the_environment():
    settings = load_settings({"cors_origins": ["http://a", "http://b"], "port": 8181}, environ={})
    assert load_settings({}, environ=settings.to_env()) == settings


@pytest.mark.parametrize(
    ("flags", "environ", "named"),
    [
        ({"port": 70000}, {}, "'port' (from --port)"),
        ({}, {"PORT": "http"}, "'port' (from environment variable PORT)"),
        ({"base_path": "aetitle"}, {}, "'base_path'"),
        ({"database_url": "oracle://x/y"}, {}, "'database_url'"),
        ({"database_url": "not a url"}, {}, "'database_url'"),
        ({}, {"DICOMWEB_PROXY_KEEP_ORIGINAL": "maybe"}, "'keep_original'"),
        ({"public_base_url": "example.org"}, {}, "'public_base_url'"),
    ],
)
def test_bad_values_name_the_setting(flags, environ, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_settings(flags, environ=environ)


def test_unknown_config_file_setting(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, environ={}, config_file=config)


def test_local_datastore_id_cannot_leave_the_store_folder():
    with pytest.raises(ConfigError, match="'datastore_id'"):
        load_settings({"datastore_id": "../../x"}, environ={})


def test_data_dir_must_be_a_folder(tmp_path):
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(ConfigError, match=r"'data_dir'.*not a folder"):
        load_settings({"data_dir": file}, environ={})
