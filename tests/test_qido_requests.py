"""QIDO-RS requests in-process (httpx.ASGITransport) on every database: parameters the server
does not support, the Warning header, when X-Total-Count is sent, HEAD, the index thread pool
and the statement timeout."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text

import dicomweb_proxy.index.reader as reader_module
import dicomweb_proxy.index.search as search_module
from dicomweb_proxy.config import load_settings
from dicomweb_proxy.http.app import create_app
from dicomweb_proxy.services import Services, open_services

from .qido_expected import read_sources
from .sample_data import ImportedSamples
from .test_qido_timeout import SLOW

pytestmark = pytest.mark.parametrize(
    "imported_samples",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
    indirect=True,
)

HOST = "http://pacs.example:8080"
BASE = f"{HOST}/aetitle"
VIEWER = "http://viewer.example:3000"
TRUNCATED = (
    f'299 {BASE}: "The number of results exceeded the maximum supported by the server. '
    'Additional results can be requested."'
)
COUNT = {"Prefer": "count=exact"}


def unsupported(*names: str) -> str:
    return f'299 {BASE}: "The following parameters are not supported: {", ".join(names)}"'


@dataclass
class Client:
    services: Services

    def request(
        self, method: str, path: str, params: object = None, headers: dict | None = None
    ) -> httpx.Response:
        app = create_app(self.services)

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=HOST) as client:
                return await client.request(
                    method, "/aetitle" + path, params=params, headers=headers
                )

        return asyncio.run(send())

    def get(self, path: str, params: object = None, headers: dict | None = None):
        return self.request("GET", path, params, headers)


@contextmanager
def serving(samples: ImportedSamples, **settings: object) -> Iterator[Client]:
    flags = {
        "data_dir": samples.data_dir,
        "database_url": samples.database_url,
        "datastore_id": samples.datastore_id,
        **settings,
    }
    services = open_services(load_settings(flags, environ={}), upgrade=False)
    try:
        yield Client(services)
    finally:
        services.close()


@pytest.fixture(scope="module")
def client(imported_samples: ImportedSamples) -> Iterator[Client]:
    with serving(imported_samples) as serving_client:
        yield serving_client


@pytest.fixture(scope="module")
def total(imported_samples: ImportedSamples) -> int:
    return len(read_sources(tuple(imported_samples.files)).studies)


def _uids(response: httpx.Response, tag: str = "0020000D") -> list[str]:
    assert response.status_code == 200, response.text
    return [dataset[tag]["Value"][0] for dataset in response.json()]


def test_cache_busters_and_charset_are_ignored_with_a_warning(client):
    plain = client.get("/studies")
    busted = client.get("/studies", {"_": "1700000000", "charset": "utf-8"})
    assert _uids(busted) == _uids(plain)
    assert busted.headers.get_list("warning") == [unsupported("_", "charset")]
    assert busted.headers["x-total-count"] == plain.headers["x-total-count"]
    assert "warning" not in plain.headers


@pytest.mark.parametrize(
    ("path", "ignored", "named"),
    [
        ("/studies", {"NoSuchAttribute": "1"}, "NoSuchAttribute"),
        ("/studies", {"PatientNam": "Smith"}, "PatientNam"),  # a typo finds everything
        ("/studies", {"PatientAge": "999Y"}, "PatientAge"),  # no column
        ("/studies", {"00104000": "x"}, "00104000"),  # PatientComments, by tag
        ("/studies", {"ReferencedStudySequence": "x"}, "ReferencedStudySequence"),
        ("/series", {"00400275.00401001": "RP1"}, "00400275.00401001"),
        (
            "/series",
            {"RequestAttributesSequence.ScheduledProcedureStepID": "1"},
            "RequestAttributesSequence.ScheduledProcedureStepID",
        ),
        (
            "/studies",
            {"Patient Name": "x", 'a"\\b': "y", "山田": "z"},
            "Patient%20Name, a%22%5Cb, %E5%B1%B1%E7%94%B0",
        ),
    ],
)
def test_parameters_the_index_cannot_match_are_ignored_and_named(client, path, ignored, named):
    """The same answer as without them, and a Warning naming them as the client sent them
    (percent-encoded, so nothing in a name can break the header)."""
    plain = client.get(path, {"limit": 500})
    response = client.get(path, {"limit": 500, **ignored})
    tag = "0020000D" if path == "/studies" else "0020000E"
    assert _uids(response, tag) == _uids(plain, tag)
    assert response.headers.get_list("warning") == [unsupported(named)]


def test_an_attribute_that_is_not_matched_is_still_returned(client):
    response = client.get("/studies", {"AccessionNumber": "ACC-1001", "PatientAge": "999Y"})
    (study,) = response.json()
    assert study["00101010"]["Value"]  # the study's own age, not matched against 999Y
    assert response.headers["warning"] == unsupported("PatientAge")
    universal = client.get("/studies", {"AccessionNumber": "ACC-1001", "PatientAge": ""})
    assert universal.json()[0]["00101010"] == study["00101010"]
    assert "warning" not in universal.headers  # universal matching is supported


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "offset=-1",
        "StudyDate=2024",
        "StudyDate=20240101-20240202-20240303",
        "StudyInstanceUID=1.2.3,1.2.abc",
        "SeriesNumber=two",
        "fuzzymatching=maybe",
        "includefield=NoSuchAttribute",
        "orderby=PatientAge",
        "PatientComments=a%00b",
    ],
)
def test_bad_values_of_known_keys_stay_a_400(client, query):
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/studies?_=1&{query}")
        assert response.status_code == 400, (method, response.text)
    assert client.get(f"/studies?{query}").text.startswith(query.split("=")[0])


def test_the_total_is_sent_when_the_page_ends_the_results_or_when_asked(client, total):
    assert client.get("/studies").headers["x-total-count"] == str(total)  # one page: all
    full = client.get("/studies", {"limit": 3})
    assert len(full.json()) == 3 and "x-total-count" not in full.headers
    asked = client.get("/studies", {"limit": 3}, COUNT)
    assert _uids(asked) == _uids(full) and asked.headers["x-total-count"] == str(total)
    assert client.get(
        "/studies", {"limit": 3}, {"Prefer": 'return=minimal, count="exact"'}
    ).headers["x-total-count"] == str(total)
    last = client.get("/studies", {"limit": 3, "offset": total - 2})
    assert len(last.json()) == 2 and last.headers["x-total-count"] == str(total)
    exactly = client.get("/studies", {"limit": total})
    assert exactly.headers["x-total-count"] == str(total)  # one row more was not there
    past = client.get("/studies", {"offset": total + 5})
    assert past.json() == [] and "x-total-count" not in past.headers
    assert client.get("/studies", {"offset": total + 5}, COUNT).headers["x-total-count"] == (
        str(total)
    )
    assert client.get("/studies", {"limit": 0}).headers["x-total-count"] == str(total)
    none = client.get("/studies", {"PatientID": "nobody"})
    assert (none.json(), none.headers["x-total-count"]) == ([], "0")


def test_a_cut_page_has_its_warning_and_the_total_only_when_asked(imported_samples, total):
    with serving(imported_samples, max_page_size=5) as small:
        cut = small.get("/studies", {"_": "1"})
        assert len(cut.json()) == 5 and "x-total-count" not in cut.headers
        # Two warnings, two header lines: the ignored parameter, then the cut page.
        assert cut.headers.get_list("warning") == [unsupported("_"), TRUNCATED]
        counted = small.get("/studies", headers=COUNT)
        assert counted.headers["x-total-count"] == str(total)
        assert counted.headers.get_list("warning") == [TRUNCATED]
        asked_less = small.get("/studies", {"limit": 3})
        assert "warning" not in asked_less.headers
        end = small.get("/studies", {"offset": total - 5})
        assert len(end.json()) == 5 and "warning" not in end.headers  # nothing follows
        assert end.headers["x-total-count"] == str(total)


@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("/studies", {}, {}),
        ("/studies", {"limit": 2, "_": "1"}, {}),
        ("/studies", {"limit": 2}, COUNT),
        ("/series", {"Modality": "CT", "includefield": "all"}, {}),
        ("/instances", {"offset": 10**6}, {}),
        ("/studies", {"limit": 0}, {}),
    ],
)
def test_head_answers_the_headers_of_get_without_a_body(client, monkeypatch, path, params, headers):
    get = client.get(path, params, headers)
    monkeypatch.setattr(search_module, "page_datasets", _no_datasets)
    head = client.request("HEAD", path, params, headers)
    assert (head.status_code, head.content) == (200, b"")
    assert "content-length" not in head.headers
    for name in ("content-type", "x-total-count", "warning"):
        assert head.headers.get_list(name) == get.headers.get_list(name), name


def _no_datasets(*args: object) -> list:
    raise AssertionError("HEAD built datasets")


def test_a_head_on_a_cut_page_has_its_warning(imported_samples):
    with serving(imported_samples, max_page_size=5) as small:
        assert small.request("HEAD", "/studies").headers["warning"] == TRUNCATED


def test_searches_run_in_the_index_thread_pool(client, monkeypatch):
    threads = []
    search = client.services.reader.search

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return search(*args, **kwargs)

    monkeypatch.setattr(client.services.reader, "search", recorded)
    assert client.get("/series").status_code == 200
    assert client.request("HEAD", "/instances").status_code == 200
    assert len(threads) == 2 and all(name.startswith("index") for name in threads), threads


def test_a_search_that_runs_too_long_is_a_503_and_the_limit_stays_with_searches(
    imported_samples, monkeypatch
):
    real = reader_module.search

    def slow(connection, *args, **kwargs):
        connection.execute(text(SLOW), {"rows": 1000}).scalar()  # minutes, without the limit
        return real(connection, *args, **kwargs)

    with serving(imported_samples, query_timeout_s=0.2) as limited:
        monkeypatch.setattr(reader_module, "search", slow)
        for method in ("GET", "HEAD"):
            response = limited.request(method, "/studies")
            assert response.status_code == 503, response.text
        assert "took longer than 0.2 s" in limited.get("/series").text
        assert "narrow" in limited.get("/series").text
        monkeypatch.undo()
        assert limited.get("/studies").status_code == 200
        # The index's writers use the same pooled connections, without the limit.
        with limited.services.index.connect() as connection:
            assert connection.execute(text(SLOW), {"rows": 10}).scalar() == 10**7


def test_cors_lets_a_viewer_read_the_warning_and_ask_for_the_total(imported_samples):
    with serving(imported_samples, cors_origins=VIEWER) as cors:
        preflight = cors.request(
            "OPTIONS",
            "/studies",
            headers={
                "Origin": VIEWER,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "prefer",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert "prefer" in preflight.headers["access-control-allow-headers"].lower()
        response = cors.get("/studies", {"_": "1", "limit": 1}, {"Origin": VIEWER, **COUNT})
        exposed = {
            name.strip().lower()
            for name in response.headers["access-control-expose-headers"].split(",")
        }
        assert {"warning", "x-total-count"} <= exposed
        assert "warning" in response.headers and "x-total-count" in response.headers
