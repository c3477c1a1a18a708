"""Metadata bodies joined from fragments: valid JSON and gzip however they are cut, streamed
when not kept, the same bytes when kept, and the fragment cache within its bound."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.http.app import create_app
from dicomweb_proxy.retrieve import metadata
from dicomweb_proxy.retrieve.metadata import BodyWriter, Fragment, build_fragment
from dicomweb_proxy.services import open_services

from .sample_data import ImportedSamples


def _datastore_app(app: Starlette) -> Starlette:
    """The default datastore's application, mounted at its base path."""
    return next(route.app for route in app.routes if isinstance(route, Mount))


JSON_ONLY = {"Accept": "application/dicom+json", "Accept-Encoding": "identity"}
GZIP = {"Accept": "application/dicom+json", "Accept-Encoding": "gzip"}


def _body(fragments: list[Fragment], *, compressed: bool) -> bytes:
    writer = BodyWriter(gzip=compressed)
    return b"".join([writer.start(), *(c for f in fragments for c in writer.add(f)), writer.end()])


@pytest.mark.parametrize("count", [0, 1, 2, 7])
def test_fragments_join_into_json_and_into_one_gzip_member(count):
    documents = [{"00080018": {"vr": "UI", "Value": [f"1.2.{n}"]}, "n": "é" * n} for n in range(14)]
    fragments = [
        Fragment(raw, metadata._deflated(raw))
        for raw in (orjson.dumps(documents[n : n + 2])[1:-1] for n in range(0, 2 * count, 2))
    ]
    expected = [d for n in range(count) for d in documents[2 * n : 2 * n + 2]]
    plain = _body(fragments, compressed=False)
    assert orjson.loads(plain) == expected
    packed = _body(fragments, compressed=True)
    assert gzip.decompress(packed) == plain
    streaming = zlib.decompressobj(16 + zlib.MAX_WBITS)  # as browsers and httpx inflate
    assert streaming.decompress(packed) + streaming.flush() == plain and streaming.eof


def test_empty_fragments_add_nothing():
    assert _body([], compressed=False) == b"[]"
    empty, one = build_fragment([], "http://x"), Fragment(b"1", metadata._deflated(b"1"))
    assert _body([empty, one, empty], compressed=False) == b"[1]"
    assert gzip.decompress(_body([empty, one, empty], compressed=True)) == b"[1]"


def _get_all(app, paths_and_headers):
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pacs") as client:
            return [await client.get(path, headers=headers) for path, headers in paths_and_headers]

    return asyncio.run(run())


@pytest.mark.parametrize("imported_samples", ["sqlite"], indirect=True)
def test_a_study_body_is_streamed_in_fragments_then_kept(
    imported_samples: ImportedSamples, monkeypatch
):
    monkeypatch.setattr(metadata, "FRAGMENT_INSTANCES", 2)
    flags = {"data_dir": imported_samples.data_dir, "database_url": imported_samples.database_url}
    services = open_services(load_settings(flags, environ={}), upgrade=False)
    try:
        app = create_app(services)
        (studies,) = _get_all(app, [("/aetitle/studies", {})])
        counts = {s["0020000D"]["Value"][0]: s["00201208"]["Value"][0] for s in studies.json()}
        study = max(counts, key=counts.get)
        path = f"/aetitle/studies/{study}/metadata"
        first, first_gzip, kept, kept_gzip = _get_all(
            app, [(path, JSON_ONLY), (path, GZIP), (path, JSON_ONLY), (path, GZIP)]
        )
        assert "content-length" not in first.headers  # built while sent
        assert kept.headers["content-length"] == str(len(kept.content))
        assert first.content == kept.content
        assert len(first.json()) == counts[study] > 2
        assert first_gzip.headers["content-encoding"] == "gzip"
        assert first_gzip.content == kept_gzip.content == first.content  # httpx inflated both
        assert first.headers["etag"] == kept.headers["etag"] != first_gzip.headers["etag"]
        retrieval = _datastore_app(app).state.retrieval
        assert len(retrieval.metadata) >= counts[study] // 2  # kept as fragments, not whole
    finally:
        services.close()


@pytest.mark.parametrize("imported_samples", ["sqlite"], indirect=True)
def test_the_fragment_cache_stays_within_its_bound(imported_samples: ImportedSamples):
    flags = {"data_dir": imported_samples.data_dir, "database_url": imported_samples.database_url}
    services = open_services(load_settings(flags, environ={}), upgrade=False)
    try:
        app = create_app(services)
        retrieval = _datastore_app(app).state.retrieval
        retrieval.metadata.max_bytes = 20_000
        (studies,) = _get_all(app, [("/aetitle/studies", {})])
        paths = [
            (f"/aetitle/studies/{s['0020000D']['Value'][0]}/metadata", JSON_ONLY)
            for s in studies.json()
        ]
        for answer in _get_all(app, paths):
            assert answer.status_code == 200 and answer.json()
            assert retrieval.metadata.size <= 20_000
        assert len(retrieval.metadata) >= 1
    finally:
        services.close()
