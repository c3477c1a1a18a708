"""Which tables an index database holds: ours, or those of the companion "metadata-index".

The companion AHI project (RDBMS mode) keeps a MySQL database whose tables and columns ours
extend (index/schema.py): same table names, same column names, fewer columns. Its users can point
the server at that database, with a read-only user, and keep it current with their own indexer.
A :class:`Layout` says which columns the database has, so one set of statements serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Engine, Integer, String, inspect, text
from sqlalchemy.sql.selectable import Alias

from . import schema

PROXY = "proxy"
METADATA_INDEX = "metadata-index"

#: Columns the metadata-index layout must have for the server to read it.
REQUIRED_COLUMNS: Mapping[str, frozenset[str]] = {
    "issuer": frozenset({"issuer_pkey", "issuerofpatientid"}),
    "patient": frozenset({"patient_pkey", "issuer_pkey", "patientid", "patientname"}),
    "study": frozenset({"study_pkey", "patient_pkey", "studyinstanceuid"}),
    "series": frozenset({"series_pkey", "study_pkey", "seriesinstanceuid"}),
    "instance": frozenset({"instance_pkey", "series_pkey", "imageset_pkey", "sopinstanceuid"}),
    "imageset": frozenset({"imageset_pkey", "series_pkey", "imagesetid", "datastoreid"}),
}


class LayoutError(RuntimeError):
    """The database holds tables the server can neither read nor migrate."""


@dataclass(frozen=True)
class Layout:
    """The index's layout: its name and the columns of each of our tables it has."""

    name: str
    columns: Mapping[str, frozenset[str]]
    #: "table.column" of integer columns of ours that the database keeps as text.
    text_numbers: frozenset[str] = frozenset()
    #: "table.column" -> character set of its text columns (MySQL/MariaDB).
    charsets: Mapping[str, str] = field(default_factory=dict)

    @property
    def binary_text(self) -> bool:
        """Whether text columns compare exactly (ours do); others may use the database's
        default collation, which on MySQL ignores case and accents."""
        return self.name == PROXY

    @property
    def writable(self) -> bool:
        """Only our own layout is written (import, sync, events); the other has its indexer."""
        return self.name == PROXY

    def has(self, column: ColumnElement) -> bool:
        return column.name in self.columns.get(_table_name(column), ())  # type: ignore[attr-defined]

    def holds_text_number(self, column: ColumnElement) -> bool:
        if getattr(column, "table", None) is None:  # an expression (a collated column)
            return False
        return _qualified(column) in self.text_numbers

    def charset(self, column: ColumnElement) -> str | None:
        """The column's character set, when the database said (MySQL/MariaDB)."""
        return self.charsets.get(_qualified(column))


def _qualified(column: ColumnElement) -> str:
    return f"{_table_name(column)}.{column.name}"  # type: ignore[attr-defined]


def _table_name(column: ColumnElement) -> str:
    """The name of the column's table, also for a column of an alias of one of our tables."""
    table = column.table  # type: ignore[attr-defined]
    return table.element.name if isinstance(table, Alias) else table.name


OURS = Layout(
    PROXY,
    {
        table.name: frozenset(column.name for column in table.c)
        for table in schema.metadata.sorted_tables
    },
)


def detect_layout(engine: Engine) -> Layout:
    """Our layout for a database Alembic manages (or an empty one, which it will), else the
    metadata-index layout as the database has it; LayoutError if that lacks what we read."""
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    if "alembic_version" in tables or "study" not in tables:
        return OURS
    reflected = {table: inspector.get_columns(table) for table in OURS.columns if table in tables}
    columns = {
        table: frozenset(column["name"].lower() for column in found)
        for table, found in reflected.items()
    }
    missing = [
        f"{table}.{column}"
        for table, required in REQUIRED_COLUMNS.items()
        for column in sorted(required - columns.get(table, frozenset()))
    ]
    if missing:
        raise LayoutError(
            "the index database has a 'study' table but is neither ours (no alembic_version) nor"
            f" the metadata-index layout (missing {', '.join(missing)}); use an empty database"
        )
    text_numbers = frozenset(
        f"{table}.{column['name'].lower()}"
        for table, found in reflected.items()
        for column in found
        if isinstance(column["type"], String)
        and isinstance(_our_column(table, column["name"].lower()), Integer)
    )
    return Layout(METADATA_INDEX, columns, text_numbers, _charsets(engine))


def _charsets(engine: Engine) -> dict[str, str]:
    """Character sets of the text columns: a user that may only SELECT can read them."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return {}
    statement = text(
        "SELECT LOWER(table_name), LOWER(column_name), LOWER(character_set_name)"
        " FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND character_set_name IS NOT NULL"
    )
    with engine.connect() as connection:
        return {
            f"{table}.{column}": charset for table, column, charset in connection.execute(statement)
        }


def _our_column(table: str, name: str) -> object:
    column = schema.metadata.tables[table].c.get(name)
    return None if column is None else column.type
