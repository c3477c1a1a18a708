"""The real server process: start-up, health, configuration errors, CORS."""

from __future__ import annotations

import subprocess
import sys

import httpx

from .live_server import live_server


def test_health_answers_when_index_and_store_answer(tmp_path):
    with live_server(tmp_path) as base:
        response = httpx.get(f"{base}/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "index": "ok", "store": "ok"}
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
