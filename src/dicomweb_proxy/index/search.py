"""QIDO-RS searches on the SQL index: a SearchQuery in, one page of DICOM JSON datasets out.

Portable across SQLite, PostgreSQL and MySQL/MariaDB, and index-friendly:
- every value is a bound parameter; wildcards become ``LIKE ... ESCAPE '!'``, except on SQLite,
  whose LIKE ignores ASCII case and cannot use the indexes of binary columns: GLOB there;
- person names are matched on the ``*_norm`` columns (upper-cased by the writer, the query value
  normalized the same way), so case-insensitive matching needs no function on a column;
- attributes of lower levels are subqueries on indexed foreign keys, on aliases of the lower
  tables: series attributes of a study search (``ModalitiesInStudy``, ``Modality``) an IN
  subquery, instance attributes EXISTS; a date and time pair is matched on one row;
- a list of exact values is one IN, so a list stays one node of the expression tree;
- NULLs sort as each database sorts them (first on SQLite and MySQL, last on PostgreSQL).
Returned values come from the level's ``attributes`` DICOM JSON, so they are the original text;
columns fill in what a level's JSON lacks (values that differ between instances).

The companion metadata-index layout (index/layout.py) lacks some columns: without ``*_norm``
names are folded in SQL, without ``modalitiesinstudy``/``sopclassesinstudy`` they are collected
from the page's series and instances, without ``attributes`` only columns are returned, and
attributes without a column cannot be matched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    Result,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects import mysql

from ..dicom.dicom_json import to_dicom_json
from ..dicom.query import (
    AnyOf,
    Condition,
    DateTimeRange,
    Level,
    Matcher,
    QueryError,
    Range,
    ReturnKey,
    SearchQuery,
    SingleValue,
    UidList,
    Universal,
    Wildcard,
    find_attribute,
)
from .layout import OURS, Layout
from .schema import (
    DEFAULT_ISSUER,
    NO_PATIENT_ID,
    imageset,
    instance,
    issuer,
    normalize_person_name,
    patient,
    series,
    study,
)

DatasetJSON = dict[str, dict]

#: Attributes the index can match and sort on, and the column holding each.
COLUMNS: dict[str, Column] = {
    "PatientName": patient.c.patientname,
    "PatientID": patient.c.patientid,
    "IssuerOfPatientID": issuer.c.issuerofpatientid,
    "PatientBirthDate": patient.c.patientbirthdate,
    "PatientSex": patient.c.patientsex,
    "StudyInstanceUID": study.c.studyinstanceuid,
    "AccessionNumber": study.c.accessionnumber,
    "StudyID": study.c.studyid,
    "StudyDate": study.c.studydate,
    "StudyTime": study.c.studytime,
    "StudyDescription": study.c.studydescription,
    "ReferringPhysicianName": study.c.referringphysicianname,
    "SeriesInstanceUID": series.c.seriesinstanceuid,
    "Modality": series.c.modality,
    "SeriesNumber": series.c.seriesnumber,
    "SeriesDescription": series.c.seriesdescription,
    "InstitutionName": series.c.institutionname,
    "BodyPartExamined": series.c.bodypartexamined,
    "StationName": series.c.stationname,
    "Manufacturer": series.c.manufacturer,
    "ProtocolName": series.c.protocolname,
    "Laterality": series.c.laterality,
    "SeriesDate": series.c.seriesdate,
    "SeriesTime": series.c.seriestime,
    "PerformedProcedureStepStartDate": series.c.performedprocedurestepstartdate,
    "PerformedProcedureStepStartTime": series.c.performedprocedurestepstarttime,
    "SOPInstanceUID": instance.c.sopinstanceuid,
    "SOPClassUID": instance.c.sopclassuid,
    "InstanceNumber": instance.c.instancenumber,
    "AcquisitionDate": instance.c.acquisitiondate,
    "AcquisitionTime": instance.c.acquisitiontime,
    "ContentDate": instance.c.contentdate,
    "ContentTime": instance.c.contenttime,
    "PhotometricInterpretation": instance.c.photometricinterpretation,
    "NumberOfFrames": instance.c.numberofframes,
    "Rows": instance.c.rows,
    "Columns": instance.c.columns,
    "BitsAllocated": instance.c.bitsallocated,
    "BitsStored": instance.c.bitsstored,
    "HighBit": instance.c.highbit,
    "PixelRepresentation": instance.c.pixelrepresentation,
    "ObservationDateTime": instance.c.observationtime,
    "ContentDescription": instance.c.contentdescription,
}
#: Study attributes matched against the series or instances of the study.
IN_STUDY: dict[str, Column] = {
    "ModalitiesInStudy": series.c.modality,
    "SOPClassesInStudy": instance.c.sopclassuid,
}
_NORMALIZED = {
    "PatientName": patient.c.patientname_norm,
    "ReferringPhysicianName": study.c.referringphysicianname_norm,
}
_PLACEHOLDERS = {"PatientID": NO_PATIENT_ID, "IssuerOfPatientID": DEFAULT_ISSUER}
_LEVEL_OF_TABLE = {
    issuer: Level.PATIENT,
    patient: Level.PATIENT,
    study: Level.STUDY,
    series: Level.SERIES,
    instance: Level.INSTANCE,
}
_DEFAULT_ORDER = {
    Level.STUDY: ("StudyDate", "StudyTime", "StudyInstanceUID"),
    Level.SERIES: ("SeriesNumber", "SeriesInstanceUID"),
    Level.INSTANCE: ("InstanceNumber", "SOPInstanceUID"),
}
_ESCAPE = "!"
_INTEGER_TEXT = "^ *[-+]?[0-9]+ *$"  # (SQL REGEXP)
_BINARY_COLLATION = "utf8mb4_bin"
#: What the metadata-index layout's indexer writes for attributes present but empty (str(None)).
_EMPTY_TEXT = "None"
_END = "\x01"  # a control character: PN values cannot hold one
_UTF8MB4 = mysql.CHAR(charset="utf8mb4")


@dataclass(frozen=True)
class SearchPage:
    datasets: list[DatasetJSON]
    total: int  # matches of the whole query, not only of this page


def search(
    connection: Connection,
    query: SearchQuery,
    layout: Layout = OURS,
    datastore_id: str | None = None,
    with_instances_only: bool = False,
) -> SearchPage:
    """Run ``query``: its page (limit/offset) in the query's order, and the number of matches;
    with *datastore_id*, only what that datastore holds; *with_instances_only*, only studies
    and series whose instance count is above 0. QueryError for a key the index cannot match or
    sort on."""
    if query.include_all and not layout.has(study.c.attributes):
        query = _with_every_column(query, layout)
    plan = _Plan(query, connection.dialect.name, layout)
    if datastore_id is not None:
        plan.where.append(plan.in_datastore(datastore_id))
    count = _INSTANCE_COUNT.get(query.level)
    if with_instances_only and count is not None:
        plan.where.append(count > 0)
    rows: list[dict[str, Any]] = []
    if query.limit != 0:
        rows = _dicts(connection.execute(plan.page()))
    last_page = query.limit is None or len(rows) < query.limit
    if query.limit != 0 and last_page and (rows or not query.offset):
        total = query.offset + len(rows)  # the page ends the results: no count needed
    else:
        total = connection.scalar(plan.count()) or 0
    parents = _parent_records(connection, query, rows, layout)
    if query.level == Level.STUDY:
        _collect_in_study(connection, query, layout, rows)
    elif Level.STUDY in parents:
        _collect_in_study(
            connection, query, layout, [r.values for r in parents[Level.STUDY].values()]
        )
    return SearchPage(_datasets(query, rows, parents, layout), total)


def _with_every_column(query: SearchQuery, layout: Layout) -> SearchQuery:
    """``includefield=all`` on a layout without the levels' JSON: every attribute the layout
    has a column for (or computes), at the query's level and above."""
    returned = {key.attribute: key for key in query.returned}
    for keyword in (*COLUMNS, *_COMPUTED):
        attribute = find_attribute(keyword)
        column = COLUMNS[keyword] if keyword in COLUMNS else _COMPUTED[keyword][0]
        in_study = keyword in _IN_STUDY_SOURCES  # collected when the layout lacks the column
        if (
            attribute is not None
            and attribute.level <= query.level
            and (layout.has(column) or in_study)
            and attribute not in returned
        ):
            returned[attribute] = ReturnKey(attribute, required=False)
    return dataclasses.replace(query, returned=tuple(returned.values()))


