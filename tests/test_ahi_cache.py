"""The disk frame cache in front of the AHI store: hits, one fetch per frame, prefetch, bounds."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dicomweb_proxy.dicom.image_set import iter_instances
from dicomweb_proxy.stores.ahi import ONE_TRY, AhiStore, RetryPolicy, create_client
from dicomweb_proxy.stores.base import ImageSetNotFound, StoreUnavailable
from dicomweb_proxy.stores.cached import CachedStore

from .ahi_fixtures import DATASTORE, REGION, AhiSource


def frames_of(source: AhiSource, image_set_id: str) -> list[str]:
    metadata = source.store.get_image_set_metadata(image_set_id)
    return [frame["ID"] for entry in iter_instances(metadata) for frame in entry.image_frames]


def largest_image_set(source: AhiSource) -> tuple[str, list[str]]:
    ids = [summary.image_set_id for summary in source.store.list_image_sets()]
    image_set_id = max(ids, key=lambda i: len(frames_of(source, i)))
    return image_set_id, frames_of(source, image_set_id)


def cache_files(cache_dir: Path) -> list[Path]:
    return [p for p in (cache_dir / "frames" / DATASTORE).glob("??/*") if p.is_file()]


def test_frames_are_fetched_once_and_shared(ahi_source: AhiSource, ahi_store: AhiStore, tmp_path):
    cached = CachedStore(ahi_store, tmp_path, max_bytes=1 << 30)
    image_set_id, frame_ids = largest_image_set(ahi_source)
    ahi_source.faults(latency={"GetImageFrame": 0.3})
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: cached.get_image_frame(image_set_id, frame_ids[0]), range(8))
        )
    expected = ahi_source.store.get_image_frame(image_set_id, frame_ids[0])
    assert answers == [expected] * 8
    assert ahi_source.calls()["GetImageFrame"] == 1
    assert cached.get_image_frame(image_set_id, frame_ids[0]) == expected  # from disk
    assert ahi_source.calls()["GetImageFrame"] == 1
    assert [p.name for p in cache_files(tmp_path)] == [frame_ids[0]]
    assert not list((tmp_path / "frames" / DATASTORE / "tmp").iterdir())


def test_caches_of_several_workers_share_one_fetch_per_frame(
    ahi_source: AhiSource, ahi_store: AhiStore, tmp_path
):
    """Server worker processes each have a CachedStore on one folder: a frame one of them is
    fetching is waited for (a lock file per frame), not fetched again."""
    workers = [CachedStore(ahi_store, tmp_path, max_bytes=1 << 30) for _ in range(4)]
    image_set_id, frame_ids = largest_image_set(ahi_source)
    ahi_source.faults(latency={"GetImageFrame": 0.3})
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: workers[n % 4].get_image_frame(image_set_id, frame_ids[0]), range(8))
        )
    assert answers == [ahi_source.store.get_image_frame(image_set_id, frame_ids[0])] * 8
    assert ahi_source.calls()["GetImageFrame"] == 1
    assert not list((tmp_path / "frames" / DATASTORE / "tmp").iterdir())


def test_reading_metadata_prefetches_the_frames(
    ahi_source: AhiSource, ahi_store: AhiStore, tmp_path
):
    cached = CachedStore(ahi_store, tmp_path, max_bytes=1 << 30)
    image_set_id, frame_ids = largest_image_set(ahi_source)
    assert len(frame_ids) >= 10
    cached.get_image_set_metadata(image_set_id)
    cached.get_image_set_metadata(image_set_id)  # once per image set
    cached.drain()
    assert ahi_source.calls()["GetImageFrame"] == len(frame_ids)
    for frame_id in frame_ids:
        cached.get_image_frame(image_set_id, frame_id)
    assert ahi_source.calls()["GetImageFrame"] == len(frame_ids)


def test_the_cache_stays_within_its_bound(ahi_source: AhiSource, ahi_store: AhiStore, tmp_path):
    image_set_id, frame_ids = largest_image_set(ahi_source)
    size = len(ahi_source.store.get_image_frame(image_set_id, frame_ids[0]))
    bound = size * 4
    cached = CachedStore(ahi_store, tmp_path, max_bytes=bound)
    for frame_id in frame_ids:
        cached.get_image_frame(image_set_id, frame_id)
    total = sum(path.stat().st_size for path in cache_files(tmp_path))
    assert 0 < total <= bound * 1.5  # one sweep per tenth of the bound written
    assert frame_ids[-1] in {path.name for path in cache_files(tmp_path)}  # newest kept


def test_failed_fetches_are_not_cached(ahi_source: AhiSource, tmp_path):
    store = AhiStore(
        create_client(REGION, ahi_source.url), DATASTORE, retry=RetryPolicy(attempts=2)
    )
    cached = CachedStore(store, tmp_path, max_bytes=1 << 30)
    image_set_id, frame_ids = largest_image_set(ahi_source)
    ahi_source.faults(errors=[{"error": "ThrottlingException"}])
    with pytest.raises(StoreUnavailable):
        cached.get_image_frame(image_set_id, frame_ids[0])
    assert cache_files(tmp_path) == []
    ahi_source.faults()
    assert cached.get_image_frame(image_set_id, frame_ids[0])


def test_a_version_s_metadata_is_read_once_for_all_workers(
    ahi_source: AhiSource, ahi_store: AhiStore, tmp_path
):
    """A version names one document: the first worker keeps it on disk, the others read it
    there. The current document (no version) is not kept: it changes."""
    image_set_id, _ = largest_image_set(ahi_source)
    expected = ahi_source.store.get_image_set_metadata(image_set_id)
    version = ahi_source.store.get_image_set(image_set_id).version
    workers = [CachedStore(ahi_store, tmp_path, max_bytes=1 << 30) for _ in range(3)]
    assert [w.get_image_set_metadata(image_set_id, version) for w in workers] == [expected] * 3
    assert ahi_source.calls()["GetImageSetMetadata"] == 1
    workers[0].get_image_set_metadata(image_set_id)
    workers[1].get_image_set_metadata(image_set_id)
    assert ahi_source.calls()["GetImageSetMetadata"] == 3
    kept = tmp_path / "frames" / DATASTORE / "metadata" / f"{image_set_id}.{version}.json"
    kept.write_bytes(b'{"trunc')  # damaged on disk: read again, not a 500
    workers.append(CachedStore(ahi_store, tmp_path, max_bytes=1 << 30))
    assert workers[-1].get_image_set_metadata(image_set_id, version) == expected
    assert ahi_source.calls()["GetImageSetMetadata"] == 4
    for worker in workers:
        worker.drain()


def test_an_older_version_is_read_by_its_number(ahi_source: AhiSource, ahi_store: AhiStore):
    image_set_id, _ = largest_image_set(ahi_source)
    first = ahi_source.store.get_image_set_metadata(image_set_id)
    version = ahi_source.update_metadata(image_set_id, lambda m: {**m, "Extra": 1})
    assert ahi_store.get_image_set_metadata(image_set_id, version - 1) == first
    assert ahi_store.get_image_set_metadata(image_set_id, version)["Extra"] == 1
    with pytest.raises(ImageSetNotFound):
        ahi_store.get_image_set_metadata(image_set_id, version + 1)


def test_workers_reading_a_version_at_once_make_one_call(
    ahi_source: AhiSource, ahi_store: AhiStore, tmp_path
):
    image_set_id, _ = largest_image_set(ahi_source)
    version = ahi_source.store.get_image_set(image_set_id).version
    workers = [CachedStore(ahi_store, tmp_path, max_bytes=1 << 30) for _ in range(4)]
    ahi_source.faults(latency={"GetImageSetMetadata": 0.3})
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda worker: worker.get_image_set_metadata(image_set_id, version), workers)
        )
    assert answers == [ahi_source.store.get_image_set_metadata(image_set_id)] * 4
    assert ahi_source.calls()["GetImageSetMetadata"] == 1
    for worker in workers:
        worker.drain()


def test_kept_metadata_of_a_deleted_image_set_is_not_served(
    ahi_source: AhiSource, ahi_store: AhiStore, tmp_path
):
    """The index may list an image set AHI deleted (until the next event or sync): its kept
    document must not make it look alive."""
    image_set_id, _ = largest_image_set(ahi_source)
    version = ahi_source.store.get_image_set(image_set_id).version
    first = CachedStore(ahi_store, tmp_path, max_bytes=1 << 30)
    first.get_image_set_metadata(image_set_id, version)
    first.drain()
    ahi_source.delete(image_set_id)
    later = CachedStore(ahi_store, tmp_path, max_bytes=1 << 30)  # another worker, or 5 s on
    with pytest.raises(ImageSetNotFound):
        later.get_image_set_metadata(image_set_id, version)
    kept = tmp_path / "frames" / DATASTORE / "metadata" / f"{image_set_id}.{version}.json"
    assert not kept.exists()
    later.drain()


def prefetching_once(store: AhiStore, cache_dir: Path) -> CachedStore:
    """A cache whose one prefetch thread tries each frame once, as the server's does."""
    return CachedStore(
        store,
        cache_dir,
        max_bytes=1 << 30,
        prefetch_workers=1,
        prefetch_store=store.with_retry(ONE_TRY),
    )


