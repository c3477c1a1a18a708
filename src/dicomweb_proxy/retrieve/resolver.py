"""Resolve what a retrieve URL names: Study/Series/SOP Instance UIDs → image sets and instances.

The index says which image set holds each instance and at which version; the store is the
source of truth for attributes and frames. Each worker process keeps the image-set documents it
read (bounded by bytes), so frame requests skip SQL and metadata parsing:

- one load per image-set version at a time: concurrent requests for a series wait for the one
  read of its document instead of each reading it (on AHI, a GetImageSetMetadata call each);
- an entry lives *ttl* seconds after its last use; it is served without asking the index for
  *revalidate_s* seconds after its version was last confirmed, then the index is asked again
  (one indexed query), so a newer version or a deletion written by any process is seen within
  *revalidate_s*;
- when the index keeps no image-set versions (the metadata-index layout) they are asked of the
  store and believed for *version_ttl* seconds; documents loaded without a known version live
  *ttl* seconds from their load.

Methods block (SQL, store reads): call them from worker threads, except
:meth:`Resolver.cached_instance`.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from ..dicom import transfer_syntax as ts
from ..dicom.image_set import merged_instance_attributes
from ..stores.base import ImageSetNotFound, ImageSetStore
from .records import InstanceKey, InstanceRecord, NotFound, Plan, describe

#: Image-set documents and resolved instances kept per worker process and datastore.
RESOLVER_CACHE_BYTES = 64 * 1024 * 1024
#: Parsed JSON takes several times its text's size in Python objects (measured: about 5x for
#: image-set documents); entries are charged that.
_PARSED_OVERHEAD = 5
#: Store versions kept (metadata-index layout only): a few dozen bytes each.
_MAX_STORE_VERSIONS = 10_000
#: What an index can hold as a UID (lenient: some files break PS3.5's digits and dots). Spaces
#: are refused too: MySQL collations ignore trailing ones.
_POSSIBLE_UID = re.compile(r"[!-~]{1,64}")
T = TypeVar("T")


class IndexLookups(Protocol):
    """What the resolver asks of an index (index.reader.IndexReader)."""

    def locate(
        self,
        datastore_id: str,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> tuple[list[tuple[str, str, str]], dict[str, int | None]]: ...

    def versions(self, datastore_id: str, image_set_ids: list[str]) -> dict[str, int | None]: ...


@dataclass
class _Document:
    """One image-set version's document and the instances resolved from it so far."""

    image_set_id: str
    study_uid: str
    version: int | None
    metadata: dict[str, Any]
    size: int
    expires: float
    validated: float
    records: dict[InstanceKey, InstanceRecord] = field(default_factory=dict)

    def instance_keys(self) -> list[InstanceKey]:
        return [
            (self.study_uid, series_uid, sop_uid)
            for series_uid, block in self.metadata["Study"]["Series"].items()
            for sop_uid in block.get("Instances", {})
        ]


