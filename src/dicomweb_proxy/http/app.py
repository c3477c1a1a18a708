"""The ASGI application: each datastore's DICOMweb resources under its base path.

Every datastore is a Starlette sub-application of its own, mounted at its base path: the route
handlers read ``request.app.state.services``, which is then that datastore's. The outer
application holds what is server-wide: CORS, the viewer (set up for the default datastore),
``OPTIONS {base}`` and the front page (``GET /``, ``GET {base}``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from ..config import DEFAULT_DATASTORE, Settings, load_settings
from ..retrieve.service import CacheBudgets, Retrieval
from ..services import Services, open_datastores
from . import capabilities, front, health, qido, rendered, viewer, wado
from .errors import EXCEPTION_HANDLERS

#: Headers viewers send cross-origin (OHIF sends Accept with parameters, Range for HTJ2K;
#: Prefer: count=exact asks a search for its total, docs/qido.md).
CORS_ALLOW_HEADERS = ["Accept", "Authorization", "Content-Type", "Range", "If-None-Match", "Prefer"]
CORS_EXPOSE_HEADERS = [
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Content-Encoding",
    "Warning",
    "ETag",
    "X-Total-Count",
]


def dicomweb_routes() -> list[Route]:
    # Frames first: routes are tried in order, and viewers ask for frames most.
    return [
        *wado.routes,
        *qido.routes,
        *rendered.routes,
        *health.routes(),
        *capabilities.routes,
        *front.routes,
    ]


def dicomweb_app(services: Services) -> Starlette:
    """One datastore's DICOMweb service, to mount at its base path."""
    app = Starlette(routes=dicomweb_routes(), exception_handlers=EXCEPTION_HANDLERS)
    app.state.services = services
    app.state.front_page = front.FrontPage({DEFAULT_DATASTORE: services})  # alone; see create_app
    app.state.retrieval = Retrieval(
        services.store, services.reader, services.capacity, cache_budgets(services.settings)
    )
    return app


def cache_budgets(settings: Settings) -> CacheBudgets:
    return CacheBudgets(
        documents=settings.document_cache_mb << 20,
        stored_frames=settings.frame_memory_cache_mb << 20,
        transcoded_frames=settings.transcode_cache_mb << 20,
        metadata_bodies=settings.metadata_cache_mb << 20,
    )


def create_app(services: Services | Mapping[str, Services]) -> Starlette:
    """The server: one datastore's *services*, or several by name, the default first."""
    datastores = {DEFAULT_DATASTORE: services} if isinstance(services, Services) else services
    default = next(iter(datastores.values()))
    settings = default.settings
    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
                allow_headers=CORS_ALLOW_HEADERS,
                expose_headers=CORS_EXPOSE_HEADERS,
                max_age=3600,
            )
        )
    apps = {each.settings.base_path.rstrip("/"): dicomweb_app(each) for each in datastores.values()}
    front_page = front.FrontPage(datastores)
    routes = viewer.routes(settings)  # the OHIF viewer at /viewer, same origin
    for base, datastore_app in apps.items():
        datastore_app.state.front_page = front_page
        routes += _base_routes(base, datastore_app)  # OPTIONS and GET {base}, no final slash
    default_app = next(iter(apps.values()))
    routes.append(Route("/", _in_app(default_app, front.page), methods=["GET", "HEAD"]))
    # Last: a base path of "/" mounts at "", which takes every path.
    routes += [Mount(base, app=datastore_app) for base, datastore_app in apps.items()]
    routes += viewer.root_asset_routes()
    handlers = _outer_handlers(list(apps.values()))
    app = Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=_warm_up
    )
    app.state.services = default
    return app


@asynccontextmanager
async def _warm_up(app: Starlette) -> AsyncIterator[None]:
    """Pay at start what a worker's first answers would: anyio loads its asyncio backend on
    first use, the first streamed answer (tens of milliseconds)."""
    await anyio.sleep(0)
    yield


def _outer_handlers(datastore_apps: list[Starlette]) -> dict:
    """EXCEPTION_HANDLERS for the outer app. A datastore's app answers and logs an unexpected
    error, then re-raises it (Starlette's error middleware always does): not logged again."""
    log_and_answer = EXCEPTION_HANDLERS[Exception]

    async def unexpected(request: Request, exc: Exception) -> Response:
        if any(request.app is datastore_app for datastore_app in datastore_apps):
            return Response(status_code=500)  # not sent: the datastore's app has answered
        return await log_and_answer(request, exc)

    return {**EXCEPTION_HANDLERS, Exception: unexpected}


def _base_routes(base: str, datastore_app: Starlette) -> list[Route]:
    """capabilities.base_routes, answered as routes of the datastore's app (they lie outside
    its mount), so the capabilities name that datastore's URL."""
    routes = [
        Route(route.path, _in_app(datastore_app, route.endpoint), methods=route.methods)
        for route in capabilities.base_routes(base)
        if isinstance(route, Route)
    ]
    if base:  # the front page; a base of "/" has it at "/"
        routes.append(Route(base, _in_app(datastore_app, front.page), methods=["GET", "HEAD"]))
    return routes


def _in_app(datastore_app: Starlette, endpoint):
    async def answer(request: Request) -> Response:
        request.scope["app"] = datastore_app  # what request.app (its state.services) reads
        return await endpoint(request)

    return answer


def create_app_from_environment() -> Starlette:
    """Factory for server worker processes: settings come from the environment (see cli.serve)."""
    settings = load_settings()
    logging.getLogger("dicomweb_proxy").setLevel(settings.log_level.upper())
    # A frame no codec can decode is answered 406 and logged once by us as a warning; pydicom
    # would add every plugin's traceback at ERROR level.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    return create_app(open_datastores(settings, upgrade=False))
