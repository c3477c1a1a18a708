"""WADO-RS Retrieve Rendered (PS3.18 10.4.1.1.3) and Thumbnail (Sup 203) resources.

Study and series resources render one representative instance: the middle image of the series
(of the study's first series that has images). An instance renders its first frame, or all its
frames as an animated GIF when image/gif is chosen; a frame list renders one frame, or several
as an animated GIF. A thumbnail is the middle frame of that instance, fitted into 128x128 (or the
viewport asked for) and decoded at the lowest HTJ2K resolution that covers it. See
docs/rendered.md.

Bounds are checked before any frame is fetched: frame lists no longer than the instance's
frames, at most 256 frames in an animated GIF and 64 Mi output pixels a response
(render.check_output). Frames are fetched a few ahead and rendered one by one. A stored frame no
installed codec decodes is 406, logged as a warning.
"""

from __future__ import annotations

import logging
import re
from contextlib import aclosing
from functools import partial
from itertools import groupby

from PIL import Image
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..cache import SizedLRU
from ..dicom import render
from ..dicom import transfer_syntax as ts
from ..dicom.render import (
    GIF,
    JPEG,
    RENDERED_MEDIA_TYPES,
    DecodeError,
    RenderError,
    Viewport,
    Window,
)
from ..retrieve.prefetch import prefetched
from ..retrieve.records import InstanceRecord, Plan
from .negotiation import Offer, acceptable, negotiate
from .wado import check_frame_numbers, parse_frame_list, retrieval

THUMBNAIL_SIZE = 128
THUMBNAIL_CACHE_CONTROL = "private, max-age=3600"
#: Encoded thumbnails kept per worker process (a 128 px JPEG is about 4 KB).
THUMBNAIL_CACHE_BYTES = 16 * 1024 * 1024
#: Largest viewport side served; bounds the memory one request can take.
MAX_VIEWPORT = 8192
#: quality: 1 to 100, decimal digits only.
_QUALITY = re.compile(r"[0-9]{1,3}")
#: A viewport value: a decimal integer, negative allowed (sw, sh flip the region).
_INTEGER = re.compile(r"-?[0-9]{1,9}")
#: A window value: a decimal number (no "nan", "inf", "_" or other scripts).
_DECIMAL = re.compile(
    r"[-+]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][-+]?[0-9]{1,3})?"
)
log = logging.getLogger("dicomweb_proxy.http")
ANNOTATION_WARNING = '299 - "annotation is not supported; the image is rendered without it"'

_STILL = tuple(
    Offer(media_type, multipart=False, default=media_type == JPEG)
    for media_type in RENDERED_MEDIA_TYPES
)
_ANIMATED = (Offer(GIF, multipart=False, default=True),)
_FUNCTIONS = {"LINEAR": "LINEAR", "LINEAR-EXACT": "LINEAR_EXACT", "SIGMOID": "SIGMOID"}
_INSTANCE = "/studies/{study}/series/{series}/instances/{instance}"
#: Encoded thumbnails by (image set/frame id, media type, viewport), per worker process.
_thumbnails: SizedLRU[tuple[str, str, Viewport | None], bytes] = SizedLRU(THUMBNAIL_CACHE_BYTES)


# --- handlers -------------------------------------------------------------------------------------


async def representative_rendered(request: Request) -> Response:
    """Study and series level."""
    return await _rendered(request, await _representative(request), None)


async def instance_rendered(request: Request) -> Response:
    return await _rendered(request, await _instance(request), None)


async def frames_rendered(request: Request) -> Response:
    numbers = tuple(parse_frame_list(request.path_params["frames"]))
    return await _rendered(request, await _instance(request), numbers)


async def representative_thumbnail(request: Request) -> Response:
    """Study and series level."""
    return await _thumbnail(request, await _representative(request), None)


async def instance_thumbnail(request: Request) -> Response:
    return await _thumbnail(request, await _instance(request), None)


async def frame_thumbnail(request: Request) -> Response:
    numbers = tuple(parse_frame_list(request.path_params["frames"]))
    if len(numbers) != 1:
        raise HTTPException(400, "frames: a thumbnail is of one frame")
    return await _thumbnail(request, await _instance(request), numbers[0])