class Resolver:
    """Index lookups combined with store metadata, kept per worker process (see the module)."""

    def __init__(
        self,
        store: ImageSetStore,
        index: IndexLookups,
        *,
        ttl: float = 60.0,
        revalidate_s: float = 2.0,
        version_ttl: float = 5.0,
        max_bytes: int = RESOLVER_CACHE_BYTES,
    ) -> None:
        self.store = store
        self.index = index
        self.ttl = ttl
        self.revalidate_s = revalidate_s
        self.version_ttl = version_ttl
        self.max_bytes = max_bytes
        self._documents: OrderedDict[str, _Document] = OrderedDict()
        self._instances: dict[InstanceKey, str] = {}
        self._bytes = 0
        self._store_versions: dict[str, tuple[int | None, float]] = {}
        self._loading: dict[Hashable, Future[Any]] = {}
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes charged for the kept documents and instances."""
        return self._bytes

    # --- plans ---------------------------------------------------------------------------------

    def plan(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> Plan:
        """What the UIDs name and the image-set versions, from the index alone (one query: a
        remote store is not asked, unless the index keeps no versions); NotFound when there is
        nothing."""
        return self.with_store_versions(self.located(study_uid, series_uid, sop_uid))

    def with_store_versions(self, plan: Plan) -> Plan:
        """*plan* with the versions the index does not keep asked of the store."""
        if all(version is not None for version in plan.versions.values()):
            return plan
        versions = {
            image_set_id: self._store_version(image_set_id) if version is None else version
            for image_set_id, version in plan.versions.items()
        }
        return dataclasses.replace(plan, versions=versions)

    def located(self, study_uid: str, series_uid: str | None, sop_uid: str | None) -> Plan:
        """What the index lists for the UIDs (text no index can hold is not asked about)."""
        uids = (study_uid, series_uid, sop_uid)
        if not all(uid is None or _POSSIBLE_UID.fullmatch(uid) for uid in uids):
            raise NotFound(describe(*uids))
        rows, versions = self.index.locate(self.store.datastore_id, *uids)
        if not rows:
            raise NotFound(describe(*uids))
        return Plan(uids, rows, versions)

    def _store_version(self, image_set_id: str) -> int | None:
        """The image set's current version from the store (None if it is gone), kept briefly:
        cached metadata bodies are keyed by versions. A version never goes back (a slower
        concurrent read may return an older one): the body of a newer one may have been sent."""
        now = time.monotonic()
        with self._lock:
            entry = self._store_versions.get(image_set_id)
        if entry is not None and entry[1] > now:
            return entry[0]
        try:
            version: int | None = self.store.get_image_set(image_set_id).version
        except ImageSetNotFound:
            version = None
        with self._lock:
            known = self._store_versions.get(image_set_id)
            if version is not None and known is not None and (known[0] or 0) > version:
                version = known[0]
            if len(self._store_versions) >= _MAX_STORE_VERSIONS:
                self._store_versions = {k: v for k, v in self._store_versions.items() if v[1] > now}
                if len(self._store_versions) >= _MAX_STORE_VERSIONS:
                    self._store_versions.clear()
            self._store_versions[image_set_id] = (version, now + self.version_ttl)
        return version

    # --- instances -----------------------------------------------------------------------------

    def load(self, plan: Plan) -> list[InstanceRecord]:
        """The planned instances with their attributes and frames, in display order."""
        documents: dict[str, _Document | None] = {}
        instances = []
        for image_set_id, series_uid, sop_uid in plan.rows:
            if image_set_id not in documents:
                version = plan.versions.get(image_set_id)
                documents[image_set_id] = self._document(image_set_id, plan.uids[0], version)
            document = documents[image_set_id]
            if document is None:
                continue
            record = self._record(document, (plan.uids[0], series_uid, sop_uid))
            if record is not None:
                instances.append(record)
        if not instances:
            raise NotFound(describe(*plan.uids))
        return instances

    def select(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Every instance the UIDs name, read from the store; NotFound when there is none."""
        return self.load(self.plan(study_uid, series_uid, sop_uid))

    def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord:
        """One instance, from the kept documents when the index confirms their version (its
        whole series is read on a miss, since viewers ask for every instance of a series in
        turn). An instance the index does not list is NotFound before any metadata is read:
        unknown SOP Instance UIDs cost one indexed query each, never a read of the series."""
        key = (study_uid, series_uid, sop_uid)
        record = self._revalidated(key)
        if record is not None:
            return record
        plan = self.located(study_uid, series_uid, None)
        rows = [row for row in plan.rows if row[2] == sop_uid]
        if not rows:
            raise NotFound(describe(*key))
        return self.load(Plan(key, rows, plan.versions))[0]

    def cached_instance(self, key: InstanceKey) -> InstanceRecord | None:
        """The instance if its document is kept and its version was confirmed less than
        *revalidate_s* ago; never blocks on I/O."""
        now = time.monotonic()
        with self._lock:
            document = self._kept(key, now)
            if document is None or document.validated + self.revalidate_s < now:
                return None
            return document.records.get(key)

    def forget(self, key: InstanceKey) -> None:
        """Drop the document holding *key* (a frame read found its image set changed)."""
        with self._lock:
            image_set_id = self._instances.get(key)
            if image_set_id is not None:
                self._drop(image_set_id)

    def _revalidated(self, key: InstanceKey) -> InstanceRecord | None:
        """The kept instance once the index confirms its document's version (one query per
        image set per *revalidate_s*, shared by concurrent requests); None otherwise."""
        now = time.monotonic()
        with self._lock:
            document = self._kept(key, now)
        if document is None:
            return None
        if document.validated + self.revalidate_s < now:
            if document.version is None:
                return None  # nothing to confirm it with: located again
            current = self._once(
                ("versions", document.image_set_id),
                lambda: self.index.versions(self.store.datastore_id, [document.image_set_id]),
            ).get(document.image_set_id)
            if current != document.version:
                with self._lock:
                    self._drop(document.image_set_id)
                return None
            document.validated = time.monotonic()
        return self._record(document, key)

    # --- kept documents ------------------------------------------------------------------------

    def _kept(self, key: InstanceKey, now: float) -> _Document | None:
        """The live document holding *key*, its expiry refreshed; call with the lock held."""
        image_set_id = self._instances.get(key)
        document = self._documents.get(image_set_id) if image_set_id else None
        return document if document is not None and self._used(document, now) else None

    def _used(self, document: _Document, now: float) -> bool:
        """Whether a kept document is still live: then its expiry slides (when its version is
        known) and it becomes the most recently used; an expired one is dropped. Call with the
        lock held."""
        if document.expires < now:
            self._drop(document.image_set_id)
            return False
        if document.version is not None:
            document.expires = now + self.ttl
        self._documents.move_to_end(document.image_set_id)
        return True

    def _document(self, image_set_id: str, study_uid: str, version: int | None) -> _Document | None:
        """The document of *version* (None: the current one), kept or read once however many
        requests ask at the same time; None if the image set is gone from the store."""
        now = time.monotonic()
        with self._lock:
            kept = self._documents.get(image_set_id)
            if (
                kept is not None
                and kept.study_uid == study_uid
                and kept.version == version
                and self._used(kept, now)
            ):
                return kept
        return self._once(
            ("document", image_set_id, version, study_uid),
            lambda: self._read(image_set_id, study_uid, version),
        )

    def _read(self, image_set_id: str, study_uid: str, version: int | None) -> _Document | None:
        metadata = self._metadata(image_set_id, version)
        if metadata is None:
            with self._lock:
                self._drop(image_set_id)
            return None
        now = time.monotonic()
        size = len(orjson.dumps(metadata)) * _PARSED_OVERHEAD
        document = _Document(image_set_id, study_uid, version, metadata, size, now + self.ttl, now)
        with self._lock:
            self._drop(image_set_id)
            if size <= self.max_bytes:
                self._documents[image_set_id] = document
                self._instances.update(dict.fromkeys(document.instance_keys(), image_set_id))
                self._charge(size)
        return document

    def _metadata(self, image_set_id: str, version: int | None) -> dict[str, Any] | None:
        """The document of the version the plan names (one a cache may keep, whoever wrote
        it), else the current one; None if the image set was deleted since it was indexed."""
        try:
            return self.store.get_image_set_metadata(image_set_id, version)
        except ImageSetNotFound:
            if version is None:
                return None
        try:
            return self.store.get_image_set_metadata(image_set_id)
        except ImageSetNotFound:
            return None

    def _record(self, document: _Document, key: InstanceKey) -> InstanceRecord | None:
        """The instance as the document holds it (resolved once); None when the index is
        ahead of the store."""
        record = document.records.get(key)
        if record is not None:
            return record
        record = _resolve(document.image_set_id, document.version, document.metadata, key)
        if record is None:
            return None
        size = sys.getsizeof(record.attributes) + sys.getsizeof(record.vrs)
        with self._lock:
            if key not in document.records:
                document.records[key] = record
                if self._documents.get(document.image_set_id) is document:
                    document.size += size
                    self._charge(size)
        return record

    def _charge(self, size: int) -> None:
        """Count *size* more bytes, evicting the least recently used documents past the bound;
        call with the lock held."""
        self._bytes += size
        while self._bytes > self.max_bytes and self._documents:
            self._drop(next(iter(self._documents)))

    def _drop(self, image_set_id: str) -> None:
        """Forget a kept document; call with the lock held."""
        document = self._documents.pop(image_set_id, None)
        if document is None:
            return
        self._bytes -= document.size
        for key in document.instance_keys():
            if self._instances.get(key) == image_set_id:
                del self._instances[key]

    def _once(self, key: Hashable, work: Callable[[], T]) -> T:
        """*work()*, run by one thread while every other thread asking for *key* at the same
        time waits for its result (or its exception)."""
        with self._lock:
            running = self._loading.get(key)
            if running is None:
                future: Future[T] = Future()
                self._loading[key] = future
        if running is not None:
            return running.result()
        try:
            result = work()
        except BaseException as error:
            future.set_exception(error)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                del self._loading[key]


def _resolve(
    image_set_id: str, version: int | None, metadata: dict[str, Any], key: InstanceKey
) -> InstanceRecord | None:
    """The instance as the store holds it; None when the document does not hold it."""
    study_uid, series_uid, sop_uid = key
    try:
        attributes, vrs = merged_instance_attributes(metadata, series_uid, sop_uid)
    except KeyError:
        return None
    block = metadata["Study"]["Series"][series_uid]["Instances"][sop_uid]
    return InstanceRecord(
        image_set_id=image_set_id,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        attributes=attributes,
        vrs=vrs,
        transfer_syntax=block.get("StoredTransferSyntaxUID") or ts.HTJ2K_LOSSLESS_RPCL,
        frame_ids=tuple(str(frame["ID"]) for frame in block.get("ImageFrames") or ()),
        version=version,
    )
