"""Build the store and the index a deployment is configured for.

The one place that knows concrete store and database classes: the HTTP layer, the importer and
the command line receive what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from .config import Settings
from .db_secret import index_url
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


def open_services(
    settings: Settings, *, upgrade: bool = True, cache_frames: bool = True
) -> Services:
    """Open the configured store and index; create or upgrade the index schema if asked.
    Without *cache_frames* (index maintenance) an AHI store has no frame cache nor prefetch."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_index_engine(index_url(settings))
    if upgrade:
        upgrade_schema(engine)
    store = open_store(settings, cache_frames=cache_frames)
    return Services(settings=settings, store=store, index=engine)


def open_store(settings: Settings, *, cache_frames: bool = True) -> ImageSetStore:
    if settings.store == "ahi":
        from .stores.ahi import AhiStore, create_client
        from .stores.cached import CachedStore

        client = create_client(settings.aws_region, settings.ahi_endpoint_url)
        store = AhiStore(client, settings.datastore_id)
        if not cache_frames or not settings.frame_cache_mb:
            return store
        return CachedStore(store, settings.cache_dir, max_bytes=settings.frame_cache_mb << 20)
    return LocalStore(settings.store_root, settings.datastore_id)
