"""Settings precedence and validation: flags > environment > config file > defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dicomweb_proxy.config import ConfigError, index_identity, load_settings
from dicomweb_proxy.services import open_datastores


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


# --- Several datastores ([datastores.NAME] tables, DICOMWEB_PROXY_DATASTORES) ------------------

AHI_ID = "0123456789abcdef0123456789abcdef"


def write_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "proxy.toml"
    config.write_text(text)
    return config


def test_datastore_tables_inherit_all_but_their_index(tmp_path):
    config = write_config(
        tmp_path,
        f"""
data_dir = "{tmp_path / "data"}"
database_url = "postgresql+psycopg://dicomweb@db/main"
aws_region = "eu-west-1"
frame_cache_mb = 512
keep_original = true

[datastores.research]

[datastores.cloud]
base_path = "/ahi/cloud"
store = "ahi"
datastore_id = "{AHI_ID}"
db_secret_arn = "arn:aws:secretsmanager:eu-west-1:1:secret:cloud"
frame_cache_mb = 0
""",
    )
    settings = load_settings({}, environ={}, config_file=config)
    datastores = settings.all_datastores()
    assert list(datastores) == ["default", "research", "cloud"]
    assert datastores["default"] is settings
    research = settings.datastore("research")
    assert research.base_path == "/research"
    assert research.data_dir == tmp_path / "data" / "datastores" / "research"
    assert research.index_url == (
        f"sqlite:///{(tmp_path / 'data/datastores/research/index.sqlite').resolve()}"
    )
    assert (research.store, research.keep_original) == ("local", True)
    assert research.cache_dir == research.data_dir / "cache"
    assert research.datastores == {}
    cloud = datastores["cloud"]
    assert (cloud.base_path, cloud.store, cloud.datastore_id) == ("/ahi/cloud", "ahi", AHI_ID)
    assert (cloud.database_url, cloud.aws_region, cloud.frame_cache_mb) == ("", "eu-west-1", 0)
    assert cloud.sources["frame_cache_mb"] == f"config file {config}"
    assert "database_url" not in cloud.sources
    assert settings.datastore("default") is settings


def test_datastores_from_the_environment_replace_the_config_files(tmp_path):
    config = write_config(tmp_path, '[datastores.research]\nstore = "local"\n')
    environ = {
        "DICOMWEB_PROXY_DATASTORES": '{"scans": {"data_dir": "/data/scans", "keep_original": "1"}}'
    }
    settings = load_settings({"data_dir": tmp_path}, environ=environ, config_file=config)
    assert list(settings.all_datastores()) == ["default", "scans"]
    scans = settings.datastore("scans")
    assert (scans.data_dir, scans.keep_original) == (Path("/data/scans"), True)
    assert scans.sources["keep_original"] == "environment variable DICOMWEB_PROXY_DATASTORES"


def test_datastores_travel_to_workers_through_the_environment(tmp_path):
    datastores = {
        "research": {"data_dir": tmp_path / "r", "keep_original": True},
        "scans": {"base_path": "/x/scans", "frame_cache_mb": 5},
    }
    settings = load_settings({"data_dir": tmp_path, "datastores": datastores}, environ={})
    rebuilt = load_settings({}, environ=settings.to_env())
    assert rebuilt == settings
    assert rebuilt.all_datastores() == settings.all_datastores()


def test_flags_set_the_selected_datastores_own_settings(tmp_path):
    config = write_config(tmp_path, "[datastores.research]\nkeep_original = false\n")
    flags = {"data_dir": tmp_path, "keep_original": True, "database_url": "sqlite:///r.sqlite"}
    settings = load_settings(flags, environ={}, config_file=config, datastore="research")
    research = settings.datastore("research")
    assert (research.keep_original, research.database_url) == (True, "sqlite:///r.sqlite")
    assert research.sources["keep_original"] == "--keep-original"
    assert research.data_dir == tmp_path / "datastores" / "research"  # --data-dir: the server's
    assert (settings.keep_original, settings.database_url) == (False, "")


def test_public_base_url_is_derived_per_datastore():
    flags = {"public_base_url": "https://pacs.example.org/dicom/aetitle"}
    settings = load_settings({**flags, "datastores": {"research": {}}}, environ={})
    assert settings.datastore("research").public_base_url == (
        "https://pacs.example.org/dicom/research"
    )


@pytest.mark.parametrize(
    ("datastores", "flags", "message"),
    [
        (
            {"research": {"base_path": "/aetitle"}},
            {},
            "datastore 'default' and datastore 'research' both have base path '/aetitle'; "
            "give each datastore its own base_path",
        ),
        (
            {"research": {"base_path": "/aetitle/research"}},
            {},
            "base path '/aetitle/research' of datastore 'research' lies inside '/aetitle' of "
            "datastore 'default'; base paths must not nest",
        ),
        (
            {"research": {}},
            {"base_path": "/"},
            "base path '/research' of datastore 'research' lies inside '/' of datastore 'default'",
        ),
        ({"viewer": {}}, {}, "datastore 'viewer' and the viewer both have base path '/viewer'"),
        ({"re search": {}}, {}, "datastore 're search' (from --datastores): a name is 1-64"),
        ({"default": {}}, {}, "'default' is the top-level settings' datastore; choose another"),
        (
            {"research": {"port": 1}},
            {},
            "datastore 'research' (from --datastores): unknown setting(s) port; allowed: "
            "base_path, store, datastore_id, data_dir, database_url, db_secret_arn, aws_region, "
            "ahi_endpoint_url, cache_root, frame_cache_mb, keep_original",
        ),
        ({"research": "local"}, {}, "datastore 'research' (from --datastores): must be a table"),
        (
            {"research": {"store": "s3"}},
            {},
            "datastore 'research': setting 'store' (from --datastores): 's3' is not one of",
        ),
        (
            {"research": {"frame_cache_mb": "lots"}},
            {},
            "datastore 'research': setting 'frame_cache_mb' (from --datastores): 'lots' is not",
        ),
        (
            {"research": {"store": "ahi", "datastore_id": AHI_ID}},
            {},
            "datastore 'research': setting 'aws_region' (from default): store 'ahi' needs one",
        ),
        (
            {"research": {"store": "ahi", "datastore_id": "nope"}},
            {"aws_region": "us-east-1"},
            "datastore 'research': setting 'datastore_id' (from --datastores): 'nope' is not an",
        ),
        (
            {"research": {"database_url": "sqlite:///r.sqlite", "db_secret_arn": "arn:x"}},
            {},
            "datastore 'research': setting 'db_secret_arn' (from --datastores): the index "
            "database is given twice",
        ),
        (
            {"research": {}},
            {"public_base_url": "https://pacs.example.org/dicom"},
            "setting 'public_base_url' (from --public-base-url): must end with base_path "
            "'/aetitle' when several datastores are served",
        ),
    ],
)
def test_bad_datastores_are_refused_by_name(tmp_path, datastores, flags, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {"data_dir": tmp_path, **flags, "datastores": datastores},
            environ={},
        )
    assert message in str(raised.value)


def test_bad_datastores_from_the_config_file_and_environment_name_their_source(tmp_path):
    config = write_config(tmp_path, '[datastores.research]\nstore = "s3"\n')
    with pytest.raises(ConfigError, match=re.escape(f"(from config file {config}): 's3'")):
        load_settings({"data_dir": tmp_path}, environ={}, config_file=config)
    environ = {"DICOMWEB_PROXY_DATASTORES": '{"research": '}
    message = "setting 'datastores' (from environment variable DICOMWEB_PROXY_DATASTORES): not JSON"
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({}, environ=environ)
    environ = {"DICOMWEB_PROXY_DATASTORES": '["research"]'}
    with pytest.raises(ConfigError, match="must map datastore names to their settings"):
        load_settings({}, environ=environ)


def test_selecting_an_unconfigured_datastore_lists_the_configured_ones(tmp_path):
    flags = {"data_dir": tmp_path, "datastores": {"research": {}}}
    message = "datastore 'scans' is not configured (configured: default, research); add a"
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(flags, environ={}, datastore="scans")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(flags, environ={}).datastore("scans")


@pytest.mark.parametrize(
    ("datastores", "flags"),
    [
        (
            {"research": {"database_url": "sqlite:///shared.sqlite"}},
            {"database_url": "sqlite:///./shared.sqlite"},
        ),
        ({"research": {"data_dir": "DATA"}}, {}),
    ],
)
def test_datastores_sharing_an_index_of_ours_are_refused(tmp_path, monkeypatch, datastores, flags):
    """Searches would mix their studies. (A metadata-index database may be shared: its
    searches are kept to each datastore, tests/test_metadata_index.py.)"""
    monkeypatch.chdir(tmp_path)
    for own in datastores.values():
        if own.get("data_dir") == "DATA":
            own["data_dir"] = tmp_path
    settings = load_settings({**flags, "data_dir": tmp_path, "datastores": datastores}, environ={})
    with pytest.raises(ConfigError, match="datastores 'default' and 'research' share one index"):
        open_datastores(settings)


def test_an_index_is_named_whatever_its_driver_or_password():
    names = [
        index_identity(load_settings({"database_url": url}, environ={}))
        for url in ("postgresql+psycopg://u:one@db:5432/index", "postgresql://u:two@db:5432/index")
    ]
    assert names == ["postgresql://db:5432/index"] * 2
