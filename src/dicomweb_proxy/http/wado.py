"""WADO-RS retrieve (PS3.18 10.4): instances, metadata, frames and bulk data.

Rendered resources live in rendered.py. Decisions on media types, transfer syntaxes, byte
ranges and caching are explained in docs/wado.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from functools import lru_cache

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..dicom import transfer_syntax as ts
from ..dicom.part10 import native_length
from ..retrieve.bulk import PIXEL_PATHS
from ..retrieve.metadata import BodyWriter, Fragment
from ..retrieve.part10_stream import (
    OFFSET_TABLE_MAX_FRAMES,
    concatenable,
    frame_syntaxes,
    instance_syntaxes,
    lossy_transcode,
    native_pixels,
)
from ..retrieve.prefetch import aiter_of
from ..retrieve.records import InstanceRecord
from ..retrieve.service import Retrieval
from . import multipart
from .byte_ranges import RangeNotSatisfiable, content_range, requested_range
from .conditional import accepts_gzip, not_modified, variant_etag
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

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"

#: Frames and bulk data never change under their URL (frame ids name immutable blobs; a changed
#: instance gets a new SOP Instance UID): caches may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Metadata changes with new image-set versions: caches revalidate with the ETag.
REVALIDATE = "no-cache"
#: One item of a frame list: a decimal frame number (no sign, ``_``, spaces or other scripts).
_FRAME_NUMBER = re.compile(r"[0-9]{1,9}")
_METADATA_OFFERS = (Offer(DICOM_JSON, multipart=False, default=True),)
#: Pixel data bulk data of several native frames, concatenated. Not on the frames route: there
#: several frames are always multipart.
_CONCATENATED = Offer(OCTET_STREAM, ts.EXPLICIT_VR_LE, multipart=False)
_BULK_OFFERS = (
    Offer(OCTET_STREAM, ts.EXPLICIT_VR_LE, default=True),
    Offer(OCTET_STREAM, ts.EXPLICIT_VR_LE, multipart=False, default=True),
)


def retrieval(request: Request) -> Retrieval:
    """The datastore's retrieval layer in this worker process (http/app.py sets it up)."""
    return request.app.state.retrieval


def _uids(request: Request) -> tuple[str, str | None, str | None]:
    params = request.path_params
    return params["study"], params.get("series"), params.get("instance")


# --- metadata ----------------------------------------------------------------------------------


async def metadata(request: Request) -> Response:
    negotiate(acceptable(request), _METADATA_OFFERS)
    context = retrieval(request)
    plan = await context.plan(*_uids(request))
    base_url = service_base_url(request)
    etag = context.metadata_etag(plan, base_url)
    compressed = accepts_gzip(request)
    headers = {
        "ETag": variant_etag(etag, "gzip") if compressed else etag,
        "Cache-Control": REVALIDATE,
        "Vary": "Accept, Accept-Encoding",
    }
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    if compressed:
        headers["Content-Encoding"] = "gzip"
    writer = BodyWriter(gzip=compressed)
    kept = context.kept_metadata(plan, base_url)
    if kept is not None:
        return multipart.ChunksResponse(writer.whole(kept), 200, headers, DICOM_JSON)
    fragments = await context.metadata_fragments(plan, base_url)
    return StreamingResponse(_metadata_body(writer, fragments), 200, headers, DICOM_JSON)


async def _metadata_body(writer: BodyWriter, fragments: AsyncIterator[Fragment]):
    yield writer.start()
    async for fragment in fragments:
        for chunk in writer.add(fragment):
            yield chunk
    yield writer.end()


# --- instances ---------------------------------------------------------------------------------


