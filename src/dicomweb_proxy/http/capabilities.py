"""Retrieve Capabilities (PS3.18 8.9): what the service offers, from http/conformance.py.

``OPTIONS {base}`` (and ``GET {base}/capabilities``) answer the whole description; ``OPTIONS`` on
a resource answers that resource's, with an ``Allow`` header. WADL by default, JSON on request.
CORS preflights (OPTIONS with ``Access-Control-Request-Method``) never get here: the CORS
middleware answers them.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import conformance
from .negotiation import DICOM_JSON, Offer, acceptable, negotiate
from .urls import FORWARDED_HEADERS, service_base_url

#: WADL by default. JSON is asked as application/json, which negotiation reads as an alias of
#: application/dicom+json: that offer stands for it.
_OFFERS = (
    Offer(conformance.WADL, multipart=False, default=True),
    Offer(DICOM_JSON, multipart=False),
)


def _respond(request: Request, resources: tuple[conformance.Resource, ...], allow: str) -> Response:
    offer = negotiate(acceptable(request), _OFFERS)
    base = service_base_url(request)
    # the URLs in it follow the (trusted) proxy's Forwarded / X-Forwarded-* headers
    vary = ", ".join(("Accept", *FORWARDED_HEADERS))
    headers = {"Allow": allow, "Cache-Control": "no-cache", "Vary": vary}
    if offer.media_type == DICOM_JSON:
        document = conformance.capabilities(base, resources)
        body = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        return Response(body, media_type=conformance.JSON, headers=headers)
    return Response(conformance.wadl(base, resources), media_type=conformance.WADL, headers=headers)


async def service_capabilities(request: Request) -> Response:
    return _respond(request, conformance.RESOURCES, "GET, HEAD, OPTIONS")


def _resource_options(resource: conformance.Resource):
    allow = ", ".join(dict.fromkeys([*resource.methods, "OPTIONS"]))

    async def options(request: Request) -> Response:
        return _respond(request, (resource,), allow)

    return options


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", service_capabilities, methods=["OPTIONS"]),
        Route("/capabilities", service_capabilities, methods=["GET", "HEAD", "OPTIONS"]),
    ]
    for resource in conformance.RESOURCES:
        if resource.path != "/capabilities":
            routes.append(Route(resource.path, _resource_options(resource), methods=["OPTIONS"]))
    return routes


#: Inside the base path mount.
routes = _routes()


def base_routes(base: str) -> list[BaseRoute]:
    """``OPTIONS {base}`` without the final slash (outside the mount, which only sees
    ``{base}/...``)."""
    return [Route(base, service_capabilities, methods=["OPTIONS"])] if base else []