def test_prefetch_tries_once_and_pauses_while_ahi_throttles(
    ahi_source: AhiSource, ahi_store: AhiStore, tmp_path
):
    """Prefetch is a guess: a throttled frame is not retried, and the frames after it are left
    to requests while AHI throttles."""
    cached = prefetching_once(ahi_store, tmp_path)
    image_set_id, frame_ids = largest_image_set(ahi_source)
    assert len(frame_ids) >= 10
    other = next(
        s.image_set_id for s in ahi_source.store.list_image_sets() if s.image_set_id != image_set_id
    )
    ahi_source.faults(errors=[{"error": "ThrottlingException", "operations": ["GetImageFrame"]}])
    cached.get_image_set_metadata(image_set_id)
    cached.drain()
    assert ahi_source.calls()["GetImageFrame"] == 1
    cached.get_image_set_metadata(other)  # paused: nothing queued
    assert ahi_source.calls()["GetImageFrame"] == 1
    assert cache_files(tmp_path) == []


def test_a_request_waiting_for_a_failed_prefetch_fetches_itself(
    ahi_source: AhiSource, ahi_store: AhiStore, tmp_path
):
    """A request for the frame a prefetch is fetching waits for that one try; when it fails the
    request fetches with its own retries instead of taking the prefetch's failure."""
    cached = prefetching_once(ahi_store, tmp_path)
    image_set_id, frame_ids = largest_image_set(ahi_source)
    ahi_source.faults(
        latency={"GetImageFrame": 0.5},
        errors=[{"error": "ThrottlingException", "count": 1, "operations": ["GetImageFrame"]}],
    )
    cached.get_image_set_metadata(image_set_id)  # prefetch starts on the first frame
    time.sleep(0.1)
    expected = ahi_source.store.get_image_frame(image_set_id, frame_ids[0])
    assert cached.get_image_frame(image_set_id, frame_ids[0]) == expected
    cached.drain()
    assert ahi_source.calls()["GetImageFrame"] == 2  # the failed prefetch, the request's own
