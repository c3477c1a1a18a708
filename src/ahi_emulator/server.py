"""Run the emulator in a background thread: for tests and notebooks that need an endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from .app import create_app
from .faults import Faults


@contextmanager
def running_emulator(
    data_dir: Path, *, host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None
) -> Iterator[str]:
    """Serve *data_dir* until the block ends; yields the endpoint URL (port 0: any free one)."""
    config = uvicorn.Config(
        create_app(data_dir, faults),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ahi-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the AHI emulator did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
