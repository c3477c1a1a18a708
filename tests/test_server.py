"""The real server process: start-up, health, configuration errors, CORS, proxy headers."""

from __future__ import annotations

import subprocess
import sys

import httpx

from .live_server import live_server


def test_health_answers_when_index_and_store_answer(tmp_path):
    with live_server(tmp_path) as base:
        for path in ("/health", "/health/ready"):
            response = httpx.get(f"{base}{path}")
            assert response.status_code == 200
            assert response.json() == {"status": "ok", "index": "ok", "store": "ok"}
            assert response.headers["cache-control"] == "no-store"
        live = httpx.get(f"{base}/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        assert httpx.head(f"{base}/health/live").status_code == 200
        assert httpx.get(f"{base}/no-such-resource").status_code == 404


def test_base_path_is_configurable(tmp_path):
    with live_server(tmp_path, "--base-path", "/dicomweb") as base:
        assert base.endswith("/dicomweb")
        assert httpx.get(f"{base}/health").status_code == 200


def test_cors_preflight_allows_viewer_headers(tmp_path):
    with live_server(tmp_path, "--cors-origin", "http://viewer.example") as base:
        response = httpx.options(
            f"{base}/health",
            headers={
                "Origin": "http://viewer.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "accept, range, authorization",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "http://viewer.example"
        allowed = response.headers["access-control-allow-headers"].lower()
        assert {"accept", "range", "authorization"} <= set(map(str.strip, allowed.split(",")))
        get = httpx.get(f"{base}/health", headers={"Origin": "http://viewer.example"})
        assert "content-range" in get.headers["access-control-expose-headers"].lower()
        other = httpx.get(f"{base}/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_bad_configuration_stops_with_one_clear_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dicomweb_proxy", "serve", "--data-dir", str(tmp_path)],
        env={"PORT": "eighty", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "setting 'port' (from environment variable PORT): 'eighty' is not a whole number" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


#: What a proxy in front sends: X-Forwarded-For too, which must not hide that the proxy (a trusted
#: peer) sent the others (uvicorn's own proxy handling would put 198.51.100.7 in its place).
PROXY_HEADERS = {
    "Accept": "application/json",
    "X-Forwarded-For": "198.51.100.7",
    "X-Forwarded-Host": "pacs.example.org",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Prefix": "/imaging",
}


def test_forwarded_headers_from_a_trusted_proxy(tmp_path):
    with live_server(tmp_path) as base:  # forwarded_allow_ips: 127.0.0.1 by default
        response = httpx.get(f"{base}/capabilities", headers=PROXY_HEADERS)
        assert response.json()["base"] == "https://pacs.example.org/imaging/aetitle"
        assert "X-Forwarded-Host" in response.headers["vary"]
        origin = base.removesuffix("/aetitle")
        redirect = httpx.get(f"{origin}/viewer", headers={"X-Forwarded-Prefix": "//evil.example"})
        assert redirect.headers["location"] == "/viewer/"


def test_forwarded_headers_from_anyone_else_are_ignored(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('forwarded_allow_ips = ["192.0.2.1"]\n')
    with live_server(tmp_path, "--config", str(config)) as base:
        response = httpx.get(f"{base}/capabilities", headers=PROXY_HEADERS)
        assert response.json()["base"] == base
