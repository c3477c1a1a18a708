"""multipart/related framing, byte ranges and the byte-bounded cache, without a server."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import threading

import pytest

from dicomweb_proxy.cache import SizedLRU
from dicomweb_proxy.capacity import Capacity
from dicomweb_proxy.dicom import transfer_syntax as ts
from dicomweb_proxy.http import multipart
from dicomweb_proxy.http.byte_ranges import (
    RangeNotSatisfiable,
    content_range,
    requested_range,
)
from dicomweb_proxy.http.errors import undecodable_frame
from dicomweb_proxy.retrieve.frames import FrameSource
from dicomweb_proxy.retrieve.prefetch import prefetched
from dicomweb_proxy.retrieve.records import InstanceRecord, UndecodableFrame
from dicomweb_proxy.retrieve.service import Retrieval

PAYLOADS = [b"\r\n--not-the-boundary\r\n", b"", b"\x00\xff" * 1000]


def parse(body: bytes, boundary: str) -> list[tuple[str, bytes]]:
    """Parse with the standard library's MIME parser, independent of ours."""
    head = f'Content-Type: multipart/related; type="a/b"; boundary="{boundary}"\r\n\r\n'
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head.encode() + body)
    return [
        (str(part["Content-Type"]).replace('"', ""), part.get_payload(decode=True))
        for part in message.iter_parts()
    ]


def test_known_parts_frame_each_payload_unchanged():
    boundary = multipart.new_boundary()
    parts = [(f"image/jphc; transfer-syntax=1.{n}", p) for n, p in enumerate(PAYLOADS)]
    chunks = multipart.known_parts([(kind, [payload]) for kind, payload in parts], boundary)
    assert all(any(chunk is payload for chunk in chunks) for payload in PAYLOADS if payload)
    assert parse(b"".join(chunks), boundary) == parts


def test_streamed_parts_match_known_parts():
    boundary = multipart.new_boundary()

    async def payload(data: bytes):
        yield data[:3]
        yield data[3:]

    async def parts():
        for number, data in enumerate(PAYLOADS):
            yield multipart.Part(f"application/dicom; n={number}", payload(data))

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in multipart.stream_parts(parts(), boundary)])

    streamed = asyncio.run(collect())
    expected = [(f"application/dicom; n={n}", data) for n, data in enumerate(PAYLOADS)]
    known = [(kind, [data[:3], data[3:]]) for kind, data in expected]
    assert streamed == b"".join(multipart.known_parts(known, boundary))
    assert multipart.content_type("image/jphc", boundary).endswith(f"boundary={boundary}")
    assert multipart.new_boundary() != boundary


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-64000", (0, 999)),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=5-3", None),
        ("bytes=0-1,5-6", None),
        ("items=0-5", None),
        ("Bytes=0-99", (0, 99)),
        # Positions longer than int() reads (4300 digits) or than any payload: no 500.
        ("bytes=0-" + "9" * 5000, (0, 999)),
        ("bytes=-" + "9" * 5000, (0, 999)),
        ("bytes=" + "0" * 5000 + "5-9", (5, 9)),
        # Malformed: ignored (the whole payload), as RFC 9110 says.
        ("bytes=\u0661-", None),
        ("bytes=1_0-", None),
        ("bytes=+1-", None),
        ("bytes=" + "9" * 5000 + "-1", None),
    ],
)
def test_requested_ranges(header, expected):
    assert requested_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=" + "9" * 5000 + "-"]
)
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        requested_range(header, 1000)
    assert content_range((0, 99), 1000) == "bytes 0-99/1000"


def test_sized_lru_evicts_least_recent_and_skips_oversized():
    cache: SizedLRU[str, bytes] = SizedLRU(10)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"
    cache.put("c", b"1234")
    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    cache.put("huge", b"x" * 11)
    assert cache.get("huge") is None and cache.size == 8 and len(cache) == 2


