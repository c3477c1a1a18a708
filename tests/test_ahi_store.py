"""The AHI store through real boto3 against the emulator: reads, errors, retries, timeouts."""

from __future__ import annotations

import time

import pytest

from dicomweb_proxy.dicom.image_set import iter_instances
from dicomweb_proxy.stores import ahi
from dicomweb_proxy.stores.ahi import AhiStore, RetryPolicy, create_client
from dicomweb_proxy.stores.base import (
    FrameNotFound,
    ImageSetNotFound,
    ReadOnlyStore,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)

from .ahi_fixtures import DATASTORE, QUICK_RETRY, REGION, AhiSource


def first_frame(store, image_set_id: str) -> str | None:
    for entry in iter_instances(store.get_image_set_metadata(image_set_id)):
        for frame in entry.image_frames:
            return frame["ID"]
    return None


def a_frame(store) -> tuple[str, str]:
    """(image set id, frame id) of the first image set that has frames."""
    for summary in store.list_image_sets():
        frame_id = first_frame(store, summary.image_set_id)
        if frame_id:
            return summary.image_set_id, frame_id
    raise AssertionError("no frames in the samples")


def test_reads_what_the_local_store_holds(ahi_source: AhiSource, ahi_store: AhiStore, monkeypatch):
    monkeypatch.setattr(ahi, "SEARCH_PAGE_SIZE", 2)  # several pages for 9 image sets
    local = ahi_source.store
    expected = sorted((s.image_set_id, s.version) for s in local.list_image_sets())
    listed = list(ahi_store.list_image_sets())
    assert sorted((s.image_set_id, s.version) for s in listed) == expected
    assert len(listed) == len(expected) == 9
    assert [s.created_at for s in listed] == sorted(s.created_at for s in listed)
    assert ahi_source.calls()["SearchImageSets"] == 5

    for image_set_id, _ in expected:
        assert ahi_store.get_image_set(image_set_id) == local.get_image_set(image_set_id)
        assert ahi_store.get_image_set_metadata(image_set_id) == local.get_image_set_metadata(
            image_set_id
        )
        frame_id = first_frame(local, image_set_id)
        if frame_id:
            assert ahi_store.get_image_frame(image_set_id, frame_id) == local.get_image_frame(
                image_set_id, frame_id
            )
    ahi_store.check()


def test_missing_resources_are_not_found(ahi_source: AhiSource, ahi_store: AhiStore):
    image_set_id, _ = a_frame(ahi_source.store)
    with pytest.raises(ImageSetNotFound):
        ahi_store.get_image_set("f" * 32)
    with pytest.raises(ImageSetNotFound):
        ahi_store.get_image_set_metadata("f" * 32)
    with pytest.raises(ImageSetNotFound):
        ahi_store.get_image_set("../etc")  # never sent: not an AHI id
    with pytest.raises(FrameNotFound):
        ahi_store.get_image_frame(image_set_id, "e" * 32)
    other = AhiStore(create_client(REGION, ahi_source.url), "f" * 32, retry=QUICK_RETRY)
    with pytest.raises(StoreError, match=r"datastore f{32} not found"):
        other.check()
    with pytest.raises(StoreError, match="not found"):
        list(other.list_image_sets())


def test_writes_are_refused_and_deletes_go_to_ahi(ahi_source: AhiSource, ahi_store: AhiStore):
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    with pytest.raises(ReadOnlyStore, match="AHI import jobs"):
        ahi_store.put_image_set(image_set_id, {}, {})
    ahi_store.delete_image_set(image_set_id)
    with pytest.raises(ImageSetNotFound):
        ahi_source.store.get_image_set(image_set_id)
    with pytest.raises(ImageSetNotFound):
        ahi_store.delete_image_set(image_set_id)


@pytest.mark.parametrize("error", ["ThrottlingException", "InternalServerException"])
def test_throttling_and_5xx_bursts_are_retried(
    ahi_source: AhiSource, ahi_store: AhiStore, error: str
):
    image_set_id, frame_id = a_frame(ahi_source.store)
    ahi_source.faults(errors=[{"error": error, "count": 4}])
    assert ahi_store.get_image_frame(image_set_id, frame_id)
    assert ahi_source.calls()["GetImageFrame"] == 5


def test_a_share_of_failures_is_absorbed(ahi_source: AhiSource, ahi_source_store_retrying):
    store = ahi_source_store_retrying
    ahi_source.faults(errors=[{"error": "ServiceUnavailableException", "fraction": 0.3}])
    image_set_ids = [s.image_set_id for s in ahi_source.store.list_image_sets()]
    for image_set_id in image_set_ids * 3:
        assert store.get_image_set_metadata(image_set_id)["ImageSetID"] == image_set_id
    assert sum(ahi_source.calls().values()) > len(image_set_ids) * 3


