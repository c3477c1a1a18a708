"""Forwarded / X-Forwarded-* headers: believed from forwarded_allow_ips peers only, and only
values of the expected shape; whatever gets through is escaped where the viewer writes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dicomweb_proxy.config import ConfigError, load_settings
from dicomweb_proxy.http import viewer
from dicomweb_proxy.http.urls import forwarded_values, service_base_url

PROXY = "127.0.0.1"
STRANGER = "203.0.113.9"
XSS = '"><script>alert(1)</script>'
INDEX = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script>'
    '<script src="/app-config.js"></script><link href="/app.bundle.css" rel="stylesheet">'
    "</head><body></body></html>"
)


async def _urls(request: Request) -> JSONResponse:
    values = forwarded_values(request)
    return JSONResponse({"base": service_base_url(request), "prefix": values.prefix})


def _app(routes: list, **settings) -> Starlette:
    app = Starlette(routes=routes)
    app.state.services = SimpleNamespace(settings=load_settings(settings, environ={}))
    return app


def _get(app: Starlette, peer: str, path: str, headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 50123))
        async with httpx.AsyncClient(transport=transport, base_url="http://pacs:8080") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(send())


def _base(peer: str, headers: dict[str, str], **settings) -> str:
    app = _app([Route("/", _urls)], **settings)
    return _get(app, peer, "/", headers).json()["base"]


PROXIED = {
    "X-Forwarded-Host": "pacs.example.org",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Prefix": "/imaging/",
}


def test_trusted_proxy_headers_make_the_urls() -> None:
    assert _base(PROXY, PROXIED) == "https://pacs.example.org/imaging/aetitle"
    forwarded = {"Forwarded": 'for=198.51.100.1;host="[2001:db8::1]:8443";proto=https'}
    assert _base(PROXY, forwarded) == "https://[2001:db8::1]:8443/aetitle"
    assert _base(PROXY, {}) == "http://pacs:8080/aetitle"


def test_other_clients_cannot_set_them() -> None:
    assert _base(STRANGER, PROXIED) == "http://pacs:8080/aetitle"
    assert _base(STRANGER, {"Forwarded": "host=evil.example;proto=https"}) == (
        "http://pacs:8080/aetitle"
    )
    # the setting decides: nobody, a network, anyone
    assert _base(PROXY, PROXIED, forwarded_allow_ips="") == "http://pacs:8080/aetitle"
    trusted_network = {"forwarded_allow_ips": "10.0.0.0/8, ::1"}
    assert _base("10.1.2.3", PROXIED, **trusted_network).startswith("https://pacs.example.org/")
    assert _base("::1", PROXIED, **trusted_network).startswith("https://pacs.example.org/")
    assert _base(PROXY, PROXIED, **trusted_network) == "http://pacs:8080/aetitle"
    assert _base(STRANGER, PROXIED, forwarded_allow_ips="*").startswith("https://pacs.example.org")


@pytest.mark.parametrize(
    "header, value",
    [
        ("X-Forwarded-Host", 'a"b<c>'),
        ("X-Forwarded-Host", "evil.example/path"),
        ("X-Forwarded-Host", "evil.example:99999"),
        ("X-Forwarded-Host", "user@evil.example"),
        ("X-Forwarded-Proto", "javascript"),
        ("X-Forwarded-Prefix", XSS),
        ("X-Forwarded-Prefix", "//evil.example"),
        ("X-Forwarded-Prefix", "/a/../b"),
        ("X-Forwarded-Prefix", "imaging"),
        ("Forwarded", 'host="a\\"b<c>";proto=ftp'),
    ],
)
def test_invalid_values_are_ignored(header: str, value: str) -> None:
    assert _base(PROXY, {header: value}) == "http://pacs:8080/aetitle"


def test_an_invalid_value_falls_back_to_the_next_one() -> None:
    headers = {"Forwarded": "host=a<b", "X-Forwarded-Host": "pacs.example.org:443"}
    assert _base(PROXY, headers) == "http://pacs.example.org:443/aetitle"


def test_public_base_url_wins() -> None:
    url = "https://dicom.example.org/web"
    assert _base(PROXY, PROXIED, public_base_url=url) == url


def test_setting_is_validated() -> None:
    settings = load_settings({}, environ={})
    assert settings.forwarded_allow_ips == ("127.0.0.1",)
    environ = {"DICOMWEB_PROXY_FORWARDED_ALLOW_IPS": "10.0.0.0/8,::1, *"}
    assert load_settings({}, environ=environ).forwarded_allow_ips == ("10.0.0.0/8", "::1", "*")
    assert settings.to_env()["DICOMWEB_PROXY_FORWARDED_ALLOW_IPS"] == "127.0.0.1"
    with pytest.raises(ConfigError, match=r"forwarded_allow_ips.*'proxy\.local'"):
        load_settings({}, environ={"DICOMWEB_PROXY_FORWARDED_ALLOW_IPS": "proxy.local"})


# --- the viewer --------------------------------------------------------------------------------


@pytest.fixture
def viewer_app(tmp_path: Path) -> Starlette:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text(INDEX)
    (dist / "app.bundle.css").write_text("a{background:url(/x.png)}")
    return _app(viewer.routes(load_settings({"viewer_dir": dist}, environ={})), viewer_dir=dist)


@pytest.mark.parametrize("peer", [PROXY, STRANGER])
def test_no_script_from_a_forwarded_prefix(viewer_app: Starlette, peer: str) -> None:
    page = _get(viewer_app, peer, "/viewer/", {"Accept": "text/html", "X-Forwarded-Prefix": XSS})
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert 'window.PUBLIC_URL="/viewer/"' in page.text
    assert 'src="/viewer/app-config.js"' in page.text
    assert "X-Forwarded-Prefix" in page.headers["vary"]
    assert "Accept-Encoding" in page.headers["vary"]
    config = _get(viewer_app, peer, "/viewer/app-config.js", {"X-Forwarded-Prefix": XSS}).text
    assert '"routerBasename": "/viewer"' in config and "alert" not in config


@pytest.mark.parametrize("peer", [PROXY, STRANGER])
def test_no_redirect_to_another_site(viewer_app: Starlette, peer: str) -> None:
    for prefix in ("//evil.example", "/\\evil.example", "https://evil.example"):
        response = _get(viewer_app, peer, "/viewer", {"X-Forwarded-Prefix": prefix})
        assert response.status_code == 308
        assert response.headers["location"] == "/viewer/"
        assert response.headers["vary"] == "X-Forwarded-Prefix"


def test_only_a_trusted_proxy_moves_the_viewer(viewer_app: Starlette) -> None:
    headers = {"Accept": "text/html", "X-Forwarded-Prefix": "/imaging"}
    page = _get(viewer_app, PROXY, "/viewer/", headers).text
    assert 'window.PUBLIC_URL="/imaging/viewer/"' in page
    assert 'href="/imaging/viewer/app.bundle.css"' in page
    redirect = _get(viewer_app, PROXY, "/viewer", headers)
    assert redirect.headers["location"] == "/imaging/viewer/"
    assert "/imaging" not in _get(viewer_app, STRANGER, "/viewer/", headers).text


def test_untrusted_prefixes_do_not_fill_the_asset_cache(viewer_app: Starlette) -> None:
    """Each prefix is a rewritten copy of every file (the OHIF bundle: 17 MB, gzipped)."""
    responses = [
        _get(viewer_app, STRANGER, "/viewer/app.bundle.css", {"X-Forwarded-Prefix": f"/p{n}"})
        for n in range(5)
    ]
    etags = {response.headers["etag"] for response in responses}
    assert len(etags) == 1


def test_rewrite_escapes_the_prefix_where_it_stands() -> None:
    """urls.py lets only plain path segments through; the rewrite does not rely on it."""
    html = viewer.rewrite(".html", INDEX.encode(), "/a'<b>\"&").decode()
    assert "<b>" not in html and "</script><script>" not in html
    assert 'window.PUBLIC_URL="/a\\u0027\\u003cb\\u003e\\"\\u0026/"' in html
    assert 'src="/a&#x27;&lt;b&gt;&quot;&amp;/app-config.js"' in html
    css = viewer.rewrite(".css", b"a{background:url(/x.png)}", "/a)b").decode()
    assert css == "a{background:url(/a%29b/x.png)}"
    js = viewer.rewrite(".js", b"browserImportFunction('/x.js')", "/a'b\\").decode()
    assert js == "browserImportFunction('/a\\u0027b\\\\/x.js')"