async def instances(request: Request) -> Response:
    study_uid, series_uid, sop_uid = _uids(request)
    context = retrieval(request)
    if series_uid is not None and sop_uid is not None:  # from the kept documents, as frames
        records = [await context.instance(study_uid, series_uid, sop_uid)]
    else:
        records = await context.load(await context.plan(study_uid, series_uid, sop_uid))
    ranges = acceptable(request)
    single = sop_uid is not None
    offers = [negotiate(ranges, instance_offers(record, single)) for record in records]
    syntaxes = [offer.transfer_syntax or ts.EXPLICIT_VR_LE for offer in offers]
    frames = await context.frames_in_order(
        (record, number, syntax)
        for record, syntax in zip(records, syntaxes, strict=True)
        for number in range(1, len(record.frame_ids) + 1)
    )
    parts = [
        multipart.Part(offer.part_content_type(), context.part10(record, syntax, frames))
        for record, offer, syntax in zip(records, offers, syntaxes, strict=True)
    ]
    headers = {"Vary": "Accept"}
    if single and len(records[0].frame_ids) <= OFFSET_TABLE_MAX_FRAMES:
        # One instance of a few frames: in hand already, sent without a streaming task.
        chunks = [chunk async for chunk in parts[0].payload]
        if not offers[0].multipart:
            return multipart.ChunksResponse(chunks, 200, headers, parts[0].content_type)
        boundary = multipart.new_boundary()
        body = multipart.known_parts([(parts[0].content_type, chunks)], boundary)
        return multipart.ChunksResponse(body, 200, headers, multipart.content_type(DICOM, boundary))
    if not offers[0].multipart:
        payload = parts[0].payload
        return StreamingResponse(payload, headers=headers, media_type=parts[0].content_type)
    boundary = multipart.new_boundary()
    return StreamingResponse(
        multipart.stream_parts(aiter_of(parts), boundary),
        media_type=multipart.content_type(DICOM, boundary),
        headers=headers,
    )


def instance_offers(record: InstanceRecord, single: bool) -> list[Offer]:
    """application/dicom representations of one instance, the stored encoding first."""
    stored = record.transfer_syntax
    syntaxes = instance_syntaxes(record)
    default = ts.EXPLICIT_VR_LE if ts.EXPLICIT_VR_LE in syntaxes else stored
    return [
        Offer(
            DICOM,
            syntax,
            multipart=multipart_,
            explicit_only=lossy_transcode(stored, syntax) and bool(record.frame_ids),
            default=syntax == default,
        )
        for multipart_ in ((True, False) if single else (True,))
        for syntax in syntaxes
    ]


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
    return _frame_offers(frame_syntaxes(record), single)


@lru_cache(maxsize=256)
def _frame_offers(syntaxes: tuple[str, ...], single: bool) -> tuple[Offer, ...]:
    stored = syntaxes[0]
    pairs = [(media_type_of(syntax), syntax) for syntax in syntaxes]
    if ts.is_encapsulated(stored):
        pairs.insert(1, (OCTET_STREAM, stored))
    default = ts.EXPLICIT_VR_LE if stored not in ts.VIDEO else stored
    return tuple(
        Offer(
            media,
            syntax,
            multipart=multipart_,
            explicit_only=lossy_transcode(stored, syntax),
            default=syntax == default and media in (OCTET_STREAM, media_type_of(stored)),
        )
        for multipart_ in ((True, False) if single else (True,))
        for media, syntax in pairs
    )


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
    if bulk and len(numbers) > 1 and concatenable(record):
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
    payloads = await context.frames_in_order((record, number, syntax) for number in numbers)
    if not offer.multipart:
        headers["Content-Length"] = str(native_length(record.attributes, len(numbers)))
        return StreamingResponse(
            native_pixels(record, payloads, len(numbers)),
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
        yield multipart.Part(offer.part_content_type(), aiter_of([payload]))


async def bulk(request: Request) -> Response:
    """A BulkDataURI given in metadata: pixel data is served as all the instance's frames,
    other binary values from the instance's attributes."""
    study_uid, series_uid, sop_uid = _uids(request)
    path = request.path_params["path"].strip("/").upper()
    context = retrieval(request)
    record = await context.instance(study_uid, series_uid, sop_uid)
    if path in PIXEL_PATHS and record.frame_ids:
        numbers = list(range(1, len(record.frame_ids) + 1))
        return await _frames_response(request, context, record, numbers, bulk=True)
    value = await context.bulk(record, path)
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
    chunks = multipart.known_parts([(offer.part_content_type(), [payload])], boundary)
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
        Route(f"{INSTANCE}/frames/{{frames}}", frames, methods=methods),
        Route(f"{STUDY}/metadata", metadata, methods=methods),
        Route(f"{SERIES}/metadata", metadata, methods=methods),
        Route(f"{INSTANCE}/metadata", metadata, methods=methods),
        Route(f"{INSTANCE}/bulk/{{path:path}}", bulk, methods=methods),
        Route(STUDY, instances, methods=methods),
        Route(SERIES, instances, methods=methods),
        Route(INSTANCE, instances, methods=methods),
    ]


routes = _routes()
