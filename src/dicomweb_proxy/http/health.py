"""``GET {base}/health``: 200 only when the index and the store both answer."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..services import Services


async def health(request: Request) -> Response:
    services: Services = request.app.state.services
    checks = {"index": _check(services.reader.check), "store": _check(services.store.check)}
    results = {name: await run_in_threadpool(check) for name, check in checks.items()}
    healthy = all(result == "ok" for result in results.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", **results},
        status_code=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


def _check(function, *args):
    def run() -> str:
        try:
            function(*args)
        except Exception as error:  # any failure makes the service unhealthy; say which
            return f"error: {error.__class__.__name__}: {error}"
        return "ok"

    return run
