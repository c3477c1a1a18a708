"""Run async jobs a few ahead of their consumer, in order: the next frames decode while the
current one is on the wire."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def prefetched(
    jobs: Iterable[Callable[[], Awaitable[T]]], window: int
) -> AsyncGenerator[T, None]:
    """Results of *jobs* in order, running up to *window* of them ahead of the consumer."""
    pending: deque[asyncio.Future[T]] = deque()
    try:
        for job in jobs:
            pending.append(asyncio.ensure_future(job()))
            if len(pending) >= window:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for future in pending:
            future.cancel()


async def started(items: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    """*items* with its first item already awaited: its errors raise here, before an answer
    starts streaming, so a frame that cannot be read (all of them, typically) is an error
    status, not a cut stream."""
    try:
        first = await anext(items)
    except StopAsyncIteration:
        return aiter_of([])
    return _chain(first, items)


async def _chain(first: T, rest: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()  # a client gone mid-stream: cancel the jobs run ahead


async def aiter_of(items: Iterable[T]) -> AsyncIterator[T]:
    for item in items:
        yield item
