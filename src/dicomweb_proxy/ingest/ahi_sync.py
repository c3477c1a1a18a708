"""Keep the SQL index equal to a store's image sets: all of them (sync) or one (reconcile).

:func:`reconcile` is the one step both the full sync and the event handler take: ask the store
for the image set's current version, then index its metadata or remove it from the index. It is
idempotent, and safe next to the running server, other syncs and event handlers:

- each change is one index transaction (``run_write`` retries races with other writers);
- the version is read before the metadata, so a concurrent update can at worst leave the index
  marked one version behind, which the next sync or event repairs; never marked current early;
- a transaction never replaces an index entry with an older version than it holds;
- an image set is only removed after the store said it does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum

from sqlalchemy import Connection, Engine, select

from ..index.database import run_write
from ..index.schema import imageset
from ..index.writer import index_image_set, remove_image_set
from ..stores.base import ImageSetNotFound, ImageSetStore, ImageSetSummary, StoreError

log = logging.getLogger(__name__)
#: Image sets reconciled at once: AHI calls wait on the network, index writes take turns.
SYNC_WORKERS = 8


class Outcome(Enum):
    INDEXED = "indexed"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


@dataclass
class SyncReport:
    indexed: int = 0
    removed: int = 0
    unchanged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (image set id, reason)

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def summary(self) -> str:
        return (
            f"indexed {self.indexed}, removed {self.removed}, unchanged {self.unchanged}, "
            f"failed {len(self.failures)}"
        )


def sync_index(
    store: ImageSetStore,
    engine: Engine,
    *,
    workers: int = SYNC_WORKERS,
) -> SyncReport:
    """Index every image set of *store* that is new or changed (by version) and remove from
    the index those the store no longer has."""
    indexed = indexed_versions(engine, store.datastore_id)
    report = SyncReport()
    listed: set[str] = set()
    pending: list[tuple[str, ImageSetSummary | None]] = []
    for summary in store.list_image_sets():
        listed.add(summary.image_set_id)
        if indexed.get(summary.image_set_id) == summary.version:
            report.count(Outcome.UNCHANGED)
        else:
            pending.append((summary.image_set_id, summary))
    pending += [(image_set_id, None) for image_set_id in sorted(indexed.keys() - listed)]

    def one(item: tuple[str, ImageSetSummary | None]) -> tuple[str, Outcome | str]:
        image_set_id, summary = item
        try:
            return image_set_id, reconcile(store, engine, image_set_id, summary=summary)
        except StoreError as error:
            return image_set_id, str(error)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="sync") as pool:
        for image_set_id, outcome in pool.map(one, pending):
            if isinstance(outcome, Outcome):
                report.count(outcome)
            else:
                log.warning("image set %s not synced: %s", image_set_id, outcome)
                report.failures.append((image_set_id, outcome))
    return report


def reconcile(
    store: ImageSetStore,
    engine: Engine,
    image_set_id: str,
    *,
    summary: ImageSetSummary | None = None,
    force: bool = False,
) -> Outcome:
    """Make the index hold what the store holds for one image set (see the module doc).
    *summary* is the store's answer if the caller has it; *force* re-indexes an unchanged
    version (after the primary image set of its series was removed)."""
    datastore_id = store.datastore_id
    try:
        summary = summary or store.get_image_set(image_set_id)
        known = indexed_versions(engine, datastore_id, [image_set_id]).get(image_set_id)
        if known is not None and known >= summary.version and not force:
            return Outcome.UNCHANGED
        # That version's document, not the current one: the index names what it describes.
        metadata = store.get_image_set_metadata(image_set_id, summary.version)
    except ImageSetNotFound:
        return _remove(store, engine, image_set_id)

    def write(connection: Connection) -> bool:
        current = _version(connection, datastore_id, image_set_id)
        newer = current is not None and current > summary.version
        if newer or (current == summary.version and not force):
            return False
        index_image_set(
            connection,
            datastore_id=datastore_id,
            image_set_id=image_set_id,
            version=summary.version,
            metadata=metadata,
        )
        return True

    return Outcome.INDEXED if run_write(engine, write) else Outcome.UNCHANGED


def _remove(store: ImageSetStore, engine: Engine, image_set_id: str) -> Outcome:
    datastore_id = store.datastore_id

    def write(connection: Connection) -> tuple[bool, list[tuple[str, str]]]:
        if _version(connection, datastore_id, image_set_id) is None:
            return False, []
        promoted = remove_image_set(
            connection, datastore_id=datastore_id, image_set_id=image_set_id
        )
        return True, promoted

    removed, promoted = run_write(engine, write)
    for other_datastore, other in promoted:
        if other_datastore == datastore_id:
            reconcile(store, engine, other, force=True)
        else:
            log.warning(
                "image set %s of datastore %s became primary: sync it", other, other_datastore
            )
    return Outcome.REMOVED if removed else Outcome.UNCHANGED


def indexed_versions(
    engine: Engine, datastore_id: str, image_set_ids: Iterable[str] | None = None
) -> dict[str, int]:
    """The image-set versions the index holds for *datastore_id* (all, or those named)."""
    query = select(imageset.c.imagesetid, imageset.c.version).where(
        imageset.c.datastoreid == datastore_id
    )
    if image_set_ids is not None:
        query = query.where(imageset.c.imagesetid.in_(list(image_set_ids)))
    with engine.connect() as connection:
        return {image_set_id: version for image_set_id, version in connection.execute(query)}


def _version(connection: Connection, datastore_id: str, image_set_id: str) -> int | None:
    return connection.scalar(
        select(imageset.c.version).where(
            imageset.c.datastoreid == datastore_id, imageset.c.imagesetid == image_set_id
        )
    )
