"""Bounded capacity per subsystem: store reads, index queries and codec work each run in a
thread pool of their own, sized in the settings.

With one shared pool a store that throttles (each call retrying for seconds) fills every thread
and searches and health checks queue behind it; with one pool each, a slow store slows only
what reads the store. Health checks have a pool of their own and never wait behind the others.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

T = TypeVar("T")

#: Threads for health checks: one per check, so readiness never queues behind itself.
HEALTH_THREADS = 2


class Limiter:
    """At most *threads* blocking calls at once; more wait their turn in its queue."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def run(self, function: Callable[..., T], /, *args: object) -> T:
        """*function(*args)* in one of the threads; the caller's loop stays free."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Capacity:
    """One worker process's limiters for one datastore."""

    store: Limiter
    index: Limiter
    codec: Limiter
    health: Limiter

    @classmethod
    def create(cls, store_threads: int, index_threads: int, codec_threads: int) -> Capacity:
        """*codec_threads* 0 means one per core: the codecs release the GIL."""
        return cls(
            store=Limiter("store", store_threads),
            index=Limiter("index", index_threads),
            codec=Limiter("codec", codec_threads or os.cpu_count() or 1),
            health=Limiter("health", HEALTH_THREADS),
        )

    def close(self) -> None:
        for limiter in (self.store, self.index, self.codec, self.health):
            limiter.close()
