"""The resolver's kept documents: one load per series under concurrency, bounded by bytes,
revalidated against the index (a newer version or a deletion is seen by every process)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dicomweb_proxy.retrieve.records import NotFound
from dicomweb_proxy.retrieve.resolver import Resolver
from dicomweb_proxy.stores.base import ImageSetNotFound

STUDY = "1.2"


def _document(image_set: str, instances: int, version: int) -> dict[str, Any]:
    series_uid = f"{STUDY}.{image_set}"
    blocks = {
        f"{series_uid}.{n}": {
            "DICOM": {"SOPInstanceUID": f"{series_uid}.{n}", "InstanceNumber": n},
            "ImageFrames": [{"ID": f"{image_set}-{version}-{n}"}],
        }
        for n in range(instances)
    }
    return {
        "Patient": {"DICOM": {"PatientName": "A^B"}},
        "Study": {
            "DICOM": {"StudyInstanceUID": STUDY},
            "Series": {series_uid: {"DICOM": {"Modality": "CT"}, "Instances": blocks}},
        },
    }


class Store:
    """Image sets of *instances* each, at a version a test may raise; reads are counted and
    may be slowed down."""

    datastore_id = "local"

    def __init__(self, instances: int = 3, delay: float = 0.0) -> None:
        self.instances = instances
        self.delay = delay
        self.versions: dict[str, int] = {}
        self.reads = 0
        self._lock = threading.Lock()

    def get_image_set_metadata(self, image_set_id: str, version: int | None = None) -> dict:
        with self._lock:
            self.reads += 1
        time.sleep(self.delay)
        current = self.versions.get(image_set_id)
        if current is None or version not in (None, current):
            raise ImageSetNotFound(image_set_id)
        return _document(image_set_id, self.instances, current)


class Index:
    """Lists what the store holds, at the store's versions; counts version checks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.version_checks = 0

    def locate(self, datastore_id, study_uid, series_uid=None, sop_uid=None):
        rows = [
            (image_set, f"{STUDY}.{image_set}", f"{STUDY}.{image_set}.{n}")
            for image_set in sorted(self.store.versions)
            for n in range(self.store.instances)
        ]
        rows = [r for r in rows if series_uid in (None, r[1]) and sop_uid in (None, r[2])]
        return rows, {r[0]: self.store.versions[r[0]] for r in rows}

    def versions(self, datastore_id, image_set_ids):
        self.version_checks += 1
        return {i: self.store.versions[i] for i in image_set_ids if i in self.store.versions}


def _key(image_set: str, n: int) -> tuple[str, str, str]:
    return STUDY, f"{STUDY}.{image_set}", f"{STUDY}.{image_set}.{n}"


def test_concurrent_requests_for_a_series_read_its_document_once():
    store = Store(instances=20, delay=0.2)
    store.versions["a"] = 1
    resolver = Resolver(store, Index(store))  # type: ignore[arg-type]
    with ThreadPoolExecutor(16) as pool:
        records = list(pool.map(lambda n: resolver.instance(*_key("a", n % 20)), range(64)))
    assert store.reads == 1
    assert {record.sop_uid for record in records} == {_key("a", n)[2] for n in range(20)}


def test_a_failed_load_is_shared_then_retried():
    store = Store(delay=0.1)
    resolver = Resolver(store, Index(store))  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        resolver.instance(*_key("a", 0))  # nothing indexed: no read at all
    assert store.reads == 0
    store.versions["a"] = 1
    assert resolver.instance(*_key("a", 0)).frame_ids == ("a-1-0",)


def test_kept_documents_stay_within_their_byte_bound():
    store = Store(instances=50)
    for n in range(40):
        store.versions[f"s{n}"] = 1
    resolver = Resolver(store, Index(store), max_bytes=200_000)  # type: ignore[arg-type]
    for n in range(40):
        for i in range(50):
            resolver.instance(*_key(f"s{n}", i))
        assert resolver.size <= 200_000
    assert resolver.size > 0
    assert resolver.cached_instance(_key("s39", 0)) is not None  # the most recent is kept
    assert resolver.cached_instance(_key("s0", 0)) is None  # the oldest is not


def test_a_newer_version_is_seen_after_revalidate_s():
    store = Store()
    store.versions["a"] = 1
    index = Index(store)
    resolver = Resolver(store, index, revalidate_s=0.05)  # type: ignore[arg-type]
    first = resolver.instance(*_key("a", 0))
    assert resolver.cached_instance(_key("a", 0)) is first  # confirmed moments ago
    store.versions["a"] = 2  # another process wrote a new version
    time.sleep(0.06)
    assert resolver.cached_instance(_key("a", 0)) is None  # due for a check: not served blind
    assert resolver.instance(*_key("a", 0)).frame_ids == ("a-2-0",)
    assert index.version_checks == 1


def test_an_unchanged_version_costs_one_indexed_check_and_no_read():
    store = Store()
    store.versions["a"] = 1
    index = Index(store)
    resolver = Resolver(store, index, revalidate_s=0.05)  # type: ignore[arg-type]
    first = resolver.instance(*_key("a", 0))
    time.sleep(0.06)
    assert resolver.instance(*_key("a", 0)) is first
    assert (store.reads, index.version_checks) == (1, 1)
    assert resolver.cached_instance(_key("a", 0)) is first  # confirmed again


def test_a_deleted_image_set_is_not_served_after_revalidate_s():
    store = Store()
    store.versions["a"] = 1
    resolver = Resolver(store, Index(store), revalidate_s=0.05)  # type: ignore[arg-type]
    resolver.instance(*_key("a", 1))
    del store.versions["a"]
    time.sleep(0.06)
    with pytest.raises(NotFound):
        resolver.instance(*_key("a", 1))
    assert resolver.size == 0


def test_plans_at_a_newer_version_replace_the_kept_document():
    store = Store()
    store.versions["a"] = 1
    resolver = Resolver(store, Index(store))  # type: ignore[arg-type]
    assert resolver.select(STUDY)[0].frame_ids == ("a-1-0",)
    size = resolver.size
    store.versions["a"] = 2
    assert resolver.select(STUDY)[0].frame_ids == ("a-2-0",)
    assert resolver.size == pytest.approx(size, rel=0.2)  # replaced, not added
    assert resolver.cached_instance(_key("a", 0)).frame_ids == ("a-2-0",)
