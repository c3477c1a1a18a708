"""Build the store and the index a deployment is configured for.

The one place that knows concrete store and database classes: the HTTP layer, the importer and
the command line receive what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from .config import Settings
from .index.database import create_index_engine, upgrade_schema
from .stores.base import ImageSetStore
from .stores.local import LocalStore


@dataclass
class Services:
    settings: Settings
    store: ImageSetStore
    index: Engine

    def close(self) -> None:
        self.index.dispose()


def open_services(settings: Settings, *, upgrade: bool = True) -> Services:
    """Open the configured store and index; create or upgrade the index schema if asked."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_index_engine(settings.index_url)
    if upgrade:
        upgrade_schema(engine)
    store = LocalStore(settings.store_root, settings.datastore_id, durable=True)
    return Services(settings=settings, store=store, index=engine)
