"""Engines for the SQL index (SQLite, PostgreSQL, MySQL/MariaDB), its schema migrations, and the
statement timeout of its readers."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

T = TypeVar("T")
_MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE_OPTION = "dicomweb_proxy_write"
_LOCK_NAME = "dicomweb_proxy.index.schema"
_PG_LOCK_KEY = 0x6477_7078_7363_6D61  # any constant: identifies the schema-upgrade advisory lock
_LOCK_TIMEOUT_S = 300
#: Deadlock and lock-timeout (MySQL error numbers), deadlock and serialization failure (SQLSTATE).
_TRANSIENT_CODES = frozenset({1213, 1205, "40P01", "40001"})
_SQLITE_BUSY_TIMEOUT_S = 30
#: Errors of a statement cut by the timeout: PostgreSQL's query_canceled (SQLSTATE), MariaDB's
#: max_statement_time exceeded and MySQL's max_execution_time exceeded (error numbers; PyMySQL
#: gives both, the SQLSTATE of these is the unspecific HY000 or 70100).
_PG_CANCELED = "57014"
_MYSQL_TIMEOUTS = frozenset({1969, 3024})
#: SQLite VM instructions between two looks at the clock (microseconds of work).
_SQLITE_PROGRESS_STEPS = 1000
_SQLITE_PRAGMAS = (
    f"busy_timeout={_SQLITE_BUSY_TIMEOUT_S * 1000}",
    "foreign_keys=ON",
    "synchronous=NORMAL",
)


def create_index_engine(url: str) -> Engine:
    """An engine for the index at ``url``: ``sqlite:///path``, ``postgresql://`` (psycopg 3) or
    ``mysql://``/``mariadb://`` (PyMySQL, utf8mb4). Driver-less URLs get those drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    if backend in ("mysql", "mariadb"):
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername=f"{backend}+pymysql")
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        # READ COMMITTED as on PostgreSQL: no gap locks between concurrent importers.
        return create_engine(parsed, pool_pre_ping=True, isolation_level="READ COMMITTED")
    raise ValueError(f"unsupported index database {backend!r}: use sqlite, postgresql or mysql")


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction for index writers. On SQLite it takes the write lock as it begins
    (BEGIN IMMEDIATE), so concurrent writers queue on busy_timeout instead of failing when the
    snapshot they read is already stale."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


def run_write(engine: Engine, work: Callable[[Connection], T], *, attempts: int = 5) -> T:
    """Run *work* in a write transaction, again from the start when the database reports a race
    with another writer (a deadlock, a serialization failure, or a row inserted first): MySQL and
    PostgreSQL expect the client to retry such transactions."""
    for attempt in range(1, attempts + 1):
        try:
            with begin_write(engine) as connection:
                return work(connection)
        except DBAPIError as error:
            if attempt == attempts or not _is_transient(error):
                raise
            time.sleep(random.uniform(0, 0.05 * attempt))
    raise AssertionError("unreachable")


