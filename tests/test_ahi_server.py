"""End to end: the real server with ``--store ahi`` against the emulator answers as it does
with the local store on the same image sets, and maps AHI failures to 404/502/503."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .ahi_fixtures import DATASTORE, AhiSource, ahi_server
from .live_server import live_server


@dataclass
class Servers:
    ahi: str
    local: str
    source: AhiSource


@pytest.fixture
def servers(ahi_source: AhiSource, tmp_path: Path) -> Iterator[Servers]:
    with (
        ahi_server(ahi_source, tmp_path / "proxy") as ahi,
        live_server(ahi_source.data_dir, "--datastore-id", DATASTORE) as local,
    ):
        yield Servers(ahi, local, ahi_source)


def series_list(base: str) -> list[tuple[str, str]]:
    answer = httpx.get(f"{base}/series", params={"includefield": "0020000D"}).json()
    return sorted((item["0020000D"]["Value"][0], item["0020000E"]["Value"][0]) for item in answer)


def same_answer(servers: Servers, path: str, **kwargs) -> httpx.Response:
    """GET *path* from both servers; assert the same status and body (base URLs aside)."""
    ahi = httpx.get(f"{servers.ahi}{path}", timeout=30, **kwargs)
    local = httpx.get(f"{servers.local}{path}", timeout=30, **kwargs)
    assert ahi.status_code == local.status_code, (path, ahi.text)
    assert ahi.content.replace(servers.ahi.encode(), b"BASE") == local.content.replace(
        servers.local.encode(), b"BASE"
    ), path
    return ahi


def test_ahi_server_answers_like_the_local_one(servers: Servers):
    health = httpx.get(f"{servers.ahi}/health")
    assert health.json() == {"status": "ok", "index": "ok", "store": "ok"}
    studies = same_answer(servers, "/studies").json()
    assert len(studies) == 5
    for study_uid, series_uid in series_list(servers.ahi):
        path = f"/studies/{study_uid}/series/{series_uid}"
        metadata = same_answer(servers, f"{path}/metadata").json()
        framed = [item for item in metadata if "00280010" in item]
        if framed:
            sop_uid = framed[0]["00080018"]["Value"][0]
            frame = same_answer(
                servers,
                f"{path}/instances/{sop_uid}/frames/1",
                headers={"Accept": "application/octet-stream"},
            )
            assert len(frame.content) > 1000
    calls = servers.source.calls()
    assert calls["GetImageSetMetadata"] >= 9
    assert calls["GetImageFrame"] >= 1


def test_ahi_failures_become_404_502_and_503(servers: Servers):
    (throttled, denied, deleted, *_) = series_list(servers.ahi)
    source = servers.source

    source.faults(errors=[{"error": "ThrottlingException", "operations": ["GetImageSetMetadata"]}])
    # The store retries throttling with backoff for the request budget (ahi_request_retry_s,
    # 3 s) before it gives up with 503.
    answer = httpx.get(
        f"{servers.ahi}/studies/{throttled[0]}/series/{throttled[1]}/metadata", timeout=30
    )
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) >= 1

    source.faults(
        errors=[{"error": "AccessDeniedException", "operations": ["GetImageSetMetadata"]}]
    )
    answer = httpx.get(f"{servers.ahi}/studies/{denied[0]}/series/{denied[1]}/metadata")
    assert answer.status_code == 502
    assert "denied access" in answer.text
    assert httpx.get(f"{servers.ahi}/health").status_code == 200  # GetDatastore still answers

    source.faults()
    for image_set_id in _image_sets_of(source, deleted[1]):
        source.store.delete_image_set(image_set_id)  # deleted in AHI, index not synced yet
    answer = httpx.get(f"{servers.ahi}/studies/{deleted[0]}/series/{deleted[1]}/metadata")
    assert answer.status_code == 404
    for study_uid, series_uid in (throttled, denied):
        same_answer(servers, f"/studies/{study_uid}/series/{series_uid}/metadata")


def _image_sets_of(source: AhiSource, series_uid: str) -> list[str]:
    return [
        summary.image_set_id
        for summary in source.store.list_image_sets()
        if series_uid
        in source.store.get_image_set_metadata(summary.image_set_id)["Study"]["Series"]
    ]
