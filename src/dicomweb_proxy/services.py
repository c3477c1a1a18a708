"""Build the store and the index a deployment is configured for: one pair per datastore.

The one place that knows concrete store and database classes: the HTTP layer, the importer and
the command line receive what this returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine

from .capacity import HEALTH_THREADS, Capacity
from .config import ConfigError, Settings, index_identity
from .db_secret import index_url
from .index.database import create_index_engine, upgrade_schema
from .index.layout import Layout, LayoutError, detect_layout
from .index.reader import IndexReader
from .stores.base import ImageSetStore
from .stores.local import LocalStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: ImageSetStore
    #: The index database, for its writers (importer, AHI sync and events).
    index: Engine
    #: The index as the HTTP layer reads it, whatever its layout.
    reader: IndexReader
    #: Thread pools for store reads, index queries, codecs and health checks.
    capacity: Capacity

    def require_writable_index(self, task: str) -> None:
        """ConfigError unless the index is ours to write: the metadata-index layout is kept by
        its own indexer (and read here with a read-only user)."""
        if not self.reader.layout.writable:
            raise ConfigError(
                f"cannot {task}: the index database ({self.index.url.render_as_string()}) holds"
                " the metadata-index layout, which this server only reads; its own indexer"
                " keeps it current"
            )

    def close(self) -> None:
        self.capacity.close()
        self.index.dispose()


def open_services(
    settings: Settings, *, upgrade: bool = True, maintenance: bool = False
) -> Services:
    """Open the configured store and index; create or upgrade the index schema if asked (an
    index in the metadata-index layout is only read, never changed). For *maintenance* (index
    sync, image-set events) rather than serving, see :func:`open_store`."""
    engine, layout = open_index(settings, upgrade=upgrade)
    store = open_store(settings, maintenance=maintenance)
    # Ours indexes one datastore; a metadata-index database may list several.
    scope = None if layout.writable else settings.datastore_id
    capacity = Capacity.create(
        settings.store_threads, settings.index_threads, settings.codec_threads
    )
    return Services(settings, store, engine, IndexReader(engine, layout, scope), capacity)


def open_index(settings: Settings, *, upgrade: bool = True) -> tuple[Engine, Layout]:
    """The index database and its layout, created or upgraded if asked and ours. Only then is
    the data folder created: a command that only reads (``db status``) leaves none behind."""
    if upgrade:
        create_data_dir(settings)
    elif not (settings.database_url or settings.db_secret_arn) and not settings.data_dir.is_dir():
        raise ConfigError(
            f"{_data_dir_setting(settings)}: {settings.data_dir} does not exist, so there is no "
            "index yet ('dicomweb-proxy db upgrade', 'serve' or 'import' creates it)"
        )
    engine = create_index_engine(index_url(settings))
    try:
        layout = detect_layout(engine)
    except LayoutError as error:
        engine.dispose()
        raise ConfigError(f"index database {engine.url.render_as_string()}: {error}") from None
    if upgrade and layout.writable:
        upgrade_schema(engine)
    elif upgrade:
        log.info("index %s: metadata-index layout, read only", engine.url.render_as_string())
    return engine, layout


def create_data_dir(settings: Settings) -> None:
    """Create the data folder of a command that writes. A folder you name must have an existing
    parent, so a mistyped path is refused rather than serving a new, empty store; the default
    one (``./data``, a datastore's ``datastores/NAME`` in it) is created with its parents."""
    path = settings.data_dir
    if path.is_dir():
        return
    named = settings.sources.get("data_dir", "default") != "default"
    if named and not path.parent.is_dir():
        problem = "is not a folder" if path.parent.exists() else "does not exist"
        raise ConfigError(
            f"{_data_dir_setting(settings)}: {path.parent}, the parent of {path}, {problem}; "
            "create it first or correct the path"
        )
    try:
        path.mkdir(parents=not named, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"{_data_dir_setting(settings)}: cannot create {path}: {error.strerror}"
        ) from None


def _data_dir_setting(settings: Settings) -> str:
    return f"setting 'data_dir' (from {settings.sources.get('data_dir', 'default')})"


def open_datastores(
    settings: Settings, *, upgrade: bool = True, maintenance: bool = False
) -> dict[str, Services]:
    """One :class:`Services` per configured datastore, by name, the default first (see
    :func:`open_services` for the flags). Nothing stays open if one fails."""
    datastores = settings.all_datastores()
    _refuse_shared_indexes(datastores)
    opened: dict[str, Services] = {}
    try:
        for name, datastore in datastores.items():
            try:
                opened[name] = open_services(datastore, upgrade=upgrade, maintenance=maintenance)
            except ConfigError as error:
                if len(datastores) == 1:
                    raise
                raise ConfigError(f"datastore {name!r}: {error}") from None
    except BaseException:
        for services in opened.values():
            services.close()
        raise
    return opened


def _refuse_shared_indexes(datastores: Mapping[str, Settings]) -> None:
    """Two datastores in one index of ours would answer each other's searches: refuse. A
    metadata-index database may list several datastores: searches are kept to each one's."""
    sharing: dict[str, list[str]] = {}
    for name, datastore in datastores.items():
        sharing.setdefault(index_identity(datastore), []).append(name)
    for identity, names in sharing.items():
        if len(names) >= 2 and _holds_our_layout(datastores[names[0]]):
            raise ConfigError(
                f"datastores {names[0]!r} and {names[1]!r} share one index database "
                f"({identity}), so searches would mix their studies; give each its own "
                "database_url (or db_secret_arn, or data_dir for the default SQLite file)"
            )


def _holds_our_layout(settings: Settings) -> bool:
    """Whether the index is (or will be) ours; a SQLite file always is."""
    url = index_url(settings)
    if url.startswith("sqlite"):
        return True
    engine = create_index_engine(url)
    try:
        return detect_layout(engine).writable
    except LayoutError:
        return False  # opening it says what is wrong
    finally:
        engine.dispose()


def open_store(settings: Settings, *, maintenance: bool = False) -> ImageSetStore:
    """The configured store. An AHI store serving requests retries a call for at most
    ``ahi_request_retry_s`` (a client waits) and has the frame cache, whose prefetch tries once;
    for *maintenance* it has neither cache nor prefetch and retries for the long budget."""
    if settings.store == "ahi":
        from .stores.ahi import MAINTENANCE_RETRY, ONE_TRY, AhiStore, RetryPolicy, create_client
        from .stores.cached import PREFETCH_WORKERS, CachedStore

        connections = settings.store_threads + PREFETCH_WORKERS + HEALTH_THREADS
        client = create_client(
            settings.aws_region, settings.ahi_endpoint_url, max_connections=connections
        )
        if maintenance:
            return AhiStore(client, settings.datastore_id, retry=MAINTENANCE_RETRY)
        store = AhiStore(
            client, settings.datastore_id, retry=RetryPolicy(budget=settings.ahi_request_retry_s)
        )
        if not settings.frame_cache_mb:
            return store
        return CachedStore(
            store,
            settings.cache_dir,
            max_bytes=settings.frame_cache_mb << 20,
            prefetch_store=store.with_retry(ONE_TRY),
        )
    return LocalStore(settings.store_root, settings.datastore_id)