def _is_transient(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True
    code = getattr(error.orig, "sqlstate", None) or (getattr(error.orig, "args", None) or [None])[0]
    return code in _TRANSIENT_CODES


class StatementTimeout(RuntimeError):
    """The database cut a read that ran longer than the reader's timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"an index query ran longer than {seconds:g} s")
        self.seconds = seconds


@contextmanager
def statement_timeout(connection: Connection, seconds: float) -> Iterator[None]:
    """Have the database cut statements on *connection* that run longer than *seconds* (0: no
    limit) while the block runs; StatementTimeout when it does. For readers: the limit ends
    with the block, so writers that use the pooled connection later are never cut.

    PostgreSQL: ``statement_timeout``, set for the transaction only (the block must run in one:
    a connection's first statement begins it, closing the connection ends it). MariaDB:
    ``max_statement_time`` and MySQL: ``max_execution_time`` (SELECT only), set for the session
    and reset as the block ends. SQLite has no such setting: a progress handler interrupts the
    statement running at the deadline, which counts from the start of the block."""
    if not seconds:
        yield
        return
    dialect = connection.dialect
    cut = False
    try:
        if dialect.name == "sqlite":
            with _sqlite_deadline(connection, seconds) as expired:
                try:
                    yield
                finally:
                    cut = expired()
        elif dialect.name == "postgresql":
            milliseconds = str(max(1, round(seconds * 1000)))
            connection.execute(select(func.set_config("statement_timeout", milliseconds, True)))
            yield
        else:
            mariadb = getattr(dialect, "is_mariadb", False)
            variable = "max_statement_time" if mariadb else "max_execution_time"
            value = seconds if mariadb else max(1, round(seconds * 1000))
            connection.execute(text(f"SET SESSION {variable} = :value"), {"value": value})
            try:
                yield
            finally:
                _reset_session(connection, variable)
    except DBAPIError as error:
        if cut or _timed_out(error):
            raise StatementTimeout(seconds) from error
        raise


def _timed_out(error: DBAPIError) -> bool:
    if getattr(error.orig, "sqlstate", None) == _PG_CANCELED:
        return True
    number = (getattr(error.orig, "args", None) or [None])[0]
    return number in _MYSQL_TIMEOUTS


@contextmanager
def _sqlite_deadline(connection: Connection, seconds: float) -> Iterator[Callable[[], bool]]:
    """Interrupt the SQLite statement running *seconds* from now; yields whether it did."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    deadline = time.monotonic() + seconds
    interrupted = False

    def progress() -> int:
        nonlocal interrupted
        interrupted = time.monotonic() > deadline
        return int(interrupted)  # non-zero: SQLite stops the statement ("interrupted")

    raw.set_progress_handler(progress, _SQLITE_PROGRESS_STEPS)
    try:
        yield lambda: interrupted
    finally:
        raw.set_progress_handler(None, 0)


def _reset_session(connection: Connection, variable: str) -> None:
    """The server's own value of a session variable again; a connection that cannot say so
    leaves the pool rather than keep the reader's limit."""
    try:
        connection.execute(text(f"SET SESSION {variable} = DEFAULT"))
    except DBAPIError:
        connection.invalidate()


def upgrade_schema(engine: Engine) -> None:
    """Migrate the index to the newest revision; a no-op when it is current. Safe to call from
    several processes at once: they are serialized by a lock (advisory on PostgreSQL, GET_LOCK on
    MySQL/MariaDB, the database write lock on SQLite) held on a connection of its own until the
    migration has committed, so the next process sees the new revision."""
    with (
        engine.connect() as lock_connection,
        _schema_lock(lock_connection),
        begin_write(engine) as connection,
    ):
        command.upgrade(_alembic_config(connection), "head")


def schema_revision(engine: Engine) -> str | None:
    """The index's Alembic revision, None before the first upgrade."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision this release knows: what upgrade_schema migrates to."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _schema_lock(connection: Connection) -> Iterator[None]:
    """A session-level lock on *connection* (outside any migration transaction)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(select(func.pg_advisory_lock(_PG_LOCK_KEY)))
        connection.commit()
        try:
            yield
        finally:
            connection.execute(select(func.pg_advisory_unlock(_PG_LOCK_KEY)))
            connection.commit()
    elif dialect in ("mysql", "mariadb"):
        if connection.scalar(select(func.get_lock(_LOCK_NAME, _LOCK_TIMEOUT_S))) != 1:
            raise TimeoutError(f"another process holds {_LOCK_NAME} for over {_LOCK_TIMEOUT_S}s")
        connection.commit()
        try:
            yield
        finally:
            connection.execute(select(func.release_lock(_LOCK_NAME)))
            connection.commit()
    else:
        yield  # SQLite: BEGIN IMMEDIATE in begin_write already excludes other writers


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 driver's own BEGIN skips DDL and SELECT; _sqlite_begin emits it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    _use_wal(cursor)
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch a new database file to WAL. The switch needs the database to itself and SQLite
    answers "database is locked" at once, without waiting, while another connection uses it (as
    when several processes open a new index together): wait and try again."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            mode = None
        if str(mode).lower() == "wal":
            return
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"cannot switch the index to WAL (journal mode {mode})")
        time.sleep(0.01)


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(_WRITE_OPTION)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
