"""QIDO-RS searches on the SQL index: a SearchQuery in, one page of DICOM JSON datasets out.

The page query is built here: FROM (the level's table joined with those above it that the
WHERE or ORDER BY clause needs), WHERE (index/matching.py), ORDER BY, LIMIT and OFFSET; its rows
become datasets in index/results.py. Portable across SQLite, PostgreSQL and MySQL/MariaDB.
NULLs sort as each database sorts them (first on SQLite and MySQL, last on PostgreSQL).

No count per page: one row more than the page is read to learn whether more follow, and the
number of matches is known without a count whenever the page ends the results. Otherwise it is
counted only when asked (a COUNT over every match costs as much as the search itself).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Column, ColumnElement, Connection, FromClause, Select, func, select

from ..dicom.query import Level, QueryError, ReturnKey, SearchQuery, find_attribute
from .layout import OURS, Layout
from .matching import COLUMNS, LEVEL_OF_TABLE, NORMALIZED, Conditions, as_number
from .results import (
    COMPUTED,
    IN_STUDY_SOURCES,
    OWN_TABLE,
    DatasetJSON,
    dicts,
    label,
    labelled,
    page_datasets,
)
from .schema import imageset, instance, issuer, patient, series, study

_DEFAULT_ORDER = {
    Level.STUDY: ("StudyDate", "StudyTime", "StudyInstanceUID"),
    Level.SERIES: ("SeriesNumber", "SeriesInstanceUID"),
    Level.INSTANCE: ("InstanceNumber", "SOPInstanceUID"),
}
_INSTANCE_COUNT = {
    Level.STUDY: study.c.numberofstudyrelatedinstances,
    Level.SERIES: series.c.numberofseriesrelatedinstances,
}


@dataclass(frozen=True)
class SearchPage:
    datasets: list[DatasetJSON]
    #: Matches of the whole query, not only of this page; None when unknown (not counted).
    total: int | None
    more: bool  # matches follow this page
    #: Query parameters the search ignored: the query's own (in request order), then keys the
    #: index has no column for.
    unsupported: tuple[str, ...] = ()


def search(
    connection: Connection,
    query: SearchQuery,
    layout: Layout = OURS,
    datastore_id: str | None = None,
    with_instances_only: bool = False,
    *,
    count: bool = False,
    datasets: bool = True,
) -> SearchPage:
    """Run ``query``: its page (limit/offset) in the query's order; with *datastore_id*, only
    what that datastore holds; *with_instances_only*, only studies and series whose instance
    count is above 0. The total is that of a page that ends the results, else counted only
    with *count*. Without *datasets* only whether (and how many) rows match is read, no
    values: a HEAD request's headers. QueryError for a key the index cannot sort on."""
    if query.include_all and not layout.has(study.c.attributes):
        query = _with_every_column(query, layout)
    plan = _Plan(query, connection.dialect.name, layout)
    if datastore_id is not None:
        plan.where.append(plan.in_datastore(datastore_id))
    instances = _INSTANCE_COUNT.get(query.level)
    if with_instances_only and instances is not None:
        plan.where.append(instances > 0)
    limit = query.limit
    fetch = None if limit is None else limit + 1  # one more: whether more follow
    statement = plan.page(fetch) if datasets and limit != 0 else plan.probe(fetch)
    rows = dicts(connection.execute(statement))
    more = limit is not None and len(rows) > limit
    rows = rows[:limit]
    total: int | None = None
    if not more and (rows or not query.offset):
        total = query.offset + len(rows)  # the page ends the results: no count needed
    elif count:
        total = connection.scalar(plan.count()) or 0
    found = page_datasets(connection, query, rows, layout) if datasets else []
    unsupported = tuple(dict.fromkeys((*query.unsupported, *plan.conditions.unsupported)))
    return SearchPage(found, total, more, unsupported)


def _with_every_column(query: SearchQuery, layout: Layout) -> SearchQuery:
    """``includefield=all`` on a layout without the levels' JSON: every attribute the layout
    has a column for (or computes), at the query's level and above."""
    returned = {key.attribute: key for key in query.returned}
    for keyword in (*COLUMNS, *COMPUTED):
        attribute = find_attribute(keyword)
        column = COLUMNS[keyword] if keyword in COLUMNS else COMPUTED[keyword][0]
        in_study = keyword in IN_STUDY_SOURCES  # collected when the layout lacks the column
        if (
            attribute is not None
            and attribute.level <= query.level
            and (layout.has(column) or in_study)
            and attribute not in returned
        ):
            returned[attribute] = ReturnKey(attribute, required=False)
    return dataclasses.replace(query, returned=tuple(returned.values()))


