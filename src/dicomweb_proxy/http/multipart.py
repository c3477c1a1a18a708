"""multipart/related bodies (RFC 2387) built without joining payloads.

Each part goes out as its head (delimiter and headers), its payload chunks as they are, and a
closing delimiter, so a 200 KB frame or a 500 MB series is never copied into a larger buffer.
Boundaries are random UUIDs: 122 random bits make a collision with payload bytes negligible.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .negotiation import MULTIPART


def new_boundary() -> str:
    return uuid.uuid4().hex


def content_type(part_type: str, boundary: str) -> str:
    """The response Content-Type: Cornerstone and dicomweb-client both read ``boundary``."""
    return f'{MULTIPART}; type="{part_type}"; boundary={boundary}'


def _head(boundary: str, part_content_type: str, first: bool) -> bytes:
    # The CRLF before a delimiter belongs to it (RFC 2046 5.1.1): emitted with the next head.
    # Cornerstone looks for a line starting with exactly "Content-Type:".
    lead = "" if first else "\r\n"
    return f"{lead}--{boundary}\r\nContent-Type: {part_content_type}\r\n\r\n".encode("ascii")


def _close(boundary: str, empty: bool) -> bytes:
    lead = b"" if empty else b"\r\n"
    return lead + f"--{boundary}--\r\n".encode("ascii")


def known_parts(parts: Sequence[tuple[str, Sequence[bytes]]], boundary: str) -> list[bytes]:
    """Chunks of a body whose parts are all in hand: (content type, payload chunks) each; the
    payloads are not copied."""
    chunks: list[bytes] = []
    for index, (part_content_type, payload) in enumerate(parts):
        chunks.append(_head(boundary, part_content_type, index == 0))
        chunks.extend(payload)
    chunks.append(_close(boundary, not parts))
    return chunks


@dataclass(frozen=True, slots=True)
class Part:
    content_type: str
    payload: AsyncIterable[bytes]


async def stream_parts(parts: AsyncIterable[Part], boundary: str) -> AsyncIterator[bytes]:
    """The chunks of a body whose parts are produced one after another."""
    first = True
    async for part in parts:
        yield _head(boundary, part.content_type, first)
        first = False
        async for chunk in part.payload:
            if chunk:
                yield chunk
    yield _close(boundary, first)


class ChunksResponse(Response):
    """A response whose body is chunks already in hand, sent one message each, with a
    Content-Length; cheaper than StreamingResponse (no task group) for short bodies."""

    def __init__(
        self,
        chunks: Sequence[bytes],
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.chunks = [chunk for chunk in chunks if chunk]
        self.status_code = status_code
        self.media_type = media_type
        self.background: BackgroundTask | None = None
        self.init_headers({**(headers or {}), "content-length": str(self.length)})

    @property
    def length(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        last = len(self.chunks) - 1
        for index, chunk in enumerate(self.chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < last})
        if not self.chunks:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
