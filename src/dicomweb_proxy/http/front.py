"""The front page: ``GET /``, ``GET {base}`` and ``GET {base}/`` answer what a person opening the
printed URL wants to know: the service, each datastore's URL and study/series/instance counts,
whether its index answers, and where the health check, the capabilities and the viewer are.

HTML for browsers (and ``*/*``), JSON for ``Accept: application/json``. The counts are row
counts on the index thread pool (:meth:`IndexReader.counts`); an index that fails them is shown
as unavailable, not answered 500.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..services import Services
from .conformance import JSON, service_version
from .negotiation import DICOM_JSON, Offer, acceptable, negotiate
from .urls import FORWARDED_HEADERS, datastore_base_url, forwarded_prefix
from .viewer import MOUNT as VIEWER_MOUNT
from .viewer import find_viewer_dir

HTML = "text/html"
#: HTML by default; application/json is read by negotiation as an alias of DICOM JSON.
_OFFERS = (Offer(HTML, multipart=False, default=True), Offer(DICOM_JSON, multipart=False))
_HEADERS = {"Cache-Control": "no-cache", "Vary": ", ".join(("Accept", *FORWARDED_HEADERS))}
log = logging.getLogger("dicomweb_proxy.http")


class FrontPage:
    """The page of a server's datastores (by name, the default first)."""

    def __init__(self, datastores: Mapping[str, Services]) -> None:
        self.datastores = dict(datastores)
        default = next(iter(self.datastores.values())).settings
        self.has_viewer = find_viewer_dir(default) is not None

    async def answer(self, request: Request) -> Response:
        offer = negotiate(acceptable(request), _OFFERS)
        document = await self.document(request)
        if offer.media_type == DICOM_JSON:
            body = orjson.dumps(document, option=orjson.OPT_INDENT_2)
            return Response(body, media_type=JSON, headers=_HEADERS)
        return HTMLResponse(_html(document), headers=_HEADERS)

    async def document(self, request: Request) -> dict[str, Any]:
        counts = await asyncio.gather(*(_counts(each) for each in self.datastores.values()))
        datastores = []
        for (name, services), held in zip(self.datastores.items(), counts, strict=True):
            url = datastore_base_url(request, services.settings)
            datastores.append(
                {
                    "name": name,
                    "url": url,
                    "index": "unavailable" if held is None else "ok",
                    **(held._asdict() if held is not None else {}),
                    "health": f"{url}/health",
                    "capabilities": f"{url}/capabilities",
                }
            )
        viewer = f"{forwarded_prefix(request)}{VIEWER_MOUNT}/" if self.has_viewer else None
        return {
            "service": "dicomweb-proxy",
            "version": service_version(),
            "datastores": datastores,
            "viewer": viewer,
        }


async def _counts(services: Services) -> Any:
    """The reader's counts (studies, series, instances), or None when the index fails."""
    try:
        return await services.capacity.index.run(services.reader.counts)
    except Exception as error:  # the page still answers; the log says why
        log.warning("front page: index unavailable: %s: %s", error.__class__.__name__, error)
        return None


def _html(document: dict[str, Any]) -> str:
    def link(url: str, text: str | None = None) -> str:
        return f'<a href="{html.escape(url)}">{html.escape(text or url)}</a>'

    rows = []
    for datastore in document["datastores"]:
        if datastore["index"] == "ok":
            held = ", ".join(
                f"{datastore[key]} {key}" for key in ("studies", "series", "instances")
            )
        else:
            held = "index unavailable"
        rows.append(
            f"<li><b>{html.escape(datastore['name'])}</b>: {link(datastore['url'])}"
            f" ({held}); {link(datastore['health'], 'health')},"
            f" {link(datastore['capabilities'], 'capabilities')}</li>"
        )
    viewer = document["viewer"]
    viewer_line = (
        f"<p>Viewer: {link(viewer, 'OHIF')}</p>"
        if viewer
        else "<p>Viewer: not installed (scripts/viewer, or --viewer-dir)</p>"
    )
    title = f"dicomweb-proxy {html.escape(document['version'])}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><h1>{title}</h1><p>DICOMweb (QIDO-RS, WADO-RS) datastores:</p>"
        f"<ul>{''.join(rows)}</ul>{viewer_line}</body></html>\n"
    )


async def page(request: Request) -> Response:
    """The front page of the application the request is in (see http/app.py)."""
    front: FrontPage = request.app.state.front_page
    return await front.answer(request)


#: Inside the base path mount: ``{base}/``.
routes = [Route("/", page, methods=["GET", "HEAD"])]
