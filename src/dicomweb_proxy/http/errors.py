"""Turn failures into short client answers: a status code and a one-line message, no traces."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..retrieve.records import NotFound, UndecodableFrame
from ..stores.base import (
    FrameNotFound,
    ImageSetNotFound,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger("dicomweb_proxy.http")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(f"{message}\n", status_code=status, headers=headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, str(exc))


async def undecodable_frame(request: Request, exc: Exception) -> Response:
    """The stored bytes can still be sent: say how to ask for them."""
    assert isinstance(exc, UndecodableFrame)
    return error_response(
        406,
        f"{exc}; ask for the stored transfer syntax ({exc.record.transfer_syntax},"
        " or transfer-syntax=*)",
    )


async def store_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ImageSetNotFound | FrameNotFound):
        return error_response(404, str(exc))
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503,
            "the image-set store is busy or unavailable; retry later",
            {"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, StoreAccessDenied):
        log.error(
            "store denied access on %s %s: %s (check the server's credentials and permissions)",
            request.method,
            request.url.path,
            exc,
        )
        return error_response(502, "the image-set store denied access; see the server log")
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(502, "the image-set store failed to answer; see the server log")


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; see the server log")


EXCEPTION_HANDLERS = {
    HTTPException: http_exception,
    NotFound: not_found,
    UndecodableFrame: undecodable_frame,
    StoreError: store_error,
    Exception: unexpected_error,
}
