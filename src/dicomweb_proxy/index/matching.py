"""The WHERE clause of a QIDO-RS search: each condition of a SearchQuery as SQL (PS3.4 C.2.2.2).

Portable across SQLite, PostgreSQL and MySQL/MariaDB, and index-friendly:
- every value is a bound parameter; wildcards become ``LIKE ... ESCAPE '!'``, except on SQLite,
  whose LIKE ignores ASCII case and cannot use the indexes of binary columns: GLOB there;
- person names are matched on the ``*_norm`` columns (upper-cased by the writer, the query value
  normalized the same way), so case-insensitive matching needs no function on a column;
- attributes of lower levels are subqueries on indexed foreign keys, on aliases of the lower
  tables: series attributes of a study search (``ModalitiesInStudy``, ``Modality``) an IN
  subquery, instance attributes EXISTS; a date and time pair is matched on one row;
- a list of exact values is one IN, so a list stays one node of the expression tree.

The companion metadata-index layout (index/layout.py) lacks some columns: without ``*_norm``
names are folded in SQL; attributes without a column cannot be matched, and are left out of the
WHERE clause (listed in ``Conditions.unsupported``, for the answer's Warning).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
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

from ..dicom.query import (
    AnyOf,
    Condition,
    DateTimeRange,
    Level,
    Matcher,
    Range,
    SearchQuery,
    SingleValue,
    UidList,
    Universal,
    Wildcard,
)
from .layout import Layout
from .schema import (
    DEFAULT_ISSUER,
    NO_PATIENT_ID,
    instance,
    issuer,
    normalize_person_name,
    patient,
    series,
    study,
)

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
#: Person names as the writer normalized them, for matching and sorting.
NORMALIZED = {
    "PatientName": patient.c.patientname_norm,
    "ReferringPhysicianName": study.c.referringphysicianname_norm,
}
#: Column values the writer records for "unknown", which no value matches.
PLACEHOLDERS = {"PatientID": NO_PATIENT_ID, "IssuerOfPatientID": DEFAULT_ISSUER}
LEVEL_OF_TABLE = {
    issuer: Level.PATIENT,
    patient: Level.PATIENT,
    study: Level.STUDY,
    series: Level.SERIES,
    instance: Level.INSTANCE,
}
#: What the metadata-index layout's indexer writes for attributes present but empty (str(None)).
EMPTY_TEXT = "None"
_ESCAPE = "!"
_INTEGER_TEXT = "^ *[-+]?[0-9]+ *$"  # (SQL REGEXP)
_BINARY_COLLATION = "utf8mb4_bin"
_END = "\x01"  # a control character: PN values cannot hold one
_UTF8MB4 = mysql.CHAR(charset="utf8mb4")


def layout_columns(layout: Layout) -> dict[str, Column]:
    """The COLUMNS the layout has."""
    return {keyword: column for keyword, column in COLUMNS.items() if layout.has(column)}


def as_number(layout: Layout, column: ColumnElement) -> ColumnElement:
    """Integers kept as text by the layout, as integers: they match and sort as numbers."""
    if layout.holds_text_number(column):
        return cast(column, Integer)
    return column


class Conditions:
    """The WHERE clauses of a query's conditions, and what they need joined. Built before
    anything runs: what the layout cannot match is left out and named in ``unsupported``."""

    def __init__(self, query: SearchQuery, dialect: str, layout: Layout) -> None:
        self.query = query
        self.dialect = dialect
        self.layout = layout
        self.columns = layout_columns(layout)
        self.exact_text = not layout.binary_text and dialect in ("mysql", "mariadb")
        self.joined: set[Level] = set()  # levels the WHERE clause needs joined
        self.filters_issuer = False
        self.unsupported: list[str] = []  # the query parameters left out
        self.where: list[ColumnElement[bool]] = []
        for condition in query.conditions:
            if isinstance(condition.matcher, Universal):
                continue
            clause = self._condition(condition)
            if clause is None:
                self.unsupported += condition.parameters
            else:
                self.where.append(clause)

    def _condition(self, condition: Condition) -> ColumnElement[bool] | None:
        """One condition, None if the layout has no column for it. Lower levels are EXISTS
        subqueries; patient attributes an IN subquery on study.patient_pkey, so a selective
        name drives the search from its index."""
        keyword = condition.attribute.keyword
        if keyword in IN_STUDY and self.layout.has(IN_STUDY[keyword]):
            self.joined.add(Level.STUDY)
            return _exists(Level.STUDY, IN_STUDY[keyword], self._matcher(condition))
        column = self.columns.get(keyword)
        matcher = condition.matcher
        if column is None or (
            isinstance(matcher, DateTimeRange) and matcher.time.keyword not in self.columns
        ):
            return None
        clause = self._matcher(condition)
        level = LEVEL_OF_TABLE[column.table]  # type: ignore[index]
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
            return lambda c: and_(clause(c), c != EMPTY_TEXT)
        # A case- and accent-insensitive collation (a MySQL database's default) finds 'Muller'
        # for 'Müller': the column's index finds the candidates, a binary collation decides.
        # Its indexer's 'None' (an empty value) matches nothing.
        if self.layout.charset(column) in (None, "utf8mb4"):
            return lambda c: and_(clause(c), clause(c.collate(_BINARY_COLLATION)), c != EMPTY_TEXT)
        # Another character set (latin1, utf8mb3) cannot even compare with values it cannot
        # hold ('山田'): the column is converted, its index unused.
        return lambda c: and_(clause(cast(c, _UTF8MB4).collate(_BINARY_COLLATION)), c != EMPTY_TEXT)

    def _column_matcher(
        self, condition: Condition
    ) -> Callable[[ColumnElement], ColumnElement[bool]]:
        keyword = condition.attribute.keyword
        matcher = condition.matcher
        if keyword in NORMALIZED:
            norm = NORMALIZED[keyword]
            if not self.layout.has(norm):
                return lambda column: self._person_name(_folded_name(column), matcher, in_sql=True)
            return lambda column: self._person_name(_sibling(column, norm.name), matcher)
        if isinstance(matcher, DateTimeRange):
            times = self.columns[matcher.time.keyword]
            # The time of the same row: of the alias when in an EXISTS/IN subquery.
            return lambda column: _date_time_range(column, _sibling(column, times.name), matcher)
        placeholder = PLACEHOLDERS.get(keyword)
        if placeholder is not None:  # recorded for "unknown", which matches no value
            return lambda column: and_(self._match(column, matcher), column != placeholder)
        return lambda column: self._match_number_or_value(column, matcher)

    def _match_number_or_value(self, column: ColumnElement, matcher: Matcher) -> ColumnElement:
        """Integers kept as text by the layout (metadata-index: seriesnumber) match as numbers,
        and only text that is one ('None' or '' is not 0)."""
        if self.layout.holds_text_number(column):
            is_integer = type_coerce(column, String).regexp_match(_INTEGER_TEXT)
            return and_(is_integer, self._match(as_number(self.layout, column), matcher))
        return self._match(column, matcher)

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