def _dicts(result: Result) -> list[dict[str, Any]]:
    """Rows as plain dicts: read per returned attribute, far faster than RowMapping."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


# --- SQL ---------------------------------------------------------------------------------------


def _label(column: Column) -> str:
    return f"{column.table.name}_{column.name}"  # type: ignore[attr-defined]


def _labelled(layout: Layout, *tables: FromClause) -> list[ColumnElement]:
    """Every column of ``tables`` the layout has, under its _label; the patient's JSON is in
    the study's."""
    return [
        column.label(_label(column))  # type: ignore[arg-type]
        for table in tables
        for column in table.c
        if layout.has(column) and (table is not patient or column.name != "attributes")
    ]


def _columns(layout: Layout) -> dict[str, Column]:
    return {keyword: column for keyword, column in COLUMNS.items() if layout.has(column)}


def _folded_name(column: ColumnElement) -> ColumnElement:
    """A PN column folded in SQL as normalize_person_name folds, for layouts without a
    ``*_norm`` column: '^' as a space, runs of up to eight spaces as one, none around '=',
    empty trailing groups dropped, trimmed, upper case. (Plain REPLACE and TRIM: MySQL 5.7 has
    no REGEXP_REPLACE.)"""
    folded = func.replace(column, "^", " ")
    for _ in range(3):
        folded = func.replace(folded, "  ", " ")
    for spaced in (" =", "= "):
        folded = func.replace(folded, spaced, "=")
    # Trailing '=' (at most two: three groups) are those before an end mark no PN can hold.
    folded = func.concat(func.trim(folded), _END)
    for _ in range(2):
        folded = func.replace(folded, "=" + _END, _END)
    return func.upper(func.trim(func.replace(folded, _END, "")))


