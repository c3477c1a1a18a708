"""Fixtures shared by the test suite.

``index_url`` / ``index_engine``
    The SQL index on SQLite, PostgreSQL and MariaDB: a test using either runs once per database
    (ids ``[sqlite]``, ``[postgres]``, ``[mariadb]``; the server ones carry the ``postgres`` and
    ``mariadb`` marks, so ``-m "not postgres and not mariadb"`` keeps SQLite only). The servers
    come from ``DICOMWEB_PROXY_TEST_POSTGRES_URL`` and ``DICOMWEB_PROXY_TEST_MARIADB_URL``. Each
    test session works in a database of its own (``dwp_test_<random>``), created on first use
    and dropped at the end, so concurrent sessions never meet; each test starts from an empty
    database. An unreachable server skips the test, or fails it when
    ``DICOMWEB_PROXY_REQUIRE_DATABASES=1`` (CI).
``ahi_sample``
    The real AHI metadata document of an ultrasound series (9 instances).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from dicomweb_proxy.index.database import create_index_engine, upgrade_schema

# Property tests judge values, not speed: on a loaded 2-core machine input generation and
# single examples can be slow without anything being wrong.
settings.register_profile(
    "shared-machine", suppress_health_check=[HealthCheck.too_slow], deadline=None
)
settings.load_profile("shared-machine")

_AHI_SAMPLE = "imageset-metadata-us-doppler.json"
_AHI_SAMPLE_FOLDERS = (
    Path(__file__).parent / "data",
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "ahi-samples",
)


@dataclass(frozen=True)
class _Server:
    label: str
    variable: str
    default: str
    create: str  # CREATE DATABASE statement, {name} quoted
    drop: str

    @property
    def url(self) -> URL:
        return make_url(os.environ.get(self.variable) or self.default)


_SERVERS = {
    "postgres": _Server(
        "PostgreSQL",
        "DICOMWEB_PROXY_TEST_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0",
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)",
    ),
    "mariadb": _Server(
        "MariaDB",
        "DICOMWEB_PROXY_TEST_MARIADB_URL",
        "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        "DROP DATABASE IF EXISTS {name}",
    ),
}


class _SessionDatabases:
    """One throw-away database per server for this test session, created on first use."""

    def __init__(self) -> None:
        self.name = f"dwp_test_{secrets.token_hex(4)}"
        self._urls: dict[str, URL] = {}
        self._unreachable: dict[str, str] = {}

    def url(self, kind: str) -> URL:
        if kind in self._unreachable:
            _unavailable(self._unreachable[kind])
        if kind not in self._urls:
            server = _SERVERS[kind]
            try:
                _run_as_admin(server, server.create, self.name)
            except OperationalError as error:
                where = server.url.render_as_string(hide_password=True)
                self._unreachable[kind] = (
                    f"{server.label} not reachable at {where} ({error.orig}); "
                    f"start it or set {server.variable}"
                )
                _unavailable(self._unreachable[kind])
            self._urls[kind] = server.url.set(database=self.name)
        return self._urls[kind]

    def drop_all(self) -> None:
        for kind in self._urls:
            server = _SERVERS[kind]
            _run_as_admin(server, server.drop, self.name)


def _run_as_admin(server: _Server, statement: str, database: str) -> None:
    """Run CREATE/DROP DATABASE ``database`` from the server URL's database, in autocommit."""
    engine = create_engine(
        server.url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )
    try:
        with engine.connect() as connection:
            name = connection.dialect.identifier_preparer.quote(database)
            connection.exec_driver_sql(statement.format(name=name))
    finally:
        engine.dispose()


def _unavailable(message: str) -> None:
    if os.environ.get("DICOMWEB_PROXY_REQUIRE_DATABASES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _drop_tables(url: URL) -> None:
    """Empty a server database: drop every table, whatever migrations created it."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            existing = MetaData()
            existing.reflect(connection)
            existing.drop_all(connection)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _session_databases() -> Iterator[_SessionDatabases]:
    databases = _SessionDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def index_url(
    request: pytest.FixtureRequest, tmp_path: Path, _session_databases: _SessionDatabases
) -> str:
    """URL of an empty database (no tables) for the index, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    url = _session_databases.url(request.param)
    _drop_tables(url)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def index_engine(index_url: str) -> Iterator[Engine]:
    """An index engine (create_index_engine) with the schema upgraded to head."""
    engine = create_index_engine(index_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ahi_sample() -> dict[str, Any]:
    """A fresh copy of the real AHI sample document (tests may change it)."""
    for folder in _AHI_SAMPLE_FOLDERS:
        path = folder / _AHI_SAMPLE
        if path.is_file():
            return json.loads(path.read_text())
    pytest.skip(f"{_AHI_SAMPLE} not found; copy it to {_AHI_SAMPLE_FOLDERS[0]}")


# --- Sample studies imported once per database per session (tests/sample_data.py) -------------
# Shared by the QIDO-RS and WADO-RS suites; kept apart from index_url, which empties its
# database before every test.


@pytest.fixture(scope="session")
def sample_databases() -> Iterator[_SessionDatabases]:
    """Throw-away server databases of their own, for data that lives the whole session."""
    databases = _SessionDatabases()
    yield databases
    databases.drop_all()


# --- AWS HealthImaging emulator and store (tests/ahi_fixtures.py) -----------------------------
from .ahi_fixtures import (  # noqa: E402, F401
    ahi_sample_files_fixture,
    ahi_source_fixture,
    ahi_store_fixture,
    aws_env_fixture,
    proxy_index_fixture,
)
from .sample_data import imported_samples, sample_files, samples_server  # noqa: E402, F401