async def _rendered(
    request: Request, record: InstanceRecord, numbers: tuple[int, ...] | None
) -> Response:
    window, viewport, quality = _window(request), _viewport(request), _quality(request)
    offers = _ANIMATED if numbers is not None and len(numbers) > 1 else _STILL
    media_type = negotiate(acceptable(request), offers).media_type
    _check_renderable(record)
    if numbers is None:
        everything = media_type == GIF
        numbers = tuple(range(1, len(record.frame_ids) + 1)) if everything else (1,)
    check_frame_numbers(record, numbers)
    parameters = render.RenderRequest(media_type, quality, window, viewport)
    headers = {"Vary": "Accept"}
    if "annotation" in request.query_params:
        headers["Warning"] = ANNOTATION_WARNING
    content = await _render(request, record, numbers, parameters)
    return Response(content, media_type=media_type, headers=headers)


async def _thumbnail(request: Request, record: InstanceRecord, number: int | None) -> Response:
    viewport = _viewport(request, region=False)
    media_type = negotiate(acceptable(request), _STILL).media_type
    _check_renderable(record)
    number = number or (len(record.frame_ids) + 1) // 2
    key = (f"{record.image_set_id}/{_frame_id(record, number)}", media_type, viewport)
    content = _thumbnails.get(key)
    if content is None:
        parameters = render.RenderRequest(media_type, viewport=viewport or _fit(record))
        content = _thumbnails.put(key, await _render(request, record, (number,), parameters))
    headers = {"Vary": "Accept", "Cache-Control": THUMBNAIL_CACHE_CONTROL}
    return Response(content, media_type=media_type, headers=headers)


def _fit(record: InstanceRecord) -> Viewport:
    """The default thumbnail viewport: THUMBNAIL_SIZE on the longer side, never enlarged."""
    columns, rows = int(record.attributes["Columns"]), int(record.attributes["Rows"])
    return Viewport(min(THUMBNAIL_SIZE, columns), min(THUMBNAIL_SIZE, rows))


# --- instances and frames -------------------------------------------------------------------------


async def _instance(request: Request) -> InstanceRecord:
    params = request.path_params
    return await retrieval(request).instance(params["study"], params["series"], params["instance"])