class _Plan:
    """The FROM, WHERE and ORDER BY of a query, built (and checked) before anything runs."""

    def __init__(self, query: SearchQuery, dialect: str, layout: Layout) -> None:
        self.query = query
        self.dialect = dialect
        self.layout = layout
        self.columns = _columns(layout)
        self.exact_text = not layout.binary_text and dialect in ("mysql", "mariadb")
        self.joined: set[Level] = set()  # levels the WHERE clause needs joined
        self.filters_issuer = False
        self.where = [
            self._condition(condition)
            for condition in query.conditions
            if not isinstance(condition.matcher, Universal)
        ]
        self.order = self._order()

    def page(self) -> Select:
        level = self.query.level
        tables = {Level.STUDY: (study, patient), Level.SERIES: (series,)}.get(level, (instance,))
        columns = _labelled(self.layout, *tables)
        if level > Level.STUDY:
            columns.append(study.c.studyinstanceuid.label(_label(study.c.studyinstanceuid)))
        if level > Level.SERIES:
            columns += [
                series.c.seriesinstanceuid.label(_label(series.c.seriesinstanceuid)),
                series.c.study_pkey.label(_label(series.c.study_pkey)),
            ]
        sorted_by = {_LEVEL_OF_TABLE[c.table] for c in self.sort_columns}  # type: ignore[index]
        with_patient = level == Level.STUDY or Level.PATIENT in sorted_by | self.joined
        with_issuer = issuer in self.sort_tables or self.filters_issuer
        source = self._joins(Level.STUDY, with_patient, with_issuer)
        statement = select(*columns).select_from(source).where(*self.where)
        return statement.order_by(*self.order).limit(self.query.limit).offset(self.query.offset)

    def in_datastore(self, datastore_id: str) -> ColumnElement[bool]:
        """Only entities with an image set in the datastore: an index may list several."""
        held = imageset.c.datastoreid == datastore_id
        if self.query.level == Level.INSTANCE:
            return instance.c.imageset_pkey.in_(select(imageset.c.imageset_pkey).where(held))
        series_held = select(imageset.c.series_pkey).where(held)
        if self.query.level == Level.SERIES:
            return series.c.series_pkey.in_(series_held)
        inner = series.alias()
        return study.c.study_pkey.in_(
            select(inner.c.study_pkey).where(inner.c.series_pkey.in_(series_held))
        )

    def count(self) -> Select:
        top = min(self.joined, default=self.query.level)
        source = self._joins(top, Level.PATIENT in self.joined, self.filters_issuer)
        return select(func.count()).select_from(source).where(*self.where)

    def _joins(
        self, top: Level, with_patient: bool = False, with_issuer: bool = False
    ) -> FromClause:
        """The query level's table joined with those above it, up to ``top``."""
        level = self.query.level
        source: FromClause = _OWN_TABLE[level]
        if level > Level.SERIES and top < Level.INSTANCE:
            source = source.join(series, series.c.series_pkey == instance.c.series_pkey)
        if level > Level.STUDY and top < Level.SERIES:
            source = source.join(study, study.c.study_pkey == series.c.study_pkey)
        if with_patient or with_issuer:
            source = source.join(patient, patient.c.patient_pkey == study.c.patient_pkey)
        if with_issuer:
            source = source.join(issuer, issuer.c.issuer_pkey == patient.c.issuer_pkey)
        return source

    def _condition(self, condition: Condition) -> ColumnElement[bool]:
        """One condition. Lower levels are EXISTS subqueries; patient attributes an IN
        subquery on study.patient_pkey, so a selective name drives the search from its index."""
        keyword = condition.attribute.keyword
        if keyword in IN_STUDY and self.layout.has(IN_STUDY[keyword]):
            self.joined.add(Level.STUDY)
            return _exists(Level.STUDY, IN_STUDY[keyword], self._matcher(condition))
        column = self.columns.get(keyword)
        if column is None:
            raise QueryError(
                keyword or condition.attribute.tag, "not supported as a matching key (see docs)"
            )
        clause = self._matcher(condition)
        level = _LEVEL_OF_TABLE[column.table]  # type: ignore[index]
        if level > self.query.level:
            return _exists(self.query.level, column, clause)
        if level == Level.PATIENT and self.dialect == "sqlite":
            # SQLite would walk the studies in page order and test each one's patient: an
            # IN subquery makes it find the (usually few) patients first.
            self.joined.add(Level.STUDY)
            patients = select(patient.c.patient_pkey).where(clause(column))
            if column.table is issuer:
                patients = patients.join_from(patient, issuer)
            return study.c.patient_pkey.in_(patients)
        self.joined.add(level)
        self.filters_issuer |= column.table is issuer
        return clause(column)

    def _matcher(self, condition: Condition) -> Callable[[ColumnElement], ColumnElement[bool]]:
        """The condition as a function of the column it applies to (EXISTS subqueries use
        aliases of the tables)."""
        clause = self._column_matcher(condition)
        attribute = condition.attribute
        column = IN_STUDY.get(attribute.keyword, COLUMNS.get(attribute.keyword))
        if (
            self.layout.writable
            or column is None
            or not isinstance(column.type, String)
            or attribute.vr == "UI"  # digits and dots: any collation compares them exactly
        ):
            return clause
        if not self.exact_text:
            return lambda c: and_(clause(c), c != _EMPTY_TEXT)
        # A case- and accent-insensitive collation (a MySQL database's default) finds 'Muller'
        # for 'Müller': the column's index finds the candidates, a binary collation decides.
        # Its indexer's 'None' (an empty value) matches nothing.
        if self.layout.charset(column) in (None, "utf8mb4"):
            return lambda c: and_(clause(c), clause(c.collate(_BINARY_COLLATION)), c != _EMPTY_TEXT)
        # Another character set (latin1, utf8mb3) cannot even compare with values it cannot
        # hold ('山田'): the column is converted, its index unused.
        return lambda c: and_(
            clause(cast(c, _UTF8MB4).collate(_BINARY_COLLATION)), c != _EMPTY_TEXT
        )

    def _column_matcher(
        self, condition: Condition
    ) -> Callable[[ColumnElement], ColumnElement[bool]]:
        keyword = condition.attribute.keyword
        matcher = condition.matcher
        if keyword in _NORMALIZED:
            norm = _NORMALIZED[keyword]
            if not self.layout.has(norm):
                return lambda column: self._person_name(_folded_name(column), matcher, in_sql=True)
            return lambda column: self._person_name(_sibling(column, norm.name), matcher)
        if isinstance(matcher, DateTimeRange):
            times = self.columns.get(matcher.time.keyword)
            if times is None:
                raise QueryError(matcher.time.keyword, "not supported as a matching key")
            # The time of the same row: of the alias when in an EXISTS/IN subquery.
            return lambda column: _date_time_range(column, _sibling(column, times.name), matcher)
        placeholder = _PLACEHOLDERS.get(keyword)
        if placeholder is not None:  # recorded for "unknown", which matches no value
            return lambda column: and_(self._match(column, matcher), column != placeholder)
        return lambda column: self._match_number_or_value(column, matcher)

    def _match_number_or_value(self, column: ColumnElement, matcher: Matcher) -> ColumnElement:
        """Integers kept as text by the layout (metadata-index: seriesnumber) match as numbers,
        and only text that is one ('None' or '' is not 0)."""
        if self.layout.holds_text_number(column):
            is_integer = type_coerce(column, String).regexp_match(_INTEGER_TEXT)
            return and_(is_integer, self._match(cast(column, Integer), matcher))
        return self._match(column, matcher)

    def _numeric(self, column: ColumnElement) -> ColumnElement:
        """Integers kept as text by the layout, as integers: they sort as numbers."""
        if self.layout.holds_text_number(column):
            return cast(column, Integer)
        return column

    def _match(self, column: ColumnElement, matcher: Matcher) -> ColumnElement[bool]:
        if isinstance(matcher, SingleValue):
            return column == matcher.value
        if isinstance(matcher, UidList):
            return column.in_(matcher.uids)
        if isinstance(matcher, Wildcard):
            return self._pattern(column, matcher.pattern)
        if isinstance(matcher, Range):
            bounds = []
            if matcher.low is not None:
                bounds.append(column >= matcher.low)
            if matcher.high is not None:
                bounds.append(column <= matcher.high)
            return and_(*bounds)
        if isinstance(matcher, AnyOf):
            # Exact values as one IN: a list of values stays one node of the expression tree
            # (SQLite refuses trees deeper than 1000).
            exact = [one.value for one in matcher.matchers if isinstance(one, SingleValue)]
            others = [one for one in matcher.matchers if not isinstance(one, SingleValue)]
            return _any(column, exact, [self._match(column, one) for one in others])
        raise AssertionError(matcher)

    def _person_name(
        self, column: ColumnElement, matcher: Matcher, *, in_sql: bool = False
    ) -> ColumnElement[bool]:
        """PN matching ignores case and '^'/space differences; without '=' in the value it
        matches any component group (alphabetic, ideographic, phonetic). Fuzzy matching finds
        the value at the start of any name component. A column folded *in_sql* is compared with
        values the database upper-cases too (its case rules are not Python's: 'ß')."""
        fold = func.upper if in_sql else _unchanged
        values = matcher.matchers if isinstance(matcher, AnyOf) else (matcher,)
        patterns: dict[str, None] = {}  # in order, without repetitions
        for one in values:
            if not isinstance(one, SingleValue | Wildcard):
                raise AssertionError(one)
            text = one.value if isinstance(one, SingleValue) else one.pattern
            patterns.update(dict.fromkeys(self._name_patterns(str(text), upper=not in_sql)))
        exact = [fold(pattern) for pattern in patterns if not _is_pattern(pattern)]
        wildcards = [
            self._pattern(column, pattern, fold) for pattern in patterns if _is_pattern(pattern)
        ]
        return _any(column, exact, wildcards)

    def _name_patterns(self, text: str, *, upper: bool) -> list[str]:
        value = normalize_person_name(text, upper=upper) or ""
        if self.query.fuzzy:
            return [f"{value}*", f"* {value}*", f"*={value}*"]
        if "=" in value:
            return [value]
        if value.endswith("*"):
            return [value, f"*={value}"]
        return [value, f"{value}=*", f"*={value}", f"*={value}=*"]

    def _pattern(
        self, column: ColumnElement, pattern: str, fold: Callable[[str], Any] | None = None
    ) -> ColumnElement[bool]:
        fold = fold or _unchanged
        if not _is_pattern(pattern):
            return column == fold(pattern)
        if self.dialect == "sqlite":
            return column.op("GLOB")(fold(pattern.replace("[", "[[]")))
        like = pattern.replace(_ESCAPE, _ESCAPE * 2)
        for special in "%_":
            like = like.replace(special, _ESCAPE + special)
        return column.like(fold(like.replace("*", "%").replace("?", "_")), escape=_ESCAPE)

    def _order(self) -> list[ColumnElement]:
        level = self.query.level
        keys = [(key.attribute.keyword, key.descending) for key in self.query.orderby]
        keys += [(keyword, False) for keyword in _DEFAULT_ORDER[level]]
        order, seen = [], set()
        self.sort_columns: list[Column] = []
        for keyword, descending in keys:
            column = _NORMALIZED.get(keyword)
            if column is None or not self.layout.has(column):
                column = self.columns.get(keyword)
            if column is None or _LEVEL_OF_TABLE[column.table] > level:  # type: ignore[index]
                raise QueryError(
                    "orderby", f"cannot sort {level.name.lower()} results by {keyword}"
                )
            if keyword not in seen:
                seen.add(keyword)
                self.sort_columns.append(column)
                order.append(self._sorted(self._numeric(column), descending))
        self.sort_tables = {column.table for column in self.sort_columns}
        return order

    @staticmethod
    def _sorted(column: ColumnElement, descending: bool) -> ColumnElement:
        # Each database's own NULL placement (first on SQLite and MySQL, last on PostgreSQL):
        # what its plain indexes serve.
        return column.desc() if descending else column.asc()


