"""A disk cache of frames in front of a remote store (AHI), filled ahead of the viewer.

An AHI frame id always names the same bytes, so frames are cached by id without expiry, under
``<cache_dir>/frames/<datastore id>/<2 hex>/<frame id>``: written to a temporary file and
renamed, so a reader never sees a truncated frame, and shared by every worker process. The cache
is bounded: once writes add up to a tenth of the bound, the least recently used frames (by
modification time, touched on each hit) are deleted down to 90% of it. Concurrent requests of one
frame share one fetch: threads of a process wait for one leader, and the leaders of the processes
sharing the folder (server workers) take a lock file per frame, so the second waits for the first
and reads its copy. Concurrent metadata reads of one image set in a process share one call too,
and a metadata document asked for by version (which names an unchanging document) is kept in the
same cache, ``<cache_dir>/frames/<datastore id>/metadata/<image set id>.<version>.json``, fetched
once for the worker processes (a lock file as for frames) and served while the image set exists
(the index may not know yet of a deletion: the store is asked every few seconds). When an image
set's metadata is read its frames are fetched in the background, since a viewer asks for every
frame of a series next: by threads of their own (never a request's), through a store that tries
each frame once, so a throttling AHI's rate is left to requests, and prefetch pauses for a while
when AHI refuses one. A prefetch never leads a fetch requests share: a request for a frame being
prefetched waits for that one try (the frame's lock file), then reads the frame or fetches it
itself, retrying for its own budget.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # not POSIX: fetches are shared within each process only
    fcntl = None  # type: ignore[assignment]

import orjson

from ..dicom.image_set import iter_instances
from .base import ImageSetNotFound, ImageSetStore, ImageSetSummary, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Prefetch threads per process, as the reference proxy. With 50 ms per GetImageFrame on 2 cores
#: (bench/ahi_bench.py), 32 threads loaded a 300-frame series about twice as fast, but delayed
#: the series metadata answer that starts them by up to 200 ms (they compete for the GIL).
PREFETCH_WORKERS = 8
#: Frames waiting for prefetch workers; beyond that, prefetch skips (requests still fetch).
MAX_QUEUED = 4096
#: How long prefetch stops once the store is throttling or unavailable.
PREFETCH_PAUSE_S = 5.0
_RECENT_IMAGE_SETS = 1024
#: How long an image set the store answered for is believed to exist (kept metadata is only
#: served for image sets that still exist).
EXISTS_CHECK_S = 5.0


class CachedStore:
    """*store* with its frames cached under *cache_dir*, at most *max_bytes* of them;
    prefetch reads frames from *prefetch_store* (the same datastore, retried less; default
    *store*)."""

    def __init__(
        self,
        store: ImageSetStore,
        cache_dir: Path,
        *,
        max_bytes: int,
        prefetch_workers: int = PREFETCH_WORKERS,
        prefetch_store: ImageSetStore | None = None,
    ) -> None:
        self.datastore_id = store.datastore_id
        self.staging_dir = store.staging_dir
        self.local_reads = False  # a miss is a call to the store behind the cache
        self.max_bytes = max_bytes
        self._store = store
        self._prefetch_store = prefetch_store or store
        self._root = Path(cache_dir) / "frames" / store.datastore_id
        self._tmp = self._root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._flights: dict[str, Future[bytes]] = {}
        self._metadata_flights: dict[str, Future[dict[str, Any]]] = {}
        self._confirmed: dict[str, float] = {}  # image set id -> seen in the store until
        self._prefetched: OrderedDict[str, None] = OrderedDict()
        self._queued = 0
        self._paused_until = 0.0  # monotonic time before which nothing is prefetched
        self._written = 0
        self._prefetch = ThreadPoolExecutor(prefetch_workers, thread_name_prefix="prefetch")

    def get_image_frame(self, image_set_id: str, frame_id: str) -> bytes:
        path = self._path(frame_id)
        if path is None:
            return self._store.get_image_frame(image_set_id, frame_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return self._fetch(image_set_id, frame_id, path)
        _touch(path)
        return data

    def get_image_set_metadata(
        self, image_set_id: str, version: int | None = None
    ) -> dict[str, Any]:
        # A worker's first frame requests of a series all miss its instance map at once and
        # each read the metadata: one call serves them (callers treat the document as shared).
        metadata = self._shared(
            self._metadata_flights,
            f"{image_set_id}/{version}",
            lambda: self._metadata(image_set_id, version),
        )
        self._prefetch_frames(image_set_id, metadata)
        return metadata

    def _metadata(self, image_set_id: str, version: int | None) -> dict[str, Any]:
        """A version's document from disk if a worker kept it (while the image set exists),
        else from the store, once for the processes sharing the folder."""
        path = self._metadata_path(image_set_id, version)
        if path is None:
            return self._store.get_image_set_metadata(image_set_id, version)
        kept = _kept(path)
        if kept is None:
            with self._frame_lock(path.name):
                kept = _kept(path)  # another process may have fetched it meanwhile
                if kept is None:
                    metadata = self._store.get_image_set_metadata(image_set_id, version)
                    self._save(path, orjson.dumps(metadata))
                    self._confirm(image_set_id)
                    return metadata
        self._check_exists(image_set_id, path)
        return kept

    def _check_exists(self, image_set_id: str, path: Path) -> None:
        """ImageSetNotFound (and the kept document dropped) once the store deleted the image
        set, which the index may not know yet; asked at most every EXISTS_CHECK_S seconds."""
        with self._lock:
            confirmed = self._confirmed.get(image_set_id, 0.0)
        if confirmed > time.monotonic():
            return
        try:
            self._store.get_image_set(image_set_id)
        except ImageSetNotFound:
            path.unlink(missing_ok=True)
            raise
        self._confirm(image_set_id)

    def _confirm(self, image_set_id: str) -> None:
        with self._lock:
            if len(self._confirmed) >= _RECENT_IMAGE_SETS:
                self._confirmed.clear()
            self._confirmed[image_set_id] = time.monotonic() + EXISTS_CHECK_S

    def get_image_set(self, image_set_id: str) -> ImageSetSummary:
        return self._store.get_image_set(image_set_id)

    def list_image_sets(self) -> Iterator[ImageSetSummary]:
        return self._store.list_image_sets()

    def put_image_set(
        self,
        image_set_id: str,
        metadata: dict[str, Any],
        frames: Mapping[str, bytes],
        *,
        expected_version: int | None = None,
    ) -> ImageSetSummary:
        return self._store.put_image_set(
            image_set_id, metadata, frames, expected_version=expected_version
        )

    def delete_image_set(self, image_set_id: str) -> None:
        self._store.delete_image_set(image_set_id)

    def check(self) -> None:
        self._store.check()

    def drain(self) -> None:
        """Wait for queued prefetches, then stop prefetching (tests, shutdown)."""
        self._prefetch.shutdown(wait=True)

    def _path(self, frame_id: str) -> Path | None:
        if not _is_id(frame_id):
            return None  # not a frame id: let the store answer
        return self._root / frame_id[:2] / frame_id

    def _metadata_path(self, image_set_id: str, version: int | None) -> Path | None:
        """Where a version's document is kept; None for the current one (it changes)."""
        if version is None or not _is_id(image_set_id):
            return None
        return self._root / "metadata" / f"{image_set_id}.{version}.json"

    def _fetch(self, image_set_id: str, frame_id: str, path: Path) -> bytes:
        """Fetch one frame for requests, once for all threads asking at the same time."""
        return self._shared(
            self._flights,
            frame_id,
            lambda: self._fetch_once(self._store, image_set_id, frame_id, path),
        )

    def _fetch_once(
        self, store: ImageSetStore, image_set_id: str, frame_id: str, path: Path
    ) -> bytes:
        """Fetch one frame from *store* and keep it, unless another process or a prefetch
        fetched it while this thread waited for the frame's lock."""
        with self._frame_lock(frame_id):
            try:
                return path.read_bytes()
            except FileNotFoundError:
                pass
            data = store.get_image_frame(image_set_id, frame_id)
            self._save(path, data)
            return data

    @contextmanager
    def _frame_lock(self, frame_id: str) -> Iterator[None]:
        """Hold ``tmp/<frame id>.lock`` exclusively: processes sharing the cache fetch a frame
        one at a time. The kernel releases the lock of a process that dies; the holder removes
        the file, so a waiter then finds the frame (or, after a failed fetch, fetches itself).
        Without a usable lock file the frame is fetched anyway."""
        lock_path = self._tmp / f"{frame_id}.lock"
        descriptor = None
        if fcntl is not None:
            try:
                descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            except OSError:  # full or read-only disk, no flock on this file system
                if descriptor is not None:
                    with suppress(OSError):
                        lock_path.unlink()
                    os.close(descriptor)
                    descriptor = None
        try:
            yield
        finally:
            if descriptor is not None:
                with suppress(OSError):
                    lock_path.unlink()
                os.close(descriptor)

    def _shared(self, flights: dict[str, Future[T]], key: str, call: Callable[[], T]) -> T:
        """*call*'s result, one call for all threads asking for *key* at the same time."""
        with self._lock:
            flight = flights.get(key)
            leader = flight is None
            if leader:
                flight = flights[key] = Future()
        if not leader:
            return flight.result()
        try:
            result = call()
            flight.set_result(result)
            return result
        except BaseException as error:
            flight.set_exception(error)
            raise
        finally:
            with self._lock:
                del flights[key]

    def _save(self, path: Path, data: bytes) -> None:
        temporary = self._tmp / f"{path.name}.{uuid.uuid4().hex}"
        try:
            path.parent.mkdir(exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError as error:  # a full or read-only disk costs speed, not answers
            temporary.unlink(missing_ok=True)
            log.warning("frame cache: cannot keep %s: %s", path.name, error)
            return
        with self._lock:
            self._written += len(data)
            sweep = self._written > self.max_bytes // 10
            if sweep:
                self._written = 0
        if sweep:
            self._evict()

    def _evict(self) -> None:
        """Delete the least recently used frames until the cache holds 90% of its bound."""
        files = []
        for directory in self._root.iterdir():
            if directory == self._tmp or not directory.is_dir():
                continue
            for path in directory.iterdir():
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        if total <= self.max_bytes:
            return
        target = self.max_bytes * 9 // 10
        for _, size, path in sorted(files):
            path.unlink(missing_ok=True)
            total -= size
            if total <= target:
                break

    def _prefetch_frames(self, image_set_id: str, metadata: dict[str, Any]) -> None:
        with self._lock:
            if self._paused_until > time.monotonic():
                return  # the image set is not marked: its next metadata read prefetches
            if image_set_id in self._prefetched:
                self._prefetched.move_to_end(image_set_id)
                return
            self._prefetched[image_set_id] = None
            if len(self._prefetched) > _RECENT_IMAGE_SETS:
                self._prefetched.popitem(last=False)
        for entry in iter_instances(metadata):
            for frame in entry.image_frames:
                with self._lock:
                    if self._queued >= MAX_QUEUED:
                        return
                    self._queued += 1
                try:
                    self._prefetch.submit(self._warm, image_set_id, str(frame["ID"]))
                except RuntimeError:  # drained
                    return

    def _warm(self, image_set_id: str, frame_id: str) -> None:
        """Prefetch one frame unless it is cached, a request is fetching it, or prefetch is
        paused."""
        try:
            path = self._path(frame_id)
            with self._lock:
                skip = frame_id in self._flights or self._paused_until > time.monotonic()
            if path is not None and not skip and not path.exists():
                self._fetch_once(self._prefetch_store, image_set_id, frame_id, path)
        except StoreUnavailable as error:  # throttled: leave the store's rate to requests
            now = time.monotonic()
            with self._lock:
                pausing = self._paused_until <= now
                self._paused_until = now + PREFETCH_PAUSE_S
            if pausing:
                log.info("prefetch paused for %.0f s: %s", PREFETCH_PAUSE_S, error)
        except Exception as error:  # a prefetch is only a guess; the request will retry
            log.debug("prefetch of frame %s failed: %s", frame_id, error)
        finally:
            with self._lock:
                self._queued -= 1


def _kept(path: Path) -> dict[str, Any] | None:
    """The document kept at *path*, or None (none yet, evicted, or damaged on disk)."""
    try:
        metadata = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    _touch(path)
    return metadata


def _is_id(text: str) -> bool:
    return len(text) == 32 and text.isalnum() and text.isascii()


def _touch(path: Path) -> None:
    with suppress(OSError):  # evicted meanwhile
        os.utime(path)
