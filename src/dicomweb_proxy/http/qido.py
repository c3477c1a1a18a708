"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

Parsing lives in dicom/query.py and SQL in index/; this module reads the request, negotiates
DICOM JSON, pages the answer and adds what depends on the request's URL. Searches run in the
index thread pool (capacity.py). HEAD answers the headers GET would, from a search that reads
no values and builds no body.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..dicom.query import Level, QueryError, parse_search
from ..index.database import StatementTimeout
from .errors import error_response
from .negotiation import DICOM_JSON, Offer, acceptable, negotiate
from .urls import service_base_url

log = logging.getLogger("dicomweb_proxy.http")

#: Search results are DICOM JSON; negotiation counts application/json as the same.
_OFFERS = (Offer(DICOM_JSON, multipart=False, default=True),)
_CHARACTER_SET = {"vr": "CS", "Value": ["ISO_IR 192"]}  # the response is UTF-8 JSON
_TRUNCATED = (
    '299 {service}: "The number of results exceeded the maximum supported by the server. '
    'Additional results can be requested."'
)
_UNSUPPORTED = '299 {service}: "The following parameters are not supported: {names}"'
#: The Warning names at most this many ignored parameters, each cut to _MAX_NAME characters.
_MAX_NAMED = 20
_MAX_NAME = 64
#: The request header preference (RFC 7240) that asks for X-Total-Count on every page.
_COUNT_PREFERENCE = "count=exact"


async def _search(request: Request, level: Level) -> Response:
    offer = negotiate(acceptable(request), _OFFERS)
    services = request.app.state.services
    settings = services.settings
    head = request.method == "HEAD"
    parameters = request.query_params.multi_items()
    try:
        query = parse_search(
            level,
            [(key, value) for key, value in parameters if key != "accept"],
            study_uid=request.path_params.get("study"),
            series_uid=request.path_params.get("series"),
        )
        page_size = settings.max_page_size
        limit = page_size if query.limit is None else min(query.limit, page_size)
        search = partial(
            services.reader.search,
            dataclasses.replace(query, limit=limit),
            count=query.limit == 0 or _prefers_count(request),
            datasets=not head,
            timeout_s=settings.query_timeout_s,
        )
        page = await services.capacity.index.run(search)
    except QueryError as error:
        return error_response(400, str(error))
    except StatementTimeout as error:
        log.warning("search too slow on %s %s: %s", request.method, request.url.path, error)
        return error_response(
            503,
            f"the search took longer than {error.seconds:g} s (query_timeout_s): narrow it"
            " with more or more selective matching keys, or ask for a smaller limit",
        )
    base = service_base_url(request)
    for dataset in page.datasets:
        dataset["00080005"] = _CHARACTER_SET
        dataset["00081190"] = {"vr": "UR", "Value": [_retrieve_url(base, level, dataset)]}
    body = b"" if head else orjson.dumps(page.datasets, option=orjson.OPT_SORT_KEYS)
    response = Response(body, media_type=offer.media_type)
    if head:  # not the length GET would send: none
        del response.headers["content-length"]
    if page.total is not None:
        response.headers["X-Total-Count"] = str(page.total)
    if page.unsupported:
        names = _names(page.unsupported)
        response.headers.append("Warning", _UNSUPPORTED.format(service=base, names=names))
    if limit != query.limit and page.more:
        response.headers.append("Warning", _TRUNCATED.format(service=base))
    return response


def _prefers_count(request: Request) -> bool:
    """Whether the client asked for the total of every page: ``Prefer: count=exact``."""
    return any(
        preference.split(";")[0].replace(" ", "").replace('"', "").lower() == _COUNT_PREFERENCE
        for value in request.headers.getlist("prefer")
        for preference in value.split(",")
    )


def _names(keys: tuple[str, ...]) -> str:
    """Parameter names as a Warning can carry them: percent-encoded as in a URL (no quote,
    backslash or character outside Latin-1 reaches the header), at most _MAX_NAMED of them."""
    names = ", ".join(quote(key[:_MAX_NAME], safe="") for key in keys[:_MAX_NAMED])
    left = len(keys) - _MAX_NAMED
    return f"{names} and {left} more" if left > 0 else names


def _retrieve_url(base: str, level: Level, dataset: dict[str, dict]) -> str:
    tags = ("0020000D", "0020000E", "00080018")[: level - Level.STUDY + 1]
    uids = [dataset[tag]["Value"][0] for tag in tags]
    return base + "".join(
        f"/{resource}/{uid}"
        for resource, uid in zip(("studies", "series", "instances"), uids, strict=False)
    )


async def search_studies(request: Request) -> Response:
    return await _search(request, Level.STUDY)


async def search_series(request: Request) -> Response:
    return await _search(request, Level.SERIES)


async def search_instances(request: Request) -> Response:
    return await _search(request, Level.INSTANCE)


_METHODS = ["GET", "HEAD"]
routes = [
    Route("/studies", search_studies, methods=_METHODS),
    Route("/series", search_series, methods=_METHODS),
    Route("/instances", search_instances, methods=_METHODS),
    Route("/studies/{study}/series", search_series, methods=_METHODS),
    Route("/studies/{study}/instances", search_instances, methods=_METHODS),
    Route("/studies/{study}/series/{series}/instances", search_instances, methods=_METHODS),
]
