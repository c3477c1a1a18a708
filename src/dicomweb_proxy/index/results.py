"""QIDO-RS results: the rows of a page as DICOM JSON datasets, with what they need from the
rows of the levels above and (for layouts without the columns) the series and instances below.

Returned values come from the level's ``attributes`` DICOM JSON, so they are the original text;
columns fill in what a level's JSON lacks (values that differ between instances). The companion
metadata-index layout lacks some columns: without ``modalitiesinstudy``/``sopclassesinstudy``
they are collected from the page's series and instances, without ``attributes`` only columns
are returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import orjson
from sqlalchemy import Column, ColumnElement, Connection, FromClause, Result, Select, select

from ..dicom.dicom_json import to_dicom_json
from ..dicom.query import Level, SearchQuery
from .layout import Layout
from .matching import COLUMNS, EMPTY_TEXT, PLACEHOLDERS
from .schema import instance, patient, series, study

DatasetJSON = dict[str, dict]
OWN_TABLE = {Level.STUDY: study, Level.SERIES: series, Level.INSTANCE: instance}


def dicts(result: Result) -> list[dict[str, Any]]:
    """Rows as plain dicts: read per returned attribute, far faster than RowMapping."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def label(column: Column) -> str:
    return f"{column.table.name}_{column.name}"  # type: ignore[attr-defined]


def labelled(layout: Layout, *tables: FromClause) -> list[ColumnElement]:
    """Every column of ``tables`` the layout has, under its label; the patient's JSON is in
    the study's."""
    return [
        column.label(label(column))  # type: ignore[arg-type]
        for table in tables
        for column in table.c
        if layout.has(column) and (table is not patient or column.name != "attributes")
    ]


def page_datasets(
    connection: Connection, query: SearchQuery, rows: list[dict[str, Any]], layout: Layout
) -> list[DatasetJSON]:
    """The rows of a page (labelled columns of the query's level) as DICOM JSON datasets,
    with what the query returns of the levels above and what the layout does not keep."""
    parents = _parent_records(connection, query, rows, layout)
    if query.level == Level.STUDY:
        _collect_in_study(connection, query, layout, rows)
    elif Level.STUDY in parents:
        studies = [record.values for record in parents[Level.STUDY].values()]
        _collect_in_study(connection, query, layout, studies)
    return _datasets(query, rows, parents, layout)


def _counted(value: int | None) -> dict | None:
    return None if value is None else {"vr": "IS", "Value": [value]}


def _listed(vr: str) -> Callable[[str | None], dict | None]:
    # Left out when unknown: viewers (OHIF) read an empty ModalitiesInStudy as an error.
    return lambda value: {"vr": vr, "Value": value.split("\\")} if value else None


#: Attributes the index computes: (column, value as a DICOM JSON element).
COMPUTED: dict[str, tuple[Column, Callable[[Any], dict | None]]] = {
    "ModalitiesInStudy": (study.c.modalitiesinstudy, _listed("CS")),
    "SOPClassesInStudy": (study.c.sopclassesinstudy, _listed("UI")),
    "NumberOfStudyRelatedSeries": (study.c.numberofstudyrelatedseries, _counted),
    "NumberOfStudyRelatedInstances": (study.c.numberofstudyrelatedinstances, _counted),
    "NumberOfSeriesRelatedInstances": (series.c.numberofseriesrelatedinstances, _counted),
}
_ONLINE = {"vr": "CS", "Value": ["ONLINE"]}  # everything indexed is in the store
# Columns of these VRs hold what DICOM JSON holds (UIDs, integers), so the JSON is not needed.
_EXACT_VRS = frozenset({"UI", "IS", "US", "SS", "UL", "SL"})
# Text of these VRs is converted (PN to objects, IS/DS to numbers: a layout may keep them as text).
_TEXT_CONVERTED = frozenset({"PN", "IS", "DS"})


