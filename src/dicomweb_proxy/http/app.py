"""The ASGI application: DICOMweb resources under the configured base path."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from ..config import load_settings
from ..services import Services, open_services
from . import capabilities, qido, rendered, viewer, wado
from .errors import EXCEPTION_HANDLERS
from .health import health

#: Headers viewers send cross-origin (OHIF sends Accept with parameters, Range for HTJ2K).
CORS_ALLOW_HEADERS = ["Accept", "Authorization", "Content-Type", "Range", "If-None-Match"]
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
    return [
        Route("/health", health, methods=["GET", "HEAD"]),
        *qido.routes,
        *rendered.routes,
        *wado.routes,
        *capabilities.routes,
    ]


def create_app(services: Services) -> Starlette:
    settings = services.settings
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
    base = settings.base_path.rstrip("/")
    routes = [Mount(base, routes=dicomweb_routes())] if base else dicomweb_routes()
    routes += viewer.routes(settings)  # the OHIF viewer at /viewer, same origin
    routes += capabilities.base_routes(base)  # OPTIONS {base}, no final slash
    routes.append(Route("/", _root(base), methods=["GET", "HEAD"]))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS)
    app.state.services = services
    return app


def _root(base: str):
    async def root(request: Request) -> Response:
        return PlainTextResponse(f"dicomweb-proxy: DICOMweb service at {base or '/'}\n")

    return root


def create_app_from_environment() -> Starlette:
    """Factory for server worker processes: settings come from the environment (see cli.serve)."""
    settings = load_settings()
    logging.getLogger("dicomweb_proxy").setLevel(settings.log_level.upper())
    # A frame no codec can decode is answered 406 and logged once by us as a warning; pydicom
    # would add every plugin's traceback at ERROR level.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    return create_app(open_services(settings, upgrade=False))
