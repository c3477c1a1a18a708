"""WADO-RS retrieve (PS3.18 10.4): instances, metadata, frames and bulk data.

Rendered resources live in rendered.py. Decisions on media types, transfer syntaxes, byte
ranges and caching are explained in docs/wado.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Sequence
from functools import lru_cache, partial
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..dicom import transcode
from ..dicom import transfer_syntax as ts
from ..dicom.dicom_json import to_dicom_json
from ..dicom.part10 import (
    ENCAPSULATED_END,
    Part10,
    encapsulated_start,
    fragment,
    native_length,
    pack_bit_frames,
)
from ..index.lookup import InstanceRecord
from . import multipart
from .byte_ranges import RangeNotSatisfiable, content_range, requested_range
from .conditional import accepts_gzip, not_modified, variant_etag
from .frame_source import Retrieval, prefetched, retrieval
from .negotiation import (
    DICOM,
    DICOM_JSON,
    OCTET_STREAM,
    Offer,
    acceptable,
    media_type_of,
    negotiate,
)
from .urls import service_base_url
from .wado_metadata import body_etag, build_body

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"

#: Frames and bulk data never change under their URL (frame ids name immutable blobs; a changed
#: instance gets a new SOP Instance UID): caches may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Metadata changes with new image-set versions: caches revalidate with the ETag.
REVALIDATE = "no-cache"
#: Encapsulated instances with more frames than this are streamed with an empty offset table
#: instead of being held whole in memory to compute one.
OFFSET_TABLE_MAX_FRAMES = 64
T = TypeVar("T")
#: One item of a frame list: a decimal frame number (no sign, ``_``, spaces or other scripts).
_FRAME_NUMBER = re.compile(r"[0-9]{1,9}")
#: An item index in a bulk data tag path.
_ITEM_INDEX = re.compile(r"[0-9]{1,9}")
_PIXEL_PATHS = frozenset({"7FE00010", "7FE00008", "7FE00009"})
_METADATA_OFFERS = (Offer(DICOM_JSON, multipart=False, default=True),)
#: Pixel data bulk data of several native frames, concatenated. Not on the frames route: there
#: several frames are always multipart.
_CONCATENATED = Offer(OCTET_STREAM, ts.EXPLICIT_VR_LE, multipart=False)
_BULK_OFFERS = (
    Offer(OCTET_STREAM, ts.EXPLICIT_VR_LE, default=True),
    Offer(OCTET_STREAM, ts.EXPLICIT_VR_LE, multipart=False, default=True),
)
#: Syntaxes an instance without pixel data can be labelled with: its data set is Explicit VR
#: Little Endian in all of them.
_EXPLICIT_LE_SYNTAXES = (
    ts.EXPLICIT_VR_LE,
    ts.HTJ2K_LOSSLESS_RPCL,
    ts.HTJ2K_LOSSLESS,
    ts.HTJ2K,
    ts.JPEG_2000_LOSSLESS,
    ts.JPEG_2000,
    ts.JPEG_LS_LOSSLESS,
    ts.JPEG_LS_NEAR_LOSSLESS,
    ts.JPEG_LOSSLESS_SV1,
    ts.JPEG_LOSSLESS,
    ts.JPEG_BASELINE,
    ts.JPEG_EXTENDED,
    ts.RLE_LOSSLESS,
)


def _uids(request: Request) -> tuple[str, str | None, str | None]:
    params = request.path_params
    return params["study"], params.get("series"), params.get("instance")


# --- metadata ----------------------------------------------------------------------------------


async def metadata(request: Request) -> Response:
    negotiate(acceptable(request), _METADATA_OFFERS)
    context = retrieval(request)
    plan = await context.plan(*_uids(request))
    base_url = service_base_url(request)
    etag = body_etag(plan, base_url)
    compressed = accepts_gzip(request)
    headers = {
        "ETag": variant_etag(etag, "gzip") if compressed else etag,
        "Cache-Control": REVALIDATE,
        "Vary": "Accept, Accept-Encoding",
    }
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    body = context.metadata.get(etag)
    if body is None:
        records = await context.load(plan)
        body = await run_in_threadpool(build_body, records, base_url, etag)
        context.metadata.put(etag, body)
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return Response(body.gzipped if compressed else body.raw, 200, headers, DICOM_JSON)


# --- instances ---------------------------------------------------------------------------------


async def instances(request: Request) -> Response:
    study_uid, series_uid, sop_uid = _uids(request)
    context = retrieval(request)
    records = await context.load(await context.plan(study_uid, series_uid, sop_uid))
    ranges = acceptable(request)
    single = sop_uid is not None
    offers = [negotiate(ranges, instance_offers(record, single)) for record in records]
    parts = _objects(records, offers, await _instance_frames(context, records, offers))
    if not offers[0].multipart:
        (part,) = list(parts)
        return StreamingResponse(
            part.payload, headers={"Vary": "Accept"}, media_type=part.content_type
        )
    boundary = multipart.new_boundary()
    return StreamingResponse(
        multipart.stream_parts(_aiter(parts), boundary),
        media_type=multipart.content_type(DICOM, boundary),
        headers={"Vary": "Accept"},
    )


def instance_offers(record: InstanceRecord, single: bool) -> list[Offer]:
    """application/dicom representations of one instance, the stored encoding first."""
    stored = record.transfer_syntax
    if not record.frame_ids:
        syntaxes = list(_EXPLICIT_LE_SYNTAXES)
    else:
        syntaxes = [stored] if ts.is_encapsulated(stored) else []
        if stored == ts.HTJ2K_LOSSLESS_RPCL:
            syntaxes.append(ts.HTJ2K_LOSSLESS)
        syntaxes += transcode.targets(stored, record.attributes)
        if stored == ts.EXPLICIT_VR_LE:
            syntaxes.insert(0, stored)
    default = ts.EXPLICIT_VR_LE if ts.EXPLICIT_VR_LE in syntaxes else stored
    return [
        Offer(
            DICOM,
            syntax,
            multipart=multipart_,
            explicit_only=_lossy_transcode(stored, syntax) and bool(record.frame_ids),
            default=syntax == default,
        )
        for multipart_ in ((True, False) if single else (True,))
        for syntax in syntaxes
    ]


async def _instance_frames(
    context: Retrieval, records: Sequence[InstanceRecord], offers: Sequence[Offer]
) -> AsyncIterator[bytes]:
    """Every frame of the instances, in order, in the transfer syntax of each one's offer.
    Frames of the following instances are fetched and transcoded ahead, up to twice the codec
    pool's width. The first frame is awaited before the answer starts, so a frame that cannot
    be read or decoded (all of them, typically) is an error status, not a cut stream."""
    jobs = (
        partial(context.frame, record, number, offer.transfer_syntax or ts.EXPLICIT_VR_LE)
        for record, offer in zip(records, offers, strict=True)
        for number in range(1, len(record.frame_ids) + 1)
    )
    return await _started(prefetched(jobs, window=2 * context.frames.workers))


async def _started(items: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    """*items* with its first item already awaited (errors raise here, before streaming)."""
    try:
        first = await anext(items)
    except StopAsyncIteration:
        return _aiter([])
    return _chain(first, items)


async def _chain(first: T, rest: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()  # a client gone mid-stream: cancel the frames fetched ahead


def _objects(
    records: Sequence[InstanceRecord], offers: Sequence[Offer], frames: AsyncIterator[bytes]
) -> Iterator[multipart.Part]:
    """One part per instance, its payload the chunks of its Part 10 object."""
    for record, offer in zip(records, offers, strict=True):
        yield multipart.Part(offer.part_content_type(), _object_chunks(record, offer, frames))


async def _aiter(items: Iterable[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


async def _object_chunks(
    record: InstanceRecord, offer: Offer, frames: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    syntax = offer.transfer_syntax or ts.EXPLICIT_VR_LE
    changes = transcode.changed_attributes(record.transfer_syntax, syntax, record.attributes)
    part10 = await run_in_threadpool(Part10, record.attributes, record.vrs, syntax, changes)
    yield part10.head
    count = len(record.frame_ids)
    if count and part10.is_encapsulated:
        if count <= OFFSET_TABLE_MAX_FRAMES:
            collected = [await anext(frames) for _ in range(count)]
            for chunk in part10.encapsulated(collected, offset_table=syntax not in ts.VIDEO):
                yield chunk
        else:
            yield encapsulated_start(None)
            for _ in range(count):
                for chunk in fragment(await anext(frames)):
                    yield chunk
            yield ENCAPSULATED_END
    elif count:
        length = native_length(record.attributes, count)
        yield part10.native_header(length)
        async for chunk in _native_pixels(record, frames, length):
            yield chunk
        if length % 2:
            yield b"\x00"
    yield part10.tail


async def _native_pixels(
    record: InstanceRecord, frames: AsyncIterator[bytes], length: int
) -> AsyncIterator[bytes]:
    """Native frames one after another; 1-bit frames that do not end on a byte are re-packed."""
    count = len(record.frame_ids)
    pixels = transcode.int_attribute(record.attributes, "Rows", 0) * transcode.int_attribute(
        record.attributes, "Columns", 0
    )
    if transcode.int_attribute(record.attributes, "BitsAllocated", 8) == 1 and pixels % 8:
        collected = [await anext(frames) for _ in range(count)]
        yield pack_bit_frames(collected, pixels)
        return
    for _ in range(count):
        frame = await anext(frames)
        if len(frame) * count != length:
            raise RuntimeError(f"frame of {record.sop_uid} has {len(frame)} bytes, not {length}")
        yield frame


# --- frames and bulk data ----------------------------------------------------------------------


async def frames(request: Request) -> Response:
    study_uid, series_uid, sop_uid = _uids(request)
    numbers = parse_frame_list(request.path_params["frames"])
    context = retrieval(request)
    record = await context.instance(study_uid, series_uid, sop_uid)
    return await _frames_response(request, context, record, numbers)


def parse_frame_list(text: str) -> list[int]:
    """Frame numbers of a ``/frames/{list}`` URL, 1-based, in the order given; 400 naming the
    first item that is not a decimal number from 1 (``1_0``, ``+1``, `` 1``, ``١`` are not).
    How long the list may be depends on the instance: see :func:`check_frame_numbers`."""
    numbers = []
    for item in text.split(","):
        if not _FRAME_NUMBER.fullmatch(item) or int(item) < 1:
            shown = item if len(item) <= 20 else item[:20] + "..."
            raise HTTPException(
                400, f"frames: {shown!r} is not a frame number; use numbers from 1, e.g. 1,3,5"
            )
        numbers.append(int(item))
    return numbers


def check_frame_numbers(record: InstanceRecord, numbers: Sequence[int]) -> None:
    """404 for a frame beyond the instance's; 400 for a list longer than its frame count (a
    list may repeat frames, but never asks more work than retrieving every frame)."""
    count = len(record.frame_ids)
    beyond = [number for number in numbers if number > count]
    if beyond:
        raise HTTPException(404, f"no frame {beyond[0]}: instance {record.sop_uid} has {count}")
    if len(numbers) > count:
        raise HTTPException(
            400,
            f"frames: the list names {len(numbers)} frames, more than the {count} of instance"
            f" {record.sop_uid}",
        )


def frame_offers(record: InstanceRecord, single: bool) -> tuple[Offer, ...]:
    """Media types frames of this instance can be sent as: the stored bytes first (under their
    own media type, then as application/octet-stream), then transcodes."""
    return _frame_offers(
        record.transfer_syntax, transcode.targets(record.transfer_syntax, record.attributes), single
    )


@lru_cache(maxsize=256)
def _frame_offers(stored: str, targets: tuple[str, ...], single: bool) -> tuple[Offer, ...]:
    pairs = [(media_type_of(stored), stored)]
    if ts.is_encapsulated(stored):
        pairs.append((OCTET_STREAM, stored))
    if stored == ts.HTJ2K_LOSSLESS_RPCL:
        pairs += [(media_type_of(ts.HTJ2K_LOSSLESS), ts.HTJ2K_LOSSLESS)]
    pairs += [(media_type_of(syntax), syntax) for syntax in targets]
    default = ts.EXPLICIT_VR_LE if stored not in ts.VIDEO else stored
    return tuple(
        Offer(
            media,
            syntax,
            multipart=multipart_,
            explicit_only=_lossy_transcode(stored, syntax),
            default=syntax == default and media in (OCTET_STREAM, media_type_of(stored)),
        )
        for multipart_ in ((True, False) if single else (True,))
        for media, syntax in pairs
    )


def _concatenable(record: InstanceRecord) -> bool:
    """Whether the frames can be sent as native pixel data (stored so, or decodable to it)."""
    stored = record.transfer_syntax
    return stored == ts.EXPLICIT_VR_LE or ts.EXPLICIT_VR_LE in transcode.targets(
        stored, record.attributes
    )


def _lossy_transcode(stored: str, target: str) -> bool:
    return target in transcode.LOSSY_TARGETS and not transcode.same_bytes(stored, target)


async def _frames_response(
    request: Request,
    context: Retrieval,
    record: InstanceRecord,
    numbers: list[int],
    *,
    bulk: bool = False,
) -> Response:
    """The frames asked, as negotiated. For the pixel data bulk data of a multi-frame instance
    (*bulk*) single-part ``application/octet-stream`` is offered too: the native frames
    concatenated, i.e. the value of Pixel Data (PS3.18 allows single-part bulk data)."""
    check_frame_numbers(record, numbers)
    offers = frame_offers(record, single=len(numbers) == 1)
    if bulk and len(numbers) > 1 and _concatenable(record):
        offers = (*offers, _CONCATENATED)
    offer = negotiate(acceptable(request), offers)
    syntax = offer.transfer_syntax or ts.EXPLICIT_VR_LE
    identity = [*(record.frame_ids[n - 1] for n in numbers), offer.describe()]
    headers = {
        "ETag": _etag(identity, weak=offer.multipart),
        "Cache-Control": IMMUTABLE,
        "Vary": "Accept",
    }
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    if len(numbers) == 1:
        payload = await context.frame(record, numbers[0], syntax)
        return _payload_response(request, payload, offer, headers)
    jobs = (partial(context.frame, record, number, syntax) for number in numbers)
    payloads = await _started(prefetched(jobs, window=2 * context.frames.workers))
    if not offer.multipart:
        length = native_length(record.attributes, len(numbers))
        headers["Content-Length"] = str(length)
        return StreamingResponse(
            _native_pixels(record, payloads, length),
            headers=headers,
            media_type=offer.part_content_type(),
        )
    boundary = multipart.new_boundary()
    return StreamingResponse(
        multipart.stream_parts(_frame_parts(offer, payloads), boundary),
        media_type=multipart.content_type(offer.media_type, boundary),
        headers=headers,
    )


async def _frame_parts(
    offer: Offer, payloads: AsyncIterator[bytes]
) -> AsyncIterator[multipart.Part]:
    async for payload in payloads:
        yield multipart.Part(offer.part_content_type(), _aiter([payload]))


async def bulk(request: Request) -> Response:
    """A BulkDataURI given in metadata: pixel data is served as all the instance's frames,
    other binary values from the instance's attributes."""
    study_uid, series_uid, sop_uid = _uids(request)
    path = request.path_params["path"].strip("/").upper()
    context = retrieval(request)
    record = await context.instance(study_uid, series_uid, sop_uid)
    if path in _PIXEL_PATHS and record.frame_ids:
        numbers = list(range(1, len(record.frame_ids) + 1))
        return await _frames_response(request, context, record, numbers, bulk=True)
    value = await run_in_threadpool(bulk_value, record, path)
    if value is None:
        raise HTTPException(404, f"no binary value at {path} in instance {sop_uid}")
    offer = negotiate(acceptable(request), _BULK_OFFERS)
    headers = {
        "ETag": _etag([hashlib.blake2b(value, digest_size=16).hexdigest()], weak=offer.multipart),
        "Cache-Control": IMMUTABLE,
        "Vary": "Accept",
    }
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return _payload_response(request, value, offer, headers)


