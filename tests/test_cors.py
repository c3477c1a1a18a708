"""CORS as a viewer on another origin meets it: OHIF at http://viewer.example:3000 asking frames
with a parameterised Accept (not CORS-safelisted, so preflighted), an Authorization header and
byte ranges, and reading Content-Type, Content-Range, Warning and ETag from the answers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .live_server import live_server
from .sample_data import ImportedSamples

pytestmark = pytest.mark.parametrize("imported_samples", ["sqlite"], indirect=True)

VIEWER = "http://viewer.example:3000"
OHIF_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax="*"'


@pytest.fixture(scope="module")
def cors_server(imported_samples: ImportedSamples) -> Iterator[str]:
    with live_server(
        imported_samples.data_dir,
        "--cors-origin",
        VIEWER,
        database_url=imported_samples.database_url,
    ) as base:
        yield base


@pytest.fixture(scope="module")
def frame_url(cors_server: str) -> str:
    studies = httpx.get(f"{cors_server}/studies", params={"ModalitiesInStudy": "CT"}).json()
    study = studies[0]["0020000D"]["Value"][0]
    instances = httpx.get(f"{cors_server}/studies/{study}/instances").json()
    series = instances[0]["0020000E"]["Value"][0]
    sop = instances[0]["00080018"]["Value"][0]
    return f"{cors_server}/studies/{study}/series/{series}/instances/{sop}/frames/1"


def _preflight(url: str, headers: str, origin: str = VIEWER) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": headers,
        },
    )


def _listed(response: httpx.Response, header: str) -> set[str]:
    return {item.strip().lower() for item in response.headers.get(header, "").split(",")}


def test_preflight_allows_what_viewers_send(frame_url: str) -> None:
    response = _preflight(frame_url, "accept,authorization,range,if-none-match")
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == VIEWER
    assert "GET" in response.headers["access-control-allow-methods"]
    allowed = _listed(response, "access-control-allow-headers")
    assert {"accept", "authorization", "range", "if-none-match"} <= allowed
    assert int(response.headers["access-control-max-age"]) >= 600


def test_preflight_from_another_origin_is_refused(frame_url: str) -> None:
    response = _preflight(frame_url, "accept", origin="http://evil.example")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_frame_answer_exposes_the_headers_viewers_read(frame_url: str) -> None:
    headers = {"Origin": VIEWER, "Accept": OHIF_FRAMES, "Authorization": "Bearer x"}
    whole = httpx.get(frame_url, headers=headers)
    assert whole.status_code == 200
    assert whole.headers["access-control-allow-origin"] == VIEWER
    exposed = _listed(whole, "access-control-expose-headers")
    assert {"content-type", "content-length", "content-range", "warning", "etag"} <= exposed
    part = httpx.get(frame_url, headers={**headers, "Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.headers["content-range"].startswith("bytes 0-99/")
    assert part.headers["access-control-allow-origin"] == VIEWER


def test_search_and_capabilities_answer_cross_origin(cors_server: str) -> None:
    search = httpx.get(f"{cors_server}/studies", params={"limit": 1}, headers={"Origin": VIEWER})
    assert search.status_code == 200
    assert search.headers["access-control-allow-origin"] == VIEWER
    # A plain OPTIONS (no preflight) is the capabilities transaction, CORS headers included.
    capabilities = httpx.options(
        f"{cors_server}/", headers={"Origin": VIEWER, "Accept": "application/json"}
    )
    assert capabilities.status_code == 200
    assert capabilities.headers["access-control-allow-origin"] == VIEWER
    assert capabilities.json()["resources"]


def test_no_cors_headers_without_configured_origins(samples_server: str) -> None:
    response = httpx.get(
        f"{samples_server}/studies", params={"limit": 1}, headers={"Origin": VIEWER}
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
