"""The read side of an index, as the HTTP layer uses it: searches, lookups, health.

It hides the database and its layout (ours, or the companion metadata-index's, read-only), so
serving another layout or database changes nothing above it.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from ..dicom.query import SearchQuery
from .layout import OURS, Layout
from .lookup import locate
from .schema import study
from .search import SearchPage, search


class IndexReader:
    """Searches see every datastore the index lists, or only *scope*: a metadata-index database
    may list several datastores' image sets, ours one each (docs/datastores.md)."""

    def __init__(self, engine: Engine, layout: Layout = OURS, scope: str | None = None) -> None:
        self.engine = engine
        self.layout = layout
        self.scope = scope

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of QIDO-RS results; QueryError for keys this index cannot match or sort."""
        with self.engine.connect() as connection:
            return search(connection, query, self.layout, self.scope)

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