def _unchanged(value: str) -> str:
    return value


def _is_pattern(value: str) -> bool:
    return "*" in value or "?" in value


def _any(
    column: ColumnElement, exact: list[Any], clauses: list[ColumnElement[bool]]
) -> ColumnElement[bool]:
    """``column`` equal to one of ``exact`` (one IN) or satisfying one of ``clauses``."""
    if len(exact) > 1:
        clauses.insert(0, column.in_(exact))
    elif exact:
        clauses.insert(0, column == exact[0])
    return or_(*clauses)


def _sibling(column: ColumnElement, name: str) -> ColumnElement:
    """Column ``name`` of ``column``'s table: of the same alias, when ``column`` is an alias's."""
    return column.table.c[name]  # type: ignore[attr-defined]


def _exists(
    anchor: Level, column: Column, clause: Callable[[ColumnElement], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """Whether a series or instance below the ``anchor`` row matches ``clause``.

    Matching series are few enough to collect first, from the index on the matched column; the
    studies are then tested against that set. (``+ 0`` keeps SQLite from looking the studies up
    by that set, which would sort them all, rather than reading them in page order.) Instances
    are many: EXISTS tests each row and stops at the first match."""
    if column.table is series:
        inner = series.alias()
        matching = select(inner.c.study_pkey).where(clause(inner.c[column.name]))
        return (study.c.study_pkey + 0).in_(matching)
    inner = instance.alias()
    if anchor == Level.SERIES:
        return exists().where(
            inner.c.series_pkey == series.c.series_pkey, clause(inner.c[column.name])
        )
    parent = series.alias()
    return exists().where(
        inner.c.series_pkey == parent.c.series_pkey,
        parent.c.study_pkey == study.c.study_pkey,
        clause(inner.c[column.name]),
    )


def _date_time_range(
    dates: ColumnElement, times: ColumnElement, matcher: DateTimeRange
) -> ColumnElement[bool]:
    """On the first and last day of the range the time counts (an unknown time matches)."""
    bounds = []
    if matcher.low is not None:
        day, moment = matcher.low.date(), matcher.low.time()
        bounds.append(or_(dates > day, and_(dates == day, or_(times >= moment, times.is_(None)))))
    if matcher.high is not None:
        day, moment = matcher.high.date(), matcher.high.time()
        bounds.append(or_(dates < day, and_(dates == day, or_(times <= moment, times.is_(None)))))
    return and_(*bounds)


# --- results -----------------------------------------------------------------------------------


def _counted(value: int | None) -> dict | None:
    return None if value is None else {"vr": "IS", "Value": [value]}


def _listed(vr: str) -> Callable[[str | None], dict | None]:
    # Left out when unknown: viewers (OHIF) read an empty ModalitiesInStudy as an error.
    return lambda value: {"vr": vr, "Value": value.split("\\")} if value else None


#: Attributes the index computes: (column, value as a DICOM JSON element).
_COMPUTED: dict[str, tuple[Column, Callable[[Any], dict | None]]] = {
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
    """One row of a level: its column values (keyed by _label) and its attribute JSON, parsed
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


_OWN_TABLE = {Level.STUDY: study, Level.SERIES: series, Level.INSTANCE: instance}
_INSTANCE_COUNT = {
    Level.STUDY: study.c.numberofstudyrelatedinstances,
    Level.SERIES: series.c.numberofseriesrelatedinstances,
}
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
    Level.STUDY: _label(series.c.study_pkey),
    Level.SERIES: _label(instance.c.series_pkey),
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
        (Level.STUDY, select(*_labelled(layout, study, patient)).join_from(study, patient)),
        (Level.SERIES, select(*_labelled(layout, series))),
    ):
        if level in levels and level < query.level and rows:
            table = _OWN_TABLE[level]
            pkey = table.c[f"{table.name}_pkey"]
            wanted = sorted({row[_PARENT_KEY[level]] for row in rows})
            found = _dicts(connection.execute(statement.where(pkey.in_(wanted))))
            records[level] = {row[_label(pkey)]: _Record(row, table) for row in found}
    return records


#: What the layouts without a column for them collect ModalitiesInStudy and SOPClassesInStudy
#: from: (the column they stand in for, study_pkey and value of each series or instance).
_IN_STUDY_SOURCES: dict[str, tuple[Column, Select]] = {
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
    pkey = _label(study.c.study_pkey)
    wanted = sorted({row[pkey] for row in studies})
    for keyword, (column, source) in _IN_STUDY_SOURCES.items():
        if keyword not in returned or layout.has(column) or not wanted:
            continue
        found: dict[int, set[str]] = {}
        for study_pkey, value in connection.execute(source.where(series.c.study_pkey.in_(wanted))):
            if value and (layout.writable or value != _EMPTY_TEXT):
                found.setdefault(study_pkey, set()).add(value)
        for row in studies:
            row[_label(column)] = "\\".join(sorted(found.get(row[pkey], ())))


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
    empty = frozenset() if layout.writable else frozenset({_EMPTY_TEXT})
    fields = []
    for key in query.returned:
        attribute, keyword = key.attribute, key.attribute.keyword
        computed = _COMPUTED.get(keyword)
        column = COLUMNS.get(keyword)
        fields.append(
            _Field(
                attribute.tag,
                attribute.vr,
                key.required,
                sum(1 for level in levels if level >= attribute.level),
                _ONLINE if keyword == "InstanceAvailability" else None,
                (_label(computed[0]), computed[1]) if computed else None,
                _label(column) if column is not None else None,
                column is not None and attribute.vr in _EXACT_VRS,
                empty | {_PLACEHOLDERS[keyword]} if keyword in _PLACEHOLDERS else empty,
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
    own_table = _OWN_TABLE[query.level]
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
