"""The read side of an index, as the server uses it: searches, lookups, health.

It hides the database and its layout (ours, or the companion metadata-index's, read-only), so
serving another layout or database changes nothing above it.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import NamedTuple

from sqlalchemy import Connection, Engine, Select, distinct, func, select

from ..dicom.query import SearchQuery
from .database import statement_timeout
from .layout import OURS, Layout
from .locate import LocatedRows, image_set_versions, locate
from .schema import imageset, instance, series, study
from .search import SearchPage, search


class IndexReader:
    """Searches see every datastore the index lists, or only *scope*: a metadata-index database
    may list several datastores' image sets, ours one each (docs/datastores.md). Keeping to the
    scope costs (an IN over its series): it is done only while the index lists another
    datastore, which is checked every *scope_check_s* seconds.

    The metadata-index layout's indexer commits row by row: an image set it failed to index
    can leave a study or series without instances. Once it lists instances (it may be set not
    to), studies and series without any (by its counts) are not shown: they cannot be
    retrieved."""

    def __init__(
        self,
        engine: Engine,
        layout: Layout = OURS,
        scope: str | None = None,
        *,
        scope_check_s: float = 60.0,
    ) -> None:
        self.engine = engine
        self.layout = layout
        self.scope = scope
        self.scope_check_s = scope_check_s
        self._checked: tuple[_Filters, float] | None = None

    def search(
        self,
        query: SearchQuery,
        *,
        count: bool = False,
        datasets: bool = True,
        timeout_s: float = 0,
    ) -> SearchPage:
        """One page of QIDO-RS results (see :func:`~dicomweb_proxy.index.search.search` for
        *count* and *datasets*); QueryError for keys this index cannot sort on,
        StatementTimeout when one of its queries runs longer than *timeout_s* (0: no limit)."""
        with self.engine.connect() as connection, statement_timeout(connection, timeout_s):
            filters = self._filters(connection)
            scope = self.scope if filters.other_datastores else None
            return search(
                connection,
                query,
                self.layout,
                scope,
                filters.lists_instances,
                count=count,
                datasets=datasets,
            )

    def _filters(self, connection: Connection) -> _Filters:
        if self.scope is None and self.layout.writable:
            return _Filters(False, False)
        now = time.monotonic()
        checked = self._checked
        if checked is None or now - checked[1] >= self.scope_check_s:
            checked = (self._look(connection), now)
            self._checked = checked
        return checked[0]

    def _look(self, connection: Connection) -> _Filters:
        def any_row(statement: Select) -> bool:
            return connection.execute(statement.limit(1)).first() is not None

        others = self.scope is not None and any_row(
            select(imageset.c.imageset_pkey).where(imageset.c.datastoreid != self.scope)
        )
        instances = not self.layout.writable and any_row(select(instance.c.instance_pkey))
        return _Filters(others, instances)

    def locate(
        self,
        datastore_id: str,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> tuple[LocatedRows, dict[str, int | None]]:
        """See :func:`~dicomweb_proxy.index.locate.locate`."""
        with self.engine.connect() as connection:
            return locate(connection, self.layout, datastore_id, study_uid, series_uid, sop_uid)

    def versions(self, datastore_id: str, image_set_ids: Collection[str]) -> dict[str, int | None]:
        """See :func:`~dicomweb_proxy.index.locate.image_set_versions`."""
        with self.engine.connect() as connection:
            return image_set_versions(connection, self.layout, datastore_id, image_set_ids)

    def counts(self) -> Counts:
        """How many studies, series and instances the index holds (start-up line, front page):
        row counts, or within the scope while the index lists another datastore."""
        with self.engine.connect() as connection:
            if not self._filters(connection).other_datastores:
                tables = (study, series, instance)
                statements = [select(func.count()).select_from(table) for table in tables]
            else:
                held = imageset.c.datastoreid == self.scope
                statements = [
                    select(func.count(distinct(series.c.study_pkey)))
                    .select_from(series.join(imageset))
                    .where(held),
                    select(func.count(distinct(imageset.c.series_pkey))).where(held),
                    select(func.count()).select_from(instance.join(imageset)).where(held),
                ]
            return Counts(*(connection.execute(statement).scalar_one() for statement in statements))

    def check(self) -> None:
        """Raise unless the index answers a query (health checks): one single-row indexed read."""
        with self.engine.connect() as connection:
            connection.execute(select(study.c.study_pkey).limit(1)).all()


class Counts(NamedTuple):
    studies: int
    series: int
    instances: int


class _Filters(NamedTuple):
    other_datastores: bool  # keep searches to the scope
    lists_instances: bool  # hide studies and series without instances (metadata-index)
