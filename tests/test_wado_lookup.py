"""Instance resolution (retrieve/resolver.py) on the samples: what it reads from the store."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pydicom
import pytest

from dicomweb_proxy.index.database import create_index_engine
from dicomweb_proxy.index.reader import IndexReader
from dicomweb_proxy.retrieve.records import NotFound
from dicomweb_proxy.retrieve.resolver import Resolver
from dicomweb_proxy.stores.base import ImageSetNotFound
from dicomweb_proxy.stores.local import LocalStore

from .sample_data import ImportedSamples

_ON_SQLITE = pytest.mark.parametrize("imported_samples", ["sqlite"], indirect=True)


class CountingStore:
    """The local store, counting metadata reads (on AHI each is a GetImageSetMetadata call)."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.datastore_id = store.datastore_id
        self.metadata_reads = 0

    def get_image_set_metadata(
        self, image_set_id: str, version: int | None = None
    ) -> dict[str, Any]:
        self.metadata_reads += 1
        return self.store.get_image_set_metadata(image_set_id, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@_ON_SQLITE
def test_unknown_sop_instance_is_not_found_without_reading_the_series(
    imported_samples: ImportedSamples,
):
    """A random SOP Instance UID used to read and merge the whole series' metadata, every time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(imported_samples.files[0], stop_before_pixels=True)
    study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
    store = CountingStore(LocalStore(imported_samples.data_dir / "store", "local"))
    engine = create_index_engine(imported_samples.database_url)
    try:
        resolver = Resolver(store, IndexReader(engine))  # type: ignore[arg-type]
        for attempt in range(3):
            with pytest.raises(NotFound, match=rf"instance 1\.2\.3\.4\.{attempt} not found"):
                resolver.instance(study, series, f"1.2.3.4.{attempt}")
        assert store.metadata_reads == 0
        # A known instance still loads its series once, then comes from the recent map.
        record = resolver.instance(study, series, str(ds.SOPInstanceUID))
        assert record.sop_uid == ds.SOPInstanceUID
        reads = store.metadata_reads
        assert reads >= 1
        assert resolver.instance(study, series, str(ds.SOPInstanceUID)) is record
        with pytest.raises(NotFound):
            resolver.instance(study, series, "1.2.3.4.9")
        assert store.metadata_reads == reads
        with pytest.raises(NotFound):
            resolver.instance(study, "1.2.3", str(ds.SOPInstanceUID))  # not in that series
    finally:
        engine.dispose()


class _IndexWithoutVersions:
    """An index (like the metadata-index layout) that lists one image set and no versions."""

    def locate(self, datastore_id, study_uid, series_uid=None, sop_uid=None):
        return [("a" * 32, "1.2", "1.2.3")], {"a" * 32: None}


class _StoreGoingBack:
    """A store whose reads of the version answer 2, then an older 1 (a slow concurrent read)."""

    datastore_id = "local"

    def __init__(self) -> None:
        self.answers = [2, 1]

    def get_image_set(self, image_set_id: str) -> Any:
        return SimpleNamespace(version=self.answers.pop(0))


def test_store_versions_never_go_back():
    resolver = Resolver(_StoreGoingBack(), _IndexWithoutVersions(), version_ttl=0)  # type: ignore[arg-type]
    assert resolver.plan("1").versions == {"a" * 32: 2}
    assert resolver.plan("1").versions == {"a" * 32: 2}


def test_text_no_index_holds_is_not_looked_up():
    resolver = Resolver(_StoreGoingBack(), _IndexWithoutVersions())  # type: ignore[arg-type]
    for uids in (("山田",), ("1", "9" * 65), ("1", "2", "x\u00e9"), ("1 ",)):
        with pytest.raises(NotFound):
            resolver.plan(*uids)


class _StoreKeeping:
    """Keeps the documents of *versions* of one image set (the current one last) and records
    the versions asked for."""

    datastore_id = "local"

    def __init__(self, *versions: int) -> None:
        self.versions = versions
        self.asked: list[int | None] = []

    def get_image_set_metadata(self, image_set_id: str, version: int | None = None) -> Any:
        self.asked.append(version)
        if version is not None and version not in self.versions:
            raise ImageSetNotFound(image_set_id)
        sop_uid = f"1.2.{version or self.versions[-1]}"
        instances = {sop_uid: {"DICOM": {"SOPInstanceUID": sop_uid}, "ImageFrames": []}}
        series = {"1.2": {"DICOM": {"SeriesInstanceUID": "1.2"}, "Instances": instances}}
        return {
            "Patient": {"DICOM": {}},
            "Study": {"DICOM": {"StudyInstanceUID": "1"}, "Series": series},
        }


class _IndexAtVersionOne(_IndexWithoutVersions):
    def locate(self, datastore_id, study_uid, series_uid=None, sop_uid=None):
        return [("a" * 32, "1.2", "1.2.1")], {"a" * 32: 1}


def test_the_indexed_version_is_read():
    store = _StoreKeeping(1, 2)
    resolver = Resolver(store, _IndexAtVersionOne())  # type: ignore[arg-type]
    assert [record.sop_uid for record in resolver.select("1")] == ["1.2.1"]
    assert store.asked == [1]


def test_a_version_the_store_no_longer_has_is_read_as_the_current_one():
    store = _StoreKeeping(2)
    resolver = Resolver(store, _IndexAtVersionOne())  # type: ignore[arg-type]
    with pytest.raises(NotFound):  # the current document no longer holds instance 1.2.1
        resolver.select("1")
    assert store.asked == [1, None]
