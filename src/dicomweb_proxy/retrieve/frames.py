"""Frames of resolved instances, as stored or transcoded.

Store reads run on the store's thread pool (a local store's file reads at once, as nginx reads
its files: a thread hop costs more than reading a frame from the page cache) and decoding on the
codec pool (the codecs release the GIL), so a slow store holds no codec thread and a burst of
transcodes no store thread.
Stored and transcoded frames are kept in byte-bounded LRUs per worker process: a kept stored
frame is answered without a thread hop (the largest cost of a frame request after the framework's
own), a kept transcode without decoding again.
"""

from __future__ import annotations

from ..cache import SizedLRU
from ..capacity import Capacity
from ..dicom import transcode
from ..dicom import transfer_syntax as ts
from ..dicom.render import DecodeError
from ..stores.base import FrameNotFound, ImageSetStore
from .records import FrameGone, InstanceRecord, UndecodableFrame

#: Frames kept per worker process and datastore, as stored and transcoded.
STORED_CACHE_BYTES = 64 * 1024 * 1024
TRANSCODED_CACHE_BYTES = 64 * 1024 * 1024


class FrameSource:
    """Frames by instance and number; decoding never runs on the event loop."""

    def __init__(
        self,
        store: ImageSetStore,
        capacity: Capacity,
        *,
        stored_cache_bytes: int = STORED_CACHE_BYTES,
        transcoded_cache_bytes: int = TRANSCODED_CACHE_BYTES,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self._inline_reads = getattr(store, "local_reads", False)
        self._stored: SizedLRU[tuple[str, str], bytes] = SizedLRU(stored_cache_bytes)
        self._transcoded: SizedLRU[tuple[str, str], bytes] = SizedLRU(transcoded_cache_bytes)

    @property
    def window(self) -> int:
        """How many frames to fetch ahead of a consumer: enough to keep every codec busy."""
        return 2 * self.capacity.codec.threads

    async def stored(self, record: InstanceRecord, number: int) -> bytes:
        """Frame *number* (1-based) as stored, in ``record.transfer_syntax``; FrameGone when
        the store no longer has it. Frame ids name immutable blobs, so a kept one is right for
        as long as its instance resolves to it."""
        key = (record.image_set_id, record.frame_ids[number - 1])
        kept = self._stored.get(key)
        if kept is not None:
            return kept
        try:
            if self._inline_reads:
                data = self.store.get_image_frame(*key)
            else:
                data = await self.capacity.store.run(self.store.get_image_frame, *key)
        except FrameNotFound:
            raise FrameGone(f"frame {number} of {record.sop_uid} is gone") from None
        return self._stored.put(key, data)

    async def encoded(self, record: InstanceRecord, number: int, transfer_syntax: str) -> bytes:
        """Frame *number* in *transfer_syntax*: the stored bytes when it is the stored one;
        UndecodableFrame when no installed codec decodes the stored frame."""
        if transcode.same_bytes(record.transfer_syntax, transfer_syntax):
            return await self.stored(record, number)
        key = (record.frame_ids[number - 1], transfer_syntax)
        cached = self._transcoded.get(key)
        if cached is not None:
            return cached
        data = await self.stored(record, number)
        try:
            result = await self.capacity.codec.run(_transcode, data, record, transfer_syntax)
        except DecodeError as error:
            raise UndecodableFrame(record, number, error) from None
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
