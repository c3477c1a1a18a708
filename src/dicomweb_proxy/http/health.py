"""Health: liveness (``{base}/health/live``) and readiness (``{base}/health/ready``, also
``{base}/health``, its name before the split, which existing monitors poll).

Liveness answers from the event loop, touching no pool, index or store: a process whose store
is slow is still alive, and restarting it would not help. Readiness asks the index and the store
in the health pool (never behind the store or index pools), each for at most
:data:`READY_TIMEOUT_S`; a check still running when the next probe comes is waited for again,
not started twice, so probes never pile up behind a store that hangs. Its body names each part
with a generic reason; the details (hosts, users, URLs) go to the log only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..services import Services

#: Longest wait for one readiness check; the checks run side by side.
READY_TIMEOUT_S = 2.0
_HEADERS = {"Cache-Control": "no-store"}
log = logging.getLogger("dicomweb_proxy.http")


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=_HEADERS)


class Readiness:
    """One datastore's readiness: its checks, and the ones still running."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[str]] = {}

    async def answer(self, request: Request) -> Response:
        services: Services = request.app.state.services
        checks = {"index": services.reader.check, "store": services.store.check}
        results = await asyncio.gather(
            *(self._result(services, name, check) for name, check in checks.items())
        )
        parts = dict(zip(checks, results, strict=True))
        ready = all(result == "ok" for result in results)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", **parts},
            status_code=200 if ready else 503,
            headers=_HEADERS,
        )

    async def _result(self, services: Services, name: str, check: Callable[[], None]) -> str:
        """``ok``, ``unavailable`` (the check failed) or ``timeout``."""
        running = self._running.get(name)
        if running is None:
            running = asyncio.ensure_future(services.capacity.health.run(_outcome, name, check))
            self._running[name] = running
            running.add_done_callback(lambda _: self._running.pop(name))
        try:
            return await asyncio.wait_for(asyncio.shield(running), READY_TIMEOUT_S)
        except TimeoutError:
            log.warning("readiness: the %s check did not answer in %.0f s", name, READY_TIMEOUT_S)
            return "timeout"


def _outcome(name: str, check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as error:  # any failure makes the service unready; the log says why
        log.warning("readiness: %s unavailable: %s: %s", name, error.__class__.__name__, error)
        return "unavailable"
    return "ok"


def routes() -> list[Route]:
    """The health routes of one datastore's application (each has its own readiness)."""
    ready = Readiness().answer
    return [
        Route("/health/live", live, methods=["GET", "HEAD"]),
        Route("/health/ready", ready, methods=["GET", "HEAD"]),
        Route("/health", ready, methods=["GET", "HEAD"]),
    ]