class _Record:
    """One row of a level: its column values (keyed by label) and its attribute JSON, parsed
    only when an attribute is looked up that the text holds (most searches need none)."""

    __slots__ = ("_attributes", "_text", "values")

    def __init__(self, values: dict[str, Any], table: FromClause) -> None:
        self.values = values
        self._text: str = values.get(f"{table.name}_attributes") or "{}"  # type: ignore[attr-defined]
        self._attributes: DatasetJSON | None = None

    @property
    def attributes(self) -> DatasetJSON:
        if self._attributes is None:
            self._attributes = orjson.loads(self._text)
        return self._attributes

    def get(self, tag: str) -> dict | None:
        if self._attributes is None and f'"{tag}"' not in self._text:
            return None
        return self.attributes.get(tag)


# Returned at every level without reading the parents' rows: page rows hold the UIDs, the
# others are constants or added by the HTTP layer.
_WITHOUT_PARENTS = frozenset(
    {
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "InstanceAvailability",
        "SpecificCharacterSet",
        "RetrieveURL",
    }
)
_PARENT_KEY = {
    Level.STUDY: label(series.c.study_pkey),
    Level.SERIES: label(instance.c.series_pkey),
}


def _parent_records(
    connection: Connection, query: SearchQuery, rows: list[dict[str, Any]], layout: Layout
) -> dict[Level, dict[int, _Record]]:
    """The page's study (with patient) and series rows, by pkey, for the levels above the
    query's whose attributes are returned (beyond the UIDs the page rows hold)."""
    levels = {
        max(key.attribute.level, Level.STUDY)
        for key in query.returned
        if key.attribute.keyword not in _WITHOUT_PARENTS
    }
    records: dict[Level, dict[int, _Record]] = {}
    for level, statement in (
        (Level.STUDY, select(*labelled(layout, study, patient)).join_from(study, patient)),
        (Level.SERIES, select(*labelled(layout, series))),
    ):
        if level in levels and level < query.level and rows:
            table = OWN_TABLE[level]
            pkey = table.c[f"{table.name}_pkey"]
            wanted = sorted({row[_PARENT_KEY[level]] for row in rows})
            found = dicts(connection.execute(statement.where(pkey.in_(wanted))))
            records[level] = {row[label(pkey)]: _Record(row, table) for row in found}
    return records


#: What the layouts without a column for them collect ModalitiesInStudy and SOPClassesInStudy
#: from: (the column they stand in for, study_pkey and value of each series or instance).
IN_STUDY_SOURCES: dict[str, tuple[Column, Select]] = {
    # Not DISTINCT: a case-insensitive collation would take 'ct' for 'CT'; series are few.
    "ModalitiesInStudy": (
        study.c.modalitiesinstudy,
        select(series.c.study_pkey, series.c.modality),
    ),
    # UIDs, which any collation tells apart; instances are many.
    "SOPClassesInStudy": (
        study.c.sopclassesinstudy,
        select(series.c.study_pkey, instance.c.sopclassuid).join_from(instance, series).distinct(),
    ),
}


def _collect_in_study(
    connection: Connection, query: SearchQuery, layout: Layout, studies: list[dict[str, Any]]
) -> None:
    """Fill in the returned ModalitiesInStudy and SOPClassesInStudy of the page's studies when
    the layout does not keep them, as their stored form (sorted, backslash-separated)."""
    returned = {key.attribute.keyword for key in query.returned}
    pkey = label(study.c.study_pkey)
    wanted = sorted({row[pkey] for row in studies})
    for keyword, (column, source) in IN_STUDY_SOURCES.items():
        if keyword not in returned or layout.has(column) or not wanted:
            continue
        found: dict[int, set[str]] = {}
        for study_pkey, value in connection.execute(source.where(series.c.study_pkey.in_(wanted))):
            if value and (layout.writable or value != EMPTY_TEXT):
                found.setdefault(study_pkey, set()).add(value)
        for row in studies:
            row[label(column)] = "\\".join(sorted(found.get(row[pkey], ())))


@dataclass(frozen=True, slots=True)
class _Field:
    """How to find one returned attribute in a row's records (own level first, then parents)."""

    tag: str
    vr: str
    required: bool
    depth: int  # how many of the records hold attributes of its level
    constant: dict | None  # InstanceAvailability
    computed: tuple[str, Callable[[Any], dict]] | None  # (column label, converter)
    column: str | None  # label of the column that fills in when no JSON has it
    exact_column: bool  # the column holds the value exactly as DICOM JSON has it: read it first
    placeholders: frozenset[str]  # column values that mean "unknown"