class _Plan:
    """The FROM, WHERE and ORDER BY of a query, built (and checked) before anything runs."""

    def __init__(self, query: SearchQuery, dialect: str, layout: Layout) -> None:
        self.query = query
        self.layout = layout
        self.conditions = Conditions(query, dialect, layout)
        self.where = list(self.conditions.where)
        self.order = self._order()

    def page(self, limit: int | None) -> Select:
        """The page's rows, in order, with the columns the results are read from."""
        level = self.query.level
        tables = {Level.STUDY: (study, patient), Level.SERIES: (series,)}.get(level, (instance,))
        columns = labelled(self.layout, *tables)
        if level > Level.STUDY:
            columns.append(study.c.studyinstanceuid.label(label(study.c.studyinstanceuid)))
        if level > Level.SERIES:
            columns += [
                series.c.seriesinstanceuid.label(label(series.c.seriesinstanceuid)),
                series.c.study_pkey.label(label(series.c.study_pkey)),
            ]
        joined = self.conditions.joined
        sorted_by = {LEVEL_OF_TABLE[c.table] for c in self.sort_columns}  # type: ignore[index]
        with_patient = level == Level.STUDY or Level.PATIENT in sorted_by | joined
        with_issuer = issuer in self.sort_tables or self.conditions.filters_issuer
        source = self._joins(Level.STUDY, with_patient, with_issuer)
        statement = select(*columns).select_from(source).where(*self.where)
        return statement.order_by(*self.order).limit(limit).offset(self.query.offset)

    def probe(self, limit: int | None) -> Select:
        """As many rows as the page would have, keys only and unordered (the number of rows
        past an offset does not depend on their order): what the headers need."""
        table = OWN_TABLE[self.query.level]
        key = table.c[f"{table.name}_pkey"]
        statement = select(key).select_from(self._filtered()).where(*self.where)
        return statement.limit(limit).offset(self.query.offset)

    def count(self) -> Select:
        return select(func.count()).select_from(self._filtered()).where(*self.where)

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

    def _filtered(self) -> FromClause:
        """The tables the WHERE clause needs, no more."""
        joined = self.conditions.joined
        top = min(joined, default=self.query.level)
        return self._joins(top, Level.PATIENT in joined, self.conditions.filters_issuer)

    def _joins(
        self, top: Level, with_patient: bool = False, with_issuer: bool = False
    ) -> FromClause:
        """The query level's table joined with those above it, up to ``top``."""
        level = self.query.level
        source: FromClause = OWN_TABLE[level]
        if level > Level.SERIES and top < Level.INSTANCE:
            source = source.join(series, series.c.series_pkey == instance.c.series_pkey)
        if level > Level.STUDY and top < Level.SERIES:
            source = source.join(study, study.c.study_pkey == series.c.study_pkey)
        if with_patient or with_issuer:
            source = source.join(patient, patient.c.patient_pkey == study.c.patient_pkey)
        if with_issuer:
            source = source.join(issuer, issuer.c.issuer_pkey == patient.c.issuer_pkey)
        return source

    def _order(self) -> list[ColumnElement]:
        level = self.query.level
        keys = [(key.attribute.keyword, key.descending) for key in self.query.orderby]
        keys += [(keyword, False) for keyword in _DEFAULT_ORDER[level]]
        order, seen = [], set()
        self.sort_columns: list[Column] = []
        for keyword, descending in keys:
            column = NORMALIZED.get(keyword)
            if column is None or not self.layout.has(column):
                column = self.conditions.columns.get(keyword)
            if column is None or LEVEL_OF_TABLE[column.table] > level:  # type: ignore[index]
                raise QueryError(
                    "orderby", f"cannot sort {level.name.lower()} results by {keyword}"
                )
            if keyword not in seen:
                seen.add(keyword)
                self.sort_columns.append(column)
                order.append(_sorted(as_number(self.layout, column), descending))
        self.sort_tables = {column.table for column in self.sort_columns}
        return order


def _sorted(column: ColumnElement, descending: bool) -> ColumnElement:
    # Each database's own NULL placement (first on SQLite and MySQL, last on PostgreSQL):
    # what its plain indexes serve.
    return column.desc() if descending else column.asc()
