"""The front page at ``/``, ``{base}`` and ``{base}/`` (in process): HTML for browsers, JSON on
request, each datastore's counts from the index, links to health, capabilities and the viewer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.http.app import create_app
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.services import Services, open_services

JSON = {"Accept": "application/json"}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    (tmp_path / "viewer").mkdir()
    (tmp_path / "viewer" / "index.html").write_text("<!doctype html>")
    flags = {"data_dir": tmp_path / "data", "viewer_dir": tmp_path / "viewer"}
    opened = open_services(load_settings(flags, environ={}))
    files = generate_ct_series(tmp_path / "ct", n_studies=1, slices=3, size=16)
    Importer(opened.store, opened.index).run(files)
    yield opened
    opened.close()


def get(services: Services, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://pacs:8080") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(send())


def test_the_printed_url_and_the_root_answer_the_front_page(services):
    for path in ("/", "/aetitle", "/aetitle/"):
        response = get(services, path, JSON)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        assert response.json()["service"] == "dicomweb-proxy"
        (datastore,) = response.json()["datastores"]
        assert datastore == {
            "name": "default",
            "url": "http://pacs:8080/aetitle",
            "index": "ok",
            "studies": 1,
            "series": 1,
            "instances": 3,
            "health": "http://pacs:8080/aetitle/health",
            "capabilities": "http://pacs:8080/aetitle/capabilities",
        }
        assert response.json()["viewer"] == "/viewer/"


def test_a_browser_gets_html(services):
    page = get(services, "/aetitle", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "1 studies, 1 series, 3 instances" in page.text
    assert 'href="http://pacs:8080/aetitle/capabilities"' in page.text
    assert 'href="/viewer/"' in page.text
    assert "Accept" in page.headers["vary"]


def test_an_index_that_fails_is_shown_not_a_500(services, monkeypatch):
    def broken() -> None:
        raise OSError("index gone")

    monkeypatch.setattr(services.reader, "counts", broken)
    response = get(services, "/", JSON)
    assert response.status_code == 200
    assert response.json()["datastores"][0]["index"] == "unavailable"
    assert "index unavailable" in get(services, "/").text


def test_the_front_page_counts_on_the_index_pool(services, monkeypatch):
    pooled = []
    run = services.capacity.index.run

    async def counted(function, *args):
        pooled.append(function)
        return await run(function, *args)

    monkeypatch.setattr(services.capacity.index, "run", counted)
    assert get(services, "/aetitle", JSON).status_code == 200
    assert pooled == [services.reader.counts]


def test_options_on_the_base_still_answers_the_capabilities(services):
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://pacs:8080") as client:
            return await client.options("/aetitle")

    response = asyncio.run(send())
    assert response.status_code == 200
    assert "wadl" in response.headers["content-type"]
