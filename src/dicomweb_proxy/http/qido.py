"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

Parsing lives in dicom/query.py and SQL in index/search.py; this module reads the request,
negotiates DICOM JSON, pages the answer and adds what depends on the request's URL.
"""

from __future__ import annotations

import dataclasses

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..dicom.query import Level, QueryError, parse_search
from .errors import error_response
from .negotiation import DICOM_JSON, Offer, acceptable, negotiate
from .urls import service_base_url

#: Search results are DICOM JSON; negotiation counts application/json as the same.
_OFFERS = (Offer(DICOM_JSON, multipart=False, default=True),)
_CHARACTER_SET = {"vr": "CS", "Value": ["ISO_IR 192"]}  # the response is UTF-8 JSON
_TRUNCATED = (
    '299 {service}: "The number of results exceeded the maximum supported by the server. '
    'Additional results can be requested."'
)


async def _search(request: Request, level: Level) -> Response:
    offer = negotiate(acceptable(request), _OFFERS)
    parameters = request.query_params.multi_items()
    try:
        query = parse_search(
            level,
            [(key, value) for key, value in parameters if key != "accept"],
            study_uid=request.path_params.get("study"),
            series_uid=request.path_params.get("series"),
        )
        services = request.app.state.services
        page_size = services.settings.max_page_size
        limit = page_size if query.limit is None else min(query.limit, page_size)
        page = await services.capacity.index.run(
            services.reader.search, dataclasses.replace(query, limit=limit)
        )
    except QueryError as error:
        return error_response(400, str(error))
    base = service_base_url(request)
    headers = {"X-Total-Count": str(page.total)}
    if limit != query.limit and query.offset + len(page.datasets) < page.total:
        headers["Warning"] = _TRUNCATED.format(service=base)
    for dataset in page.datasets:
        dataset["00080005"] = _CHARACTER_SET
        dataset["00081190"] = {"vr": "UR", "Value": [_retrieve_url(base, level, dataset)]}
    body = orjson.dumps(page.datasets, option=orjson.OPT_SORT_KEYS)
    return Response(body, media_type=offer.media_type, headers=headers)


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


routes = [
    Route("/studies", search_studies, methods=["GET"]),
    Route("/series", search_series, methods=["GET"]),
    Route("/instances", search_instances, methods=["GET"]),
    Route("/studies/{study}/series", search_series, methods=["GET"]),
    Route("/studies/{study}/instances", search_instances, methods=["GET"]),
    Route("/studies/{study}/series/{series}/instances", search_instances, methods=["GET"]),
]