def test_prefetched_keeps_order_and_cancels_the_rest():
    started: list[int] = []

    def job(number: int):
        async def run() -> int:
            started.append(number)
            await asyncio.sleep(0.001 * (5 - number))
            return number

        return run

    async def take_two() -> list[int]:
        results = prefetched((job(n) for n in range(5)), window=3)
        taken = [await anext(results), await anext(results)]
        await results.aclose()
        return taken

    assert asyncio.run(take_two()) == [0, 1]
    assert len(started) <= 4


def test_a_stored_frame_no_codec_decodes_is_406_for_a_transcode(caplog):
    """A damaged (or unsupported) stored frame was a logged 500 when asked decoded."""
    attributes = {"Rows": 4, "Columns": 4, "BitsAllocated": 8, "SamplesPerPixel": 1}
    attributes |= {"PixelData": None, "PhotometricInterpretation": "MONOCHROME2"}
    record = InstanceRecord("0" * 32, "1", "2", "3", attributes, {}, ts.HTJ2K_LOSSLESS_RPCL, ("f",))

    class Store:
        datastore_id = "local"

        def get_image_frame(self, image_set_id: str, frame_id: str) -> bytes:
            return b"\x00" * 16  # not an HTJ2K codestream

    retrieval = Retrieval(Store(), None, Capacity.create(1, 1, 1))  # type: ignore[arg-type]
    for target in (ts.EXPLICIT_VR_LE, ts.JPEG_2000_LOSSLESS):
        with pytest.raises(UndecodableFrame) as raised:
            asyncio.run(retrieval.frame(record, 1, target))
        answer = asyncio.run(undecodable_frame(None, raised.value))  # type: ignore[arg-type]
        assert answer.status_code == 406
        detail = answer.body.decode()
        assert detail.startswith("frame 1 of instance 3: cannot decode the stored")
        assert "High-Throughput JPEG 2000" in detail
        assert "transfer-syntax=*" in detail
    assert [r.levelname for r in caplog.records if r.name == "dicomweb_proxy.retrieve"] == [
        "WARNING",
        "WARNING",
    ]
    # The stored bytes need no codec.
    assert asyncio.run(retrieval.frame(record, 1, ts.HTJ2K_LOSSLESS_RPCL)) == b"\x00" * 16


def test_part10_headers_are_kept_per_image_set_version():
    attributes = {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "SOPInstanceUID": "3"}
    record = InstanceRecord("0" * 32, "1", "2", "3", attributes, {}, ts.EXPLICIT_VR_LE, (), 1)
    retrieval = Retrieval(None, None, Capacity.create(1, 1, 1))  # type: ignore[arg-type]

    async def headers(*records: InstanceRecord):
        return [await retrieval.part10_header(r, ts.EXPLICIT_VR_LE) for r in records]

    newer = InstanceRecord(*[getattr(record, f) for f in record.__slots__][:-1], 2)
    unversioned = InstanceRecord(*[getattr(record, f) for f in record.__slots__][:-1], None)
    first, again, other, loose, loose_again = asyncio.run(
        headers(record, record, newer, unversioned, unversioned)
    )
    assert first is again  # kept
    assert other is not first and other.head == first.head  # another version: built anew
    assert loose is not loose_again  # no version to key it by: never kept


@pytest.mark.parametrize("local", [True, False])
def test_local_stores_are_read_at_once_remote_ones_on_the_store_pool(local):
    threads: list[str] = []

    class Store:
        datastore_id = "local"
        local_reads = local

        def get_image_frame(self, image_set_id: str, frame_id: str) -> bytes:
            threads.append(threading.current_thread().name)
            return b"\x01\x02"

    record = InstanceRecord("0" * 32, "1", "2", "3", {}, {}, ts.HTJ2K_LOSSLESS_RPCL, ("f",))
    frames = FrameSource(Store(), Capacity.create(1, 1, 1), stored_cache_bytes=0)  # type: ignore[arg-type]
    assert asyncio.run(frames.stored(record, 1)) == b"\x01\x02"
    assert threads == (["MainThread"] if local else [threads[0]])
    assert local or threads[0].startswith("store")