@pytest.fixture
def ahi_source_store_retrying(ahi_source: AhiSource) -> AhiStore:
    retry = RetryPolicy(attempts=12, base_delay=0.001, max_delay=0.01)
    return AhiStore(create_client(REGION, ahi_source.url), DATASTORE, retry=retry)


def test_throttled_after_retries_is_unavailable_with_retry_after(
    ahi_source: AhiSource, ahi_store: AhiStore
):
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    ahi_source.faults(errors=[{"error": "ThrottlingException"}])
    with pytest.raises(StoreUnavailable, match="ThrottlingException") as raised:
        ahi_store.get_image_set(image_set_id)
    assert raised.value.retry_after >= 1
    assert ahi_source.calls()["GetImageSet"] == QUICK_RETRY.attempts


def test_access_denied_is_not_retried(ahi_source: AhiSource, ahi_store: AhiStore):
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    ahi_source.faults(errors=[{"error": "AccessDeniedException", "operations": ["GetImageSet"]}])
    with pytest.raises(StoreAccessDenied, match="AccessDeniedException"):
        ahi_store.get_image_set(image_set_id)
    assert ahi_source.calls()["GetImageSet"] == 1
    assert ahi_store.get_image_set_metadata(image_set_id)  # other operations still work


def test_slow_answers_time_out_within_the_budget(ahi_source: AhiSource):
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    client = create_client(REGION, ahi_source.url, read_timeout=0.2)
    store = AhiStore(client, DATASTORE, retry=RetryPolicy(attempts=10, base_delay=0.01, budget=1))
    ahi_source.faults(latency={"GetImageSetMetadata": 3})
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="timeout"):
        store.get_image_set_metadata(image_set_id)
    assert time.monotonic() - started < 1.5
    ahi_source.faults(latency={"GetImageSetMetadata": 0.05})
    assert store.get_image_set_metadata(image_set_id)["ImageSetID"] == image_set_id


def test_the_control_endpoint_rejects_unknown_faults(ahi_source: AhiSource):
    import httpx

    answer = httpx.post(f"{ahi_source.url}/_emulator/faults", json={"errors": [{"error": "Nope"}]})
    assert answer.status_code == 400
    assert httpx.delete(f"{ahi_source.url}/_emulator/faults").json() == {
        "latency": {},
        "errors": [],
    }


def test_emulated_search_filters_sorts_and_pages(ahi_source: AhiSource):
    client = create_client(REGION, ahi_source.url)
    paginator = client.get_paginator("search_image_sets")
    by_date = {"sortField": "DICOMStudyDateAndTime", "sortOrder": "DESC"}
    pages = list(
        paginator.paginate(
            datastoreId=DATASTORE,
            searchCriteria={"sort": by_date},
            PaginationConfig={"PageSize": 4},
        )
    )
    found = [item for page in pages for item in page["imageSetsMetadataSummaries"]]
    assert len(pages) == 3 and len(found) == 9
    dates = [(i["DICOMTags"]["DICOMStudyDate"], i["DICOMTags"]["DICOMStudyTime"]) for i in found]
    assert dates == sorted(dates, reverse=True)

    patient = found[0]["DICOMTags"]["DICOMPatientId"]
    day = found[0]["DICOMTags"]["DICOMStudyDate"]
    criteria = {
        "filters": [
            {"operator": "EQUAL", "values": [{"DICOMPatientId": patient}]},
            {
                "operator": "BETWEEN",
                "values": [
                    {"DICOMStudyDateAndTime": {"DICOMStudyDate": day, "DICOMStudyTime": "000000"}},
                    {"DICOMStudyDateAndTime": {"DICOMStudyDate": day, "DICOMStudyTime": "235959"}},
                ],
            },
        ]
    }
    answer = client.search_image_sets(datastoreId=DATASTORE, searchCriteria=criteria)
    matched = answer["imageSetsMetadataSummaries"]
    assert matched and {i["DICOMTags"]["DICOMPatientId"] for i in matched} == {patient}
    assert answer["sort"] == {"sortField": "updatedAt", "sortOrder": "DESC"}

    bad = {"filters": [{"operator": "BETWEEN", "values": [{"DICOMPatientId": patient}] * 2}]}
    with pytest.raises(client.exceptions.ValidationException):
        client.search_image_sets(datastoreId=DATASTORE, searchCriteria=bad)
