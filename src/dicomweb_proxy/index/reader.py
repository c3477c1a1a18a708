"""The read side of an index, as the HTTP layer uses it: searches, lookups, health.

It hides the database and its layout (ours, or the companion metadata-index's, read-only), so
serving another layout or database changes nothing above it.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, Engine, select

from ..dicom.query import SearchQuery
from .layout import OURS, Layout
from .lookup import locate
from .schema import imageset, study
from .search import SearchPage, search


class IndexReader:
    """Searches see every datastore the index lists, or only *scope*: a metadata-index database
    may list several datastores' image sets, ours one each (docs/datastores.md). Keeping to the
    scope costs (an IN over its series): it is done only while the index lists another
    datastore, which is checked every *scope_check_s* seconds."""

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
        self._others_checked: tuple[bool, float] | None = None  # (others listed, when)

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of QIDO-RS results; QueryError for keys this index cannot match or sort."""
        with self.engine.connect() as connection:
            scope = self.scope if self._lists_other_datastores(connection) else None
            return search(connection, query, self.layout, scope)

    def _lists_other_datastores(self, connection: Connection) -> bool:
        if self.scope is None:
            return False
        now = time.monotonic()
        checked = self._others_checked
        if checked is None or now - checked[1] >= self.scope_check_s:
            other = select(imageset.c.datastoreid).where(imageset.c.datastoreid != self.scope)
            checked = (connection.execute(other.limit(1)).first() is not None, now)
            self._others_checked = checked
        return checked[0]

    def locate(
        self,
        datastore_id: str,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> tuple[list[tuple[str, str, str]], dict[str, int | None]]:
        """See :func:`~dicomweb_proxy.index.lookup.locate`."""
        with self.engine.connect() as connection:
            return locate(connection, self.layout, datastore_id, study_uid, series_uid, sop_uid)

    def check(self) -> None:
        """Raise unless the index answers a query (health checks): one single-row indexed read."""
        with self.engine.connect() as connection:
            connection.execute(select(study.c.study_pkey).limit(1)).all()