def bulk_value(record: InstanceRecord, path: str) -> bytes | None:
    """The bytes of the binary attribute at a BulkDataURI tag path (``00540016/0/00181074``:
    tag, item index, tag, ...); None when there is none."""
    steps = path.split("/")
    dataset = to_dicom_json(record.attributes, record.vrs)
    try:
        element = dataset[steps[0]]
        for index, tag in zip(steps[1::2], steps[2::2], strict=True):
            if not _ITEM_INDEX.fullmatch(index):
                return None  # not an item index (a sign, "_", other scripts): no such value
            element = element["Value"][int(index)][tag]
        return base64.b64decode(element["InlineBinary"], validate=True)
    except (KeyError, IndexError, ValueError, TypeError, binascii.Error):
        return None


def _payload_response(
    request: Request, payload: bytes, offer: Offer, headers: dict[str, str]
) -> Response:
    """One payload, single-part or as the one part of a multipart body, honouring a byte range
    on the payload (206 + Content-Range; 416 when it starts past the end)."""
    total = len(payload)
    try:
        span = requested_range(request.headers.get("range"), total)
    except RangeNotSatisfiable:
        return PlainTextResponse(
            f"range not satisfiable: the payload has {total} bytes\n",
            416,
            {"Content-Range": f"bytes */{total}"},
        )
    status = 200
    headers = {**headers, "Accept-Ranges": "bytes"}
    if span is not None:
        payload = payload[span[0] : span[1] + 1]
        status = 206
        headers["Content-Range"] = content_range(span, total)
    if not offer.multipart:
        return multipart.ChunksResponse([payload], status, headers, offer.part_content_type())
    boundary = multipart.new_boundary()
    chunks = multipart.known_parts([(offer.part_content_type(), payload)], boundary)
    return multipart.ChunksResponse(
        chunks, status, headers, multipart.content_type(offer.media_type, boundary)
    )


def _etag(identity: Sequence[str], *, weak: bool) -> str:
    """Weak for multipart bodies: their random boundaries differ from one response to the next."""
    digest = hashlib.blake2b("\n".join(identity).encode(), digest_size=16).hexdigest()
    return f'W/"{digest}"' if weak else f'"{digest}"'


def _routes() -> list[Route]:
    methods = ["GET", "HEAD"]
    return [
        Route(f"{STUDY}/metadata", metadata, methods=methods),
        Route(f"{SERIES}/metadata", metadata, methods=methods),
        Route(f"{INSTANCE}/metadata", metadata, methods=methods),
        Route(f"{INSTANCE}/frames/{{frames}}", frames, methods=methods),
        Route(f"{INSTANCE}/bulk/{{path:path}}", bulk, methods=methods),
        Route(STUDY, instances, methods=methods),
        Route(SERIES, instances, methods=methods),
        Route(INSTANCE, instances, methods=methods),
    ]


routes = _routes()
