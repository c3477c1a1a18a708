"""Retrieval for one datastore in one worker process: what every retrieve route (WADO-RS,
rendered, thumbnails) asks for, with no HTTP in it.

Index queries run on the index pool, store reads on the store pool and CPU work (transcodes,
Part 10 headers, metadata bodies) on the codec pool (capacity.py). Failures are this layer's
own exceptions (records.py), which the HTTP layer maps to status codes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from ..cache import SizedLRU
from ..capacity import Capacity
from ..dicom.part10 import Part10
from ..stores.base import ImageSetStore
from .bulk import bulk_value
from .frames import STORED_CACHE_BYTES, TRANSCODED_CACHE_BYTES, FrameSource
from .metadata import (
    METADATA_CACHE_BYTES,
    Fragment,
    MetadataCache,
    body_etag,
    build_fragment,
    fragment_key,
    fragment_rows,
)
from .part10_stream import object_chunks, part10_header
from .prefetch import prefetched, started
from .records import FrameGone, InstanceRecord, NotFound, Plan, UndecodableFrame, describe
from .resolver import RESOLVER_CACHE_BYTES, IndexLookups, Resolver

log = logging.getLogger("dicomweb_proxy.retrieve")
#: Part 10 headers (a few KB an instance) kept per worker process and datastore.
PART10_HEADER_CACHE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CacheBudgets:
    """Bytes each cache of one datastore may hold in one worker process."""

    documents: int = RESOLVER_CACHE_BYTES
    stored_frames: int = STORED_CACHE_BYTES
    transcoded_frames: int = TRANSCODED_CACHE_BYTES
    metadata_bodies: int = METADATA_CACHE_BYTES
    part10_headers: int = PART10_HEADER_CACHE_BYTES


class Retrieval:
    def __init__(
        self,
        store: ImageSetStore,
        index: IndexLookups,
        capacity: Capacity,
        budgets: CacheBudgets = CacheBudgets(),
    ) -> None:
        self.capacity = capacity
        self.resolver = Resolver(store, index, max_bytes=budgets.documents)
        self.frames = FrameSource(
            store,
            capacity,
            stored_cache_bytes=budgets.stored_frames,
            transcoded_cache_bytes=budgets.transcoded_frames,
        )
        self.metadata = MetadataCache(budgets.metadata_bodies)
        self._headers: SizedLRU[tuple[str, int | None, str, str], Part10] = SizedLRU(
            budgets.part10_headers, size_of=lambda header: header.size
        )

    async def plan(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> Plan:
        """What the UIDs name, from the index (no metadata read); NotFound when nothing.
        Versions the index does not keep are asked of the store on the store's pool, so a
        slow store never holds an index thread."""
        plan = await self.capacity.index.run(self.resolver.located, study_uid, series_uid, sop_uid)
        if all(version is not None for version in plan.versions.values()):
            return plan
        return await self.capacity.store.run(self.resolver.with_store_versions, plan)

    async def load(self, plan: Plan) -> list[InstanceRecord]:
        """The planned instances with attributes and frames; NotFound if the store lost them."""
        return await self.capacity.store.run(self.resolver.load, plan)

    async def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord:
        """One instance, without leaving the event loop when it was used recently."""
        record = self.resolver.cached_instance((study_uid, series_uid, sop_uid))
        if record is not None:
            return record
        return await self.capacity.store.run(self.resolver.instance, study_uid, series_uid, sop_uid)

    async def frame(self, record: InstanceRecord, number: int, transfer_syntax: str) -> bytes:
        """Frame *number* of the instance in *transfer_syntax*. A frame gone from the store
        drops its image set from the resolver (it was deleted or replaced) and raises
        FrameGone; one no codec decodes raises UndecodableFrame (logged as a warning)."""
        try:
            return await self.frames.encoded(record, number, transfer_syntax)
        except FrameGone:
            self.resolver.forget(record.key)
            raise
        except UndecodableFrame as error:
            log.warning("%s", error)
            raise

    async def frames_in_order(
        self, wanted: Iterable[tuple[InstanceRecord, int, str]]
    ) -> AsyncIterator[bytes]:
        """The (instance, frame number, transfer syntax) frames in order, fetched and decoded
        ahead of the consumer; the first is awaited here, so its failure raises before an
        answer starts."""
        jobs = (partial(self.frame, record, number, syntax) for record, number, syntax in wanted)
        return await started(prefetched(jobs, window=self.frames.window))

    def part10(
        self, record: InstanceRecord, syntax: str, frames: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """The instance as a Part 10 object in *syntax*, its frames taken from *frames*."""
        return object_chunks(record, syntax, frames, self.part10_header)

    async def part10_header(self, record: InstanceRecord, syntax: str) -> Part10:
        """The instance's Part 10 header in *syntax*, encoded on the codec pool once per
        image-set version and kept."""
        key = (record.image_set_id, record.version, record.sop_uid, syntax)
        if record.version is not None:
            kept = self._headers.get(key)
            if kept is not None:
                return kept
        header = await self.capacity.codec.run(part10_header, record, syntax)
        return self._headers.put(key, header) if record.version is not None else header

    def metadata_etag(self, plan: Plan, base_url: str) -> str:
        return body_etag(plan, base_url)

    def kept_metadata(self, plan: Plan, base_url: str) -> list[Fragment] | None:
        """Every fragment of the plan's metadata body when all are kept; never blocks."""
        fragments = []
        for _, key in _fragment_keys(plan, base_url):
            fragment = self.metadata.get(key)
            if fragment is None:
                return None
            fragments.append(fragment)
        return fragments

    async def metadata_fragments(self, plan: Plan, base_url: str) -> AsyncIterator[Fragment]:
        """The fragments of the plan's DICOM JSON body (BulkDataURIs under *base_url*) in
        order, each kept or built when its turn comes, so one fragment at a time is in memory
        for a body that is not kept; NotFound (raised here) when the store holds none."""
        return await started(self._fragments(plan, base_url))

    async def _fragments(self, plan: Plan, base_url: str) -> AsyncGenerator[Fragment, None]:
        found = False
        for rows, key in _fragment_keys(plan, base_url):
            fragment = self.metadata.get(key)
            if fragment is None:
                try:
                    records = await self.load(Plan(plan.uids, rows, plan.versions))
                except NotFound:
                    continue  # gone from the store since it was indexed: left out
                built = await self.capacity.codec.run(build_fragment, records, base_url)
                fragment = self.metadata.put(key, built)
            found = True
            yield fragment
        if not found:
            raise NotFound(describe(*plan.uids))

    async def bulk(self, record: InstanceRecord, path: str) -> bytes | None:
        """The binary value at a BulkDataURI tag path (not pixel data); None when none."""
        return await self.capacity.codec.run(bulk_value, record, path)


def _fragment_keys(plan: Plan, base_url: str) -> Iterator[tuple[list[tuple[str, str, str]], str]]:
    """The rows of each fragment of the plan's metadata body, and its cache key."""
    for rows in fragment_rows(plan):
        yield rows, fragment_key(plan, rows, base_url)
