"""Liveness and readiness: liveness touches nothing, readiness asks the index and the store in
a pool of its own with a timeout and says only which part failed; end to end, with the AHI
emulator throttling every call, liveness and QIDO answer at once while retrieves are stuck."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from dicomweb_proxy.capacity import Capacity, Limiter
from dicomweb_proxy.config import Settings
from dicomweb_proxy.dicom.image_set import iter_instances
from dicomweb_proxy.http import health
from dicomweb_proxy.http.app import dicomweb_app
from dicomweb_proxy.stores.base import StoreError

from .ahi_fixtures import AhiSource, ahi_server

SECRET = "db.internal.example:5432 as admin"


class Check:
    """A check that answers, fails with a message naming hosts, or hangs until released."""

    def __init__(self, outcome: str = "ok") -> None:
        self.outcome = outcome
        self.calls = 0
        self.release = threading.Event()

    def check(self) -> None:
        self.calls += 1
        if self.outcome == "fails":
            raise StoreError(f"cannot reach {SECRET}")
        if self.outcome == "hangs":
            self.release.wait(10)


def services(index: Check, store: Check) -> SimpleNamespace:
    return SimpleNamespace(
        reader=index, store=store, capacity=Capacity.create(2, 2, 1), settings=Settings()
    )


@contextmanager
def occupied(*limiters: Limiter) -> Iterator[None]:
    """Every thread of *limiters* busy until the block ends."""
    started, release = threading.Semaphore(0), threading.Event()

    def hold() -> None:
        started.release()
        release.wait(10)

    threads = [
        threading.Thread(target=asyncio.run, args=(limiter.run(hold),))
        for limiter in limiters
        for _ in range(limiter.threads)
    ]
    for thread in threads:
        thread.start()
    try:
        assert all(started.acquire(timeout=10) for _ in threads)
        yield
    finally:
        release.set()
        for thread in threads:
            thread.join()


def probe(app, *requests: tuple[str, str]) -> list[httpx.Response]:
    """Send *requests* (method, path) one after the other; fail rather than hang."""

    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pacs") as client:
            return [
                await asyncio.wait_for(client.request(method, path), 10)
                for method, path in requests
            ]

    return asyncio.run(send())


def test_liveness_answers_without_the_index_the_store_or_any_pool():
    broken = services(Check("hangs"), Check("hangs"))
    capacity = broken.capacity
    with occupied(capacity.store, capacity.index, capacity.codec, capacity.health):
        got, head = probe(dicomweb_app(broken), ("GET", "/health/live"), ("HEAD", "/health/live"))
    assert (got.status_code, got.json()) == (200, {"status": "ok"})
    assert got.headers["cache-control"] == "no-store"
    assert (head.status_code, head.content) == (200, b"")
    assert (broken.reader.calls, broken.store.calls) == (0, 0)


def test_readiness_names_the_failing_part_and_logs_the_details(caplog):
    app = dicomweb_app(services(Check(), Check("fails")))
    with caplog.at_level(logging.WARNING, logger="dicomweb_proxy.http"):
        ready, legacy, head = probe(
            app, ("GET", "/health/ready"), ("GET", "/health"), ("HEAD", "/health/ready")
        )
    for answer in (ready, legacy):
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "index": "ok", "store": "unavailable"}
        assert answer.headers["cache-control"] == "no-store"
        assert "internal" not in answer.text
    assert (head.status_code, head.content) == (503, b"")
    assert any(SECRET in record.getMessage() for record in caplog.records)
    both = probe(dicomweb_app(services(Check("fails"), Check("fails"))), ("GET", "/health"))[0]
    assert both.json() == {"status": "unavailable", "index": "unavailable", "store": "unavailable"}


def test_readiness_does_not_wait_behind_the_store_and_index_pools():
    busy = services(Check(), Check())
    with occupied(busy.capacity.store, busy.capacity.index):
        (answer,) = probe(dicomweb_app(busy), ("GET", "/health/ready"))
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "index": "ok", "store": "ok"}


def test_a_hanging_check_times_out_and_is_not_started_twice(monkeypatch):
    monkeypatch.setattr(health, "READY_TIMEOUT_S", 0.2)
    store = Check("hangs")
    app = dicomweb_app(services(Check(), store))

    async def probes() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pacs") as client:
            hanging = [await client.get("/health/ready"), await client.get("/health")]
            store.release.set()
            await asyncio.sleep(0.3)  # the running check ends; the next probe starts another
            return [*hanging, await client.get("/health/ready")]

    first, second, after = asyncio.run(asyncio.wait_for(probes(), 10))
    for answer in (first, second):
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "index": "ok", "store": "timeout"}
    assert after.status_code == 200
    assert store.calls == 2


# --- end to end: serve --store ahi with every AHI call throttled -----------------------------

#: The server's request budget (ahi_request_retry_s): short, so the test is too.
REQUEST_BUDGET_S = 2.0
#: More retrieves at once than Starlette's default thread pool (40) and the store pool (32)
#: have threads: whichever runs retrieval is full while they retry.
RETRIEVES = 80
FULL_POOL = 40


@dataclass
class Throttled:
    """The server and the emulator behind it, whose faults the test sets."""

    base: str
    source: AhiSource


@pytest.fixture
def throttled(ahi_source: AhiSource, tmp_path: Path) -> Iterator[Throttled]:
    budget = {"DICOMWEB_PROXY_AHI_REQUEST_RETRY_S": str(REQUEST_BUDGET_S)}
    with ahi_server(ahi_source, tmp_path / "proxy", env=budget) as base:
        yield Throttled(base, ahi_source)


def retrieve_paths(source: AhiSource) -> list[str]:
    """Series metadata and first frames, from the emulator's side (asking the server would
    fill its caches)."""
    paths = []
    for summary in source.store.list_image_sets():
        for entry in iter_instances(source.store.get_image_set_metadata(summary.image_set_id)):
            series = f"/studies/{entry.study_uid}/series/{entry.series_uid}"
            paths.append(f"{series}/metadata")
            if entry.image_frames:
                paths.append(f"{series}/instances/{entry.sop_uid}/frames/1")
    return sorted(set(paths))


def assert_busy_answer(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.text == "the image-set store is busy or unavailable; retry later\n"


def test_readiness_of_a_throttling_store_is_503_at_once_and_liveness_200(throttled: Throttled):
    base, source = throttled.base, throttled.source
    ready = {"status": "ok", "index": "ok", "store": "ok"}
    assert httpx.get(f"{base}/health/ready").json() == ready
    source.faults(errors=[{"error": "ThrottlingException"}])
    for path in ("/health/ready", "/health"):
        answer, seconds = timed_get(f"{base}{path}")
        assert seconds < health.READY_TIMEOUT_S
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "index": "ok", "store": "unavailable"}
        assert "ThrottlingException" not in answer.text
    assert httpx.get(f"{base}/health/live").status_code == 200
    source.faults(latency={"GetDatastore": health.READY_TIMEOUT_S + 2})
    answer, seconds = timed_get(f"{base}/health/ready")
    assert seconds < health.READY_TIMEOUT_S + 1
    assert answer.json() == {"status": "unavailable", "index": "ok", "store": "timeout"}
    assert httpx.get(f"{base}/health/live").json() == {"status": "ok"}


def timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.get(url, timeout=60)
    seconds = time.monotonic() - started
    print(f"GET {url}: {answer.status_code} in {seconds:.3f} s")
    return answer, seconds


def test_liveness_and_search_answer_while_retrieves_are_stuck_on_a_throttling_store(
    throttled: Throttled,
):
    base, source = throttled.base, throttled.source
    paths = retrieve_paths(source)
    assert len(paths) >= 10
    source.faults(errors=[{"error": "ThrottlingException"}])

    async def burst() -> tuple[list[tuple[str, int, float]], list[httpx.Response], float]:
        """(path, retrieves pending when it was sent, seconds) per probe; the retrieves'
        answers; the seconds they all took."""
        limits = httpx.Limits(max_connections=RETRIEVES + 10)
        async with (
            httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as retrieving,
            httpx.AsyncClient(base_url=base, timeout=10) as probing,
        ):
            started = time.monotonic()
            retrieves = [
                asyncio.create_task(retrieving.get(paths[n % len(paths)])) for n in range(RETRIEVES)
            ]
            await asyncio.sleep(0.3)  # all sent, the first ones retrying
            probes = []
            for _ in range(5):
                for path, expected in (("/health/live", {"status": "ok"}), ("/studies", None)):
                    pending = sum(not retrieve.done() for retrieve in retrieves)
                    sent = time.monotonic()
                    answer = await probing.get(path)
                    probes.append((path, pending, time.monotonic() - sent))
                    assert answer.status_code == 200, (path, answer.text)
                    assert expected is None or answer.json() == expected
                    assert expected is not None or len(answer.json()) == 5
                await asyncio.sleep(0.05)
            answers = await asyncio.gather(*retrieves)
            return probes, answers, time.monotonic() - started

    probes, answers, elapsed = asyncio.run(burst())
    print(f"{RETRIEVES} retrieves in {elapsed:.1f} s; probes (path, pending, s): {probes}")
    # The probes sent while the retrieval threads were all taken answered at once.
    stuck = [(path, seconds) for path, pending, seconds in probes if pending > FULL_POOL]
    assert {path for path, _ in stuck} == {"/health/live", "/studies"}
    assert max(seconds for _, seconds in stuck) < 1.0, stuck
    for answer in answers:
        assert_busy_answer(answer)
    answer, seconds = timed_get(f"{base}{paths[0]}")
    assert_busy_answer(answer)
    assert seconds < REQUEST_BUDGET_S + 1.5
