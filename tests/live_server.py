"""Start the real server in a subprocess on a free port, as a user would run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(
    data_dir: Path,
    *args: str,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Run ``dicomweb-proxy serve`` and yield its DICOMweb base URL once /health answers 200;
    *env* adds environment variables (the server sees none of ours, DICOMWEB_PROXY_*)."""
    port = free_port()
    command = [sys.executable, "-m", "dicomweb_proxy", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(data_dir), "--workers", "1", *args]
    if database_url:
        command += ["--database-url", database_url]
    log = open(data_dir / f"server-{port}.log", "w+")  # noqa: SIM115 - closed below
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DICOMWEB_PROXY_")}
    environment.update(env or {})
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    base = f"http://127.0.0.1:{port}/aetitle"
    if "--base-path" in args:
        base = f"http://127.0.0.1:{port}{args[args.index('--base-path') + 1]}"
    try:
        _wait_healthy(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_healthy(base: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    log.seek(0)
    raise RuntimeError(f"server did not become healthy in 30 s:\n{log.read()}")
