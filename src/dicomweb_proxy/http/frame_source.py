"""Instances and their frames for retrieve routes (WADO-RS, rendering), per worker process.

:func:`retrieval` gives the process's :class:`Retrieval`: instance resolution through a cached
:class:`~dicomweb_proxy.index.lookup.Resolver` and frames through :class:`FrameSource`, which
reads stored blobs and transcodes them in a thread pool sized to the cores (the codecs release
the GIL), keeping the results in a byte-bounded LRU.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..cache import SizedLRU
from ..dicom import transcode
from ..dicom import transfer_syntax as ts
from ..dicom.render import DecodeError
from ..index.lookup import InstanceRecord, NotFound, Plan, Resolver
from ..services import Services
from ..stores.base import FrameNotFound, ImageSetStore
from .wado_metadata import MetadataCache

#: Transcoded frames kept per worker process.
TRANSCODED_CACHE_BYTES = 128 * 1024 * 1024
log = logging.getLogger("dicomweb_proxy.http")

T = TypeVar("T")


class FrameSource:
    """Frames of resolved instances, stored or transcoded; decoding never runs on the loop."""

    def __init__(
        self,
        store: ImageSetStore,
        *,
        cache_bytes: int = TRANSCODED_CACHE_BYTES,
        workers: int | None = None,
    ) -> None:
        self.store = store
        self.workers = workers or os.cpu_count() or 1
        self._codecs = ThreadPoolExecutor(self.workers, thread_name_prefix="codec")
        self._transcoded: SizedLRU[tuple[str, str], bytes] = SizedLRU(cache_bytes)

    async def stored(self, record: InstanceRecord, number: int) -> bytes:
        """Frame *number* (1-based) as stored, in ``record.transfer_syntax``."""
        return await run_in_threadpool(
            self.store.get_image_frame, record.image_set_id, record.frame_ids[number - 1]
        )

    async def encoded(self, record: InstanceRecord, number: int, transfer_syntax: str) -> bytes:
        """Frame *number* in *transfer_syntax*: the stored bytes when it is the stored one."""
        if transcode.same_bytes(record.transfer_syntax, transfer_syntax):
            return await self.stored(record, number)
        key = (record.frame_ids[number - 1], transfer_syntax)
        cached = self._transcoded.get(key)
        if cached is not None:
            return cached
        # Reads stay off the codec pool: a remote store's reads would hold its threads idle.
        data = await self.stored(record, number)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._codecs, _transcode, data, record, transfer_syntax)
        return self._transcoded.put(key, result)


def _transcode(data: bytes, record: InstanceRecord, transfer_syntax: str) -> bytes:
    """The stored frame decoded (then re-encoded unless Explicit VR LE); DecodeError when no
    installed codec decodes it."""
    try:
        if transfer_syntax == ts.EXPLICIT_VR_LE:
            return transcode.to_native(data, record.transfer_syntax, record.attributes)
        array = transcode.to_array(data, record.transfer_syntax, record.attributes)
    except MemoryError:
        raise
    except Exception as error:  # codecs raise RuntimeError, ValueError, their own errors...
        raise DecodeError(record.transfer_syntax, error) from error
    return transcode.encode(array, transfer_syntax, record.attributes)


@dataclass
class Retrieval:
    """What retrieve routes share in one worker process."""

    resolver: Resolver
    frames: FrameSource
    metadata: MetadataCache

    async def plan(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> Plan:
        """What a URL names, from the index (no metadata parsed); 404 when there is nothing."""
        return await self._resolve(self.resolver.plan, study_uid, series_uid, sop_uid)

    async def load(self, plan: Plan) -> list[InstanceRecord]:
        """The planned instances with attributes and frames; 404 if the store lost them all."""
        return await self._resolve(self.resolver.load, plan)

    async def _resolve(self, function: Callable[..., T], *args: object) -> T:
        try:
            return await run_in_threadpool(function, *args)
        except NotFound as error:
            raise HTTPException(404, str(error)) from None

    async def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord:
        """One instance, without leaving the event loop when it was used recently; 404 if none."""
        record = self.resolver.cached_instance((study_uid, series_uid, sop_uid))
        if record is not None:
            return record
        return await self._resolve(self.resolver.instance, study_uid, series_uid, sop_uid)

    async def frame(self, record: InstanceRecord, number: int, transfer_syntax: str) -> bytes:
        """Like FrameSource.encoded; a frame gone from the store drops its instance from the
        resolver's map (its image set was deleted or replaced) and answers 404. A stored frame
        that cannot be decoded for a transcode answers 406 (logged as a warning): its stored
        bytes can still be sent."""
        try:
            return await self.frames.encoded(record, number, transfer_syntax)
        except FrameNotFound:
            self.resolver.forget(record.key)
            raise HTTPException(404, f"frame {number} of {record.sop_uid} is gone") from None
        except DecodeError as error:
            log.warning("frame %d of %s: %s", number, record.sop_uid, error.reason or error)
            raise HTTPException(
                406,
                f"frame {number} of instance {record.sop_uid}: {error}; ask for the stored"
                f" transfer syntax ({record.transfer_syntax}, or transfer-syntax=*)",
            ) from None


def retrieval(request: Request) -> Retrieval:
    """The worker process's Retrieval, created on first use."""
    state = request.app.state
    found: Retrieval | None = getattr(state, "retrieval", None)
    if found is None:
        services: Services = state.services
        found = Retrieval(
            Resolver(services.store, services.reader), FrameSource(services.store), MetadataCache()
        )
        state.retrieval = found
    return found


async def prefetched(
    jobs: Iterable[Callable[[], Awaitable[T]]], window: int
) -> AsyncGenerator[T, None]:
    """Results of *jobs* in order, running up to *window* of them ahead of the consumer, so
    the next instances decode while the current one is on the wire."""
    pending: deque[asyncio.Future[T]] = deque()
    try:
        for job in jobs:
            pending.append(asyncio.ensure_future(job()))
            if len(pending) >= window:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for future in pending:
            future.cancel()