def _fields(query: SearchQuery, levels: list[Level], layout: Layout) -> list[_Field]:
    empty = frozenset() if layout.writable else frozenset({EMPTY_TEXT})
    fields = []
    for key in query.returned:
        attribute, keyword = key.attribute, key.attribute.keyword
        computed = COMPUTED.get(keyword)
        column = COLUMNS.get(keyword)
        fields.append(
            _Field(
                attribute.tag,
                attribute.vr,
                key.required,
                sum(1 for level in levels if level >= attribute.level),
                _ONLINE if keyword == "InstanceAvailability" else None,
                (label(computed[0]), computed[1]) if computed else None,
                label(column) if column is not None else None,
                column is not None and attribute.vr in _EXACT_VRS,
                empty | {PLACEHOLDERS[keyword]} if keyword in PLACEHOLDERS else empty,
            )
        )
    return fields


def _datasets(
    query: SearchQuery,
    rows: list[dict[str, Any]],
    parents: dict[Level, dict[int, _Record]],
    layout: Layout,
) -> list[DatasetJSON]:
    above = [level for level in (Level.SERIES, Level.STUDY) if level in parents]
    fields = _fields(query, [query.level, *above], layout)
    own_table = OWN_TABLE[query.level]
    datasets = []
    for row in rows:
        own = _Record(row, own_table)
        # Most specific first: a level's JSON only holds what all its instances share.
        records = [own, *(parents[level][row[_PARENT_KEY[level]]] for level in above)]
        dataset = dict(own.attributes) if query.include_all else {}
        for field in fields:
            element = _element(field, records[: field.depth])
            if element is not None:
                dataset[field.tag] = element
            elif field.required and field.tag not in dataset:
                dataset[field.tag] = {"vr": field.vr}
        datasets.append(dataset)
    return datasets


def _element(field: _Field, records: list[_Record]) -> dict | None:
    if field.constant is not None:
        return field.constant
    if field.computed is not None:
        label, convert = field.computed
        for record in records:
            if label in record.values:
                return convert(record.values[label])
        return None
    if field.exact_column:
        element = _from_column(field, records)
        if element is not None:
            return element
    for record in records:
        element = record.get(field.tag)
        if element is not None:
            return element
    return None if field.column is None else _from_column(field, records)


def _from_column(field: _Field, records: list[_Record]) -> dict | None:
    for record in records:
        value = record.values.get(field.column)  # type: ignore[arg-type]
        if value is not None and value not in field.placeholders:
            element = _column_element(field, value)
            if element is not None:
                return element
    return None


def _column_element(field: _Field, value: Any) -> dict | None:
    """A column value as a DICOM JSON element; plain strings and numbers need no converter.
    None for text that is no number in a number column (a layout keeping IS as text)."""
    plain_text = isinstance(value, str) and "\\" not in value and field.vr not in _TEXT_CONVERTED
    if plain_text or isinstance(value, int | float):
        return {"vr": field.vr, "Value": [value]}
    if field.vr in ("IS", "DS"):
        numbers = _numbers(str(value), integers=field.vr == "IS")
        return None if numbers is None else {"vr": field.vr, "Value": numbers}
    return to_dicom_json({field.tag: _dicom_text(value)}, {field.tag: field.vr})[field.tag]


def _numbers(text: str, *, integers: bool) -> list[int | float] | None:
    """IS or DS text as JSON numbers; None unless every value is one (an IS value a whole
    number): a layout keeping them as text may hold 'None' or ''."""
    numbers: list[int | float] = []
    for item in text.split("\\"):
        try:
            number = float(item)
        except ValueError:
            return None
        if not math.isfinite(number) or (integers and not number.is_integer()):
            return None
        numbers.append(int(number) if number.is_integer() else number)
    return numbers


def _dicom_text(value: Any) -> Any:
    """A column value as DICOM text (DA, TM, DT); numbers and strings as they are."""
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S") + _fraction(value.microsecond)
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, time):
        return value.strftime("%H%M%S") + _fraction(value.microsecond)
    return value


def _fraction(microsecond: int) -> str:
    return f".{microsecond:06d}" if microsecond else ""