async def _representative(request: Request) -> InstanceRecord:
    """The middle image of the series, or of the study's first series that has images. The
    middle instance is read alone first: a long series is then not read whole."""
    study, series = request.path_params["study"], request.path_params.get("series")
    source = retrieval(request)
    plan = await source.plan(study, series)
    for _, group in groupby(plan.rows, key=lambda row: row[1]):
        rows = list(group)
        for candidates in ([rows[len(rows) // 2]], rows):
            records = await source.load(Plan(plan.uids, candidates, plan.versions))
            images = [record for record in records if _renderable(record)]
            if images:
                return images[len(images) // 2]
    raise HTTPException(406, f"{'series' if series else 'study'} has no image to render")


def _renderable(record: InstanceRecord) -> bool:
    has_size = bool(record.attributes.get("Rows") and record.attributes.get("Columns"))
    return has_size and bool(record.frame_ids) and record.transfer_syntax not in ts.VIDEO


def _check_renderable(record: InstanceRecord) -> None:
    if not _renderable(record):
        kind = "video" if record.frame_ids else "no pixel data"
        raise HTTPException(406, f"instance {record.sop_uid} has {kind}: no image to render")


def _frame_id(record: InstanceRecord, number: int) -> str:
    if number > len(record.frame_ids):
        raise HTTPException(
            404, f"frame {number} not in instance {record.sop_uid} ({len(record.frame_ids)})"
        )
    return record.frame_ids[number - 1]


async def _render(
    request: Request,
    record: InstanceRecord,
    numbers: tuple[int, ...],
    parameters: render.RenderRequest,
) -> bytes:
    """Fetch the stored frames and render them in worker threads, a few ahead, then encode;
    400 when the parameters do not fit the image (a source region outside it, too many
    pixels), 406 when a stored frame cannot be decoded."""
    for number in numbers:
        _frame_id(record, number)
    columns, rows = int(record.attributes["Columns"]), int(record.attributes["Rows"])
    source = retrieval(request)
    try:
        render.check_output(len(numbers), columns, rows, parameters)

        if len(numbers) == 1:  # one thread hop: render and encode together
            blob = await source.frame(record, numbers[0], record.transfer_syntax)
            return await source.capacity.codec.run(_still, record, numbers[0], blob, parameters)

        async def one(number: int) -> Image.Image:
            blob = await source.frame(record, number, record.transfer_syntax)
            return await source.capacity.codec.run(_picture, record, number, blob, parameters)

        jobs = (partial(one, number) for number in numbers)
        async with aclosing(prefetched(jobs, window=source.frames.window)) as pictures:
            rendered = [picture async for picture in pictures]
        return await source.capacity.codec.run(
            render.encode_pictures, rendered, parameters, record.attributes
        )
    except RenderError as error:
        raise HTTPException(400, str(error)) from None
    except DecodeError as error:
        log.warning("rendering %s: %s", record.sop_uid, error.reason or error)
        raise HTTPException(
            406,
            f"{error}; it cannot be rendered: retrieve the frame in its stored transfer syntax"
            f" (.../frames/{{n}} with transfer-syntax=*) instead",
        ) from None


def _picture(
    record: InstanceRecord, number: int, blob: bytes, parameters: render.RenderRequest
) -> Image.Image:
    """Frame *number* (its stored bytes *blob*) rendered, before encoding."""
    return render.render_picture(
        number - 1,
        blob,
        record.transfer_syntax,
        record.attributes,
        record.vrs,
        parameters,
        f"{record.image_set_id}/{_frame_id(record, number)}",
    )


def _still(
    record: InstanceRecord, number: int, blob: bytes, parameters: render.RenderRequest
) -> bytes:
    picture = _picture(record, number, blob, parameters)
    return render.encode_pictures([picture], parameters, record.attributes)


# --- query parameters (PS3.18 8.3.5.1) --------------------------------------------------------


def _quality(request: Request) -> int:
    text = request.query_params.get("quality")
    if text is None:
        return render.DEFAULT_QUALITY
    if not _QUALITY.fullmatch(text.strip()) or not 1 <= int(text) <= 100:
        raise HTTPException(400, f"quality: {_shown(text)} is not an integer from 1 to 100")
    return int(text)


def _window(request: Request) -> Window | None:
    """``window=center,width[,function]``; function linear (default), linear-exact or sigmoid."""
    text = request.query_params.get("window")
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",")]
    function = _FUNCTIONS.get(parts[2].upper().replace("_", "-") if len(parts) == 3 else "LINEAR")
    try:
        if function is None or len(parts) not in (2, 3):
            raise ValueError("expected center,width[,linear|linear-exact|sigmoid]")
        if not (_DECIMAL.fullmatch(parts[0]) and _DECIMAL.fullmatch(parts[1])):
            raise ValueError("center and width must be decimal numbers")
        return Window(float(parts[0]), float(parts[1]), function)
    except RenderError as error:
        raise HTTPException(400, str(error)) from None
    except ValueError as error:
        raise HTTPException(400, f"window: {_shown(text)}: {error}") from None


def _viewport(request: Request, *, region: bool = True) -> Viewport | None:
    """``viewport=vw,vh[,sx,sy,sw,sh]``; empty source values take their defaults."""
    text = request.query_params.get("viewport")
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",")]
    try:
        if len(parts) not in ((2, 6) if region else (2,)):
            raise ValueError("expected vw,vh" + (" or vw,vh,sx,sy,sw,sh" if region else ""))
        if not all(_INTEGER.fullmatch(part) for part in parts if part):
            raise ValueError("values must be decimal integers")
        width, height, *source = [int(part) if part else None for part in parts]
        if width is None or height is None or max(width, height) > MAX_VIEWPORT:
            raise ValueError(f"vw and vh must be integers from 1 to {MAX_VIEWPORT}")
        sx, sy, sw, sh = source or (None,) * 4
        return Viewport(width, height, sx or 0, sy or 0, sw, sh)
    except RenderError as error:
        raise HTTPException(400, str(error)) from None
    except ValueError as error:
        raise HTTPException(400, f"viewport: {_shown(text)}: {error}") from None


def _shown(text: str) -> str:
    """A parameter value quoted for an error message, cut when long."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


routes = [
    Route(f"{path}/{kind}", handler, methods=["GET", "HEAD"])
    for path, rendered, thumbnail in (
        ("/studies/{study}", representative_rendered, representative_thumbnail),
        ("/studies/{study}/series/{series}", representative_rendered, representative_thumbnail),
        (_INSTANCE, instance_rendered, instance_thumbnail),
        (f"{_INSTANCE}/frames/{{frames}}", frames_rendered, frame_thumbnail),
    )
    for kind, handler in (("rendered", rendered), ("thumbnail", thumbnail))
]
