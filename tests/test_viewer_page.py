"""The /viewer route on a small stand-in for OHIF's dist folder: generated app-config.js,
root-relative references moved under /viewer, SPA fallback, gzip, caching, no escapes."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette

from dicomweb_proxy.config import ConfigError, load_settings
from dicomweb_proxy.http import viewer

INDEX = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script>'
    '<link rel="manifest" href="/manifest.json"><script src="/app-config.js"></script>'
    '<script defer src="/app.bundle.0f6159c501addfe9.js"></script>'
    '<link href="/app.bundle.css" rel="stylesheet"><a href="//cdn.example/x">x</a>'
    "</head><body></body></html>"
)
BUNDLE = 'var x = 1;\n__webpack_require__.p = "/";\n' + "/* padding */\n" * 200


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "app-config.js").write_text("window.config = {shipped: true};")
    (folder / "app.bundle.0f6159c501addfe9.js").write_text(BUNDLE)
    (folder / "app.bundle.css").write_text("@font-face{src:url(/a34f9d1faa5f3315.woff2)}")
    (folder / "manifest.json").write_text('{"icons": [{"src": "/assets/icon.png"}]}')
    (folder / "codec.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "secret.txt").write_text("not served")
    return folder


class _Client:
    """Synchronous requests to the ASGI app, in process."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, path: str, **kwargs) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://pacs.example:8080"
            ) as client:
                return await client.get(path, **kwargs)

        return asyncio.run(send())


def _client(folder: Path | None, **settings) -> _Client:
    flags = {"viewer_dir": folder, **settings} if folder else settings
    config = load_settings(flags, environ={})
    app = Starlette(routes=viewer.routes(config))
    app.state.services = SimpleNamespace(settings=config)
    return _Client(app)


def test_app_config_points_at_this_server(dist: Path) -> None:
    response = _client(dist).get("/viewer/app-config.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-store"
    text = response.text
    assert "window.__filename" in text
    assert '"qidoRoot": "http://pacs.example:8080/aetitle"' in text
    assert '"wadoRoot": "http://pacs.example:8080/aetitle"' in text
    assert '"routerBasename": "/viewer"' in text
    assert '"imageRendering": "wadors"' in text and '"supportsWildcard": true' in text


def test_app_config_behind_a_proxy(dist: Path) -> None:
    client = _client(dist, public_base_url="https://pacs.example.org/dicomweb")
    text = client.get("/viewer/app-config.js", headers={"X-Forwarded-Prefix": "/imaging"}).text
    assert '"qidoRoot": "https://pacs.example.org/dicomweb"' in text
    assert '"routerBasename": "/imaging/viewer"' in text


def test_index_and_assets_are_moved_under_viewer(dist: Path) -> None:
    client = _client(dist)
    page = client.get("/viewer/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert 'window.PUBLIC_URL="/viewer/"' in page.text
    assert 'src="/viewer/app-config.js"' in page.text
    assert 'src="/viewer/app.bundle.0f6159c501addfe9.js"' in page.text
    assert 'href="/viewer/app.bundle.css"' in page.text
    assert 'href="//cdn.example/x"' in page.text  # protocol-relative: left alone
    bundle = client.get("/viewer/app.bundle.0f6159c501addfe9.js")
    assert '__webpack_require__.p = "/viewer/";' in bundle.text
    assert bundle.headers["cache-control"] == viewer.IMMUTABLE
    assert "url(/viewer/a34f9d1faa5f3315.woff2)" in client.get("/viewer/app.bundle.css").text
    assert '"src": "/viewer/assets/icon.png"' in client.get("/viewer/manifest.json").text
    wasm = client.get("/viewer/codec.wasm")
    assert wasm.headers["content-type"] == "application/wasm"
    assert wasm.content == b"\0asm\1\0\0\0"


def test_client_side_routes_get_index_html(dist: Path) -> None:
    client = _client(dist)
    route = client.get(
        "/viewer/viewer?StudyInstanceUIDs=1.2.3", headers={"Accept": "text/html,*/*;q=0.8"}
    )
    assert route.status_code == 200 and "PUBLIC_URL" in route.text
    assert client.get("/viewer/viewer/dicomweb/1.2.3", headers={"Accept": "text/html"}).is_success
    # scripts and images that do not exist are 404, not the page
    assert client.get("/viewer/missing.bundle.js", headers={"Accept": "*/*"}).status_code == 404
    redirect = client.get("/viewer", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "/viewer/"


def test_no_escape_from_the_folder(dist: Path) -> None:
    client = _client(dist)
    for path in ("/viewer/../secret.txt", "/viewer/%2e%2e/secret.txt", "/viewer/..%2fsecret.txt"):
        response = client.get(path, headers={"Accept": "*/*"})
        assert "not served" not in response.text, path


def test_gzip_etag_and_not_modified(dist: Path) -> None:
    client = _client(dist)
    url = "/viewer/app.bundle.0f6159c501addfe9.js"
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text.startswith("var x = 1;")  # httpx decodes it
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert gzip.compress(plain.content)  # the body is the rewritten bundle
    etag = plain.headers["etag"]
    assert zipped.headers["etag"] != etag
    again = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status_code == 304
    changed = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert changed.status_code == 200


def test_accept_encoding_and_if_none_match_like_the_dicomweb_routes(dist: Path) -> None:
    """The viewer had its own copies: substring If-None-Match, and ``*`` before an explicit
    ``gzip;q=0`` meant gzip."""
    client = _client(dist)
    url = "/viewer/app.bundle.0f6159c501addfe9.js"
    for header in ("*, gzip;q=0", "GZIP;Q=0", "identity"):
        response = client.get(url, headers={"Accept-Encoding": header})
        assert "content-encoding" not in response.headers, header
    assert client.get(url, headers={"Accept-Encoding": "x-gzip"}).headers["content-encoding"]
    etag = client.get(url, headers={"Accept-Encoding": "identity"}).headers["etag"]
    for header in (f'"other", W/{etag}', "*", f"{etag},"):
        again = client.get(url, headers={"If-None-Match": header, "Accept-Encoding": "identity"})
        assert again.status_code == 304, header
    for header in (etag[:-2] + '"', f"x{etag}", etag.strip('"')):
        again = client.get(url, headers={"If-None-Match": header, "Accept-Encoding": "identity"})
        assert again.status_code == 200, header


def test_without_viewer_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(viewer, "find_viewer_dir", lambda settings: None)
    response = _client(None).get("/viewer/", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "scripts/viewer" in response.text


def test_viewer_dir_setting_must_hold_a_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="viewer_dir"):
        load_settings({"viewer_dir": tmp_path}, environ={})
    assert viewer.viewer_status("http://localhost:8080", load_settings({}, environ={})).startswith(
        "OHIF viewer"
    )
