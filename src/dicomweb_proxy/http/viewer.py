"""The OHIF viewer at ``/viewer``, configured for this server (same origin: no CORS needed).

The files are OHIF's prebuilt ``dist/`` folder (npm package ``@ohif/app``; ``scripts/viewer``
installs it into ``./viewer``, ``--viewer-dir`` names another copy). That build expects to live at
the site root (its webpack public path and its ``index.html`` links are ``/...``), so the few
root-relative references are rewritten to the viewer's prefix as the files are served (see
:data:`REWRITES`); nothing is rebuilt. ``app-config.js`` is generated per request from
:func:`ohif_config`: the DICOMweb data source points at this server's base URL. Paths that are no
file are OHIF's client-side routes (``/viewer/viewer?StudyInstanceUIDs=...``): a browser navigating
there gets ``index.html``; other clients get 404.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import mimetypes
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..cache import SizedLRU
from ..config import VIEWER_PATH, Settings
from .conditional import accepts_gzip, not_modified, variant_etag
from .urls import forwarded_prefix, service_base_url

MOUNT = VIEWER_PATH
#: The OHIF release scripts/viewer installs; other 3.x builds work as long as the rewrites match.
OHIF_VERSION = "3.13.2"
#: Where scripts/viewer puts the files, relative to the working folder or the source checkout.
DEFAULT_FOLDER = "viewer"

NOT_INSTALLED = (
    "The OHIF viewer is not installed. Run scripts/viewer (needs npm) to put it in ./viewer, or "
    "start the server with --viewer-dir pointing at the dist/ folder of an @ohif/app build.\n"
)

#: Root-relative references of the OHIF build, by file suffix, and what they become under the
#: viewer's path (e.g. ``/viewer``), written as ``{js}`` inside JS/JSON strings, ``{attr}`` in HTML
#: attributes and ``{url}`` in CSS ``url()`` (see :func:`rewrite`). Applied to served bytes only.
REWRITES: dict[str, tuple[tuple[re.Pattern[bytes], bytes], ...]] = {
    ".html": (
        (re.compile(rb'window\.PUBLIC_URL="/"'), rb'window.PUBLIC_URL="{js}/"'),
        (re.compile(rb'\b(src|href)="/(?!/)'), rb'\1="{attr}/'),
    ),
    ".css": ((re.compile(rb"url\(/(?!/)"), rb"url({url}/"),),
    ".js": (
        # webpack's public path: chunks, workers, wasm and images are loaded from it
        (re.compile(rb'__webpack_require__\.p = "/";'), rb'__webpack_require__.p = "{js}/";'),
        (re.compile(rb"browserImportFunction\('/(?!/)"), rb"browserImportFunction('{js}/"),
    ),
    ".json": ((re.compile(rb'"src": "/(?!/)'), rb'"src": "{js}/'),),
}
_TEXT_SUFFIXES = frozenset({".html", ".css", ".js", ".mjs", ".json", ".svg", ".map", ".txt"})
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".onnx": "application/octet-stream",
}
#: Content-hashed file names (``app.bundle.0f6159c501addfe9.js``) never change under their URL.
_HASHED = re.compile(r"(?:^|[.-])[0-9a-f]{16,}\.[a-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
#: Text files kept in memory per worker, rewritten and gzipped (the main bundle is 17 MB, 4 MB
#: gzipped); larger ones are served from disk as they are.
ASSET_CACHE_BYTES = 96 * 1024 * 1024
_LARGEST_CACHED_FILE = 32 * 1024 * 1024


def find_viewer_dir(settings: Settings) -> Path | None:
    """The OHIF ``dist`` folder to serve: ``viewer_dir`` when set, else ``./viewer`` or the
    source checkout's ``viewer/`` (where scripts/viewer installs it); None when absent."""
    if settings.viewer_dir is not None:
        candidates = [settings.viewer_dir]
    else:
        checkout = Path(__file__).resolve().parents[3]
        candidates = [Path.cwd() / DEFAULT_FOLDER, checkout / DEFAULT_FOLDER]
    for candidate in candidates:
        if (candidate / "index.html").is_file():
            return candidate.resolve()
    return None


def viewer_status(origin: str, settings: Settings) -> str:
    """The line the server prints on start: the viewer's URL, or how to install it."""
    if find_viewer_dir(settings) is None:
        return "OHIF viewer: not installed (run scripts/viewer, or use --viewer-dir)"
    return f"OHIF viewer at {origin}{MOUNT}/"


def ohif_config(dicomweb_url: str, prefix: str) -> dict[str, Any]:
    """OHIF's ``window.config`` for this server: one DICOMweb data source, WADO-RS pixels."""
    return {
        "name": "dicomweb-proxy",
        "routerBasename": prefix or "/",
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        # OHIF's "investigational use" notice: shown once, then every 30 days.
        "investigationalUseDialog": {"option": "configure", "days": 30},
        "maxNumRequests": {"interaction": 100, "thumbnail": 75, "prefetch": 25},
        "defaultDataSourceName": "dicomweb-proxy",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "dicomweb-proxy",
                "configuration": {
                    "friendlyName": "dicomweb-proxy",
                    "name": "dicomweb-proxy",
                    "qidoRoot": dicomweb_url,
                    "wadoRoot": dicomweb_url,
                    "wadoUriRoot": dicomweb_url,
                    "qidoSupportsIncludeField": True,
                    "supportsReject": False,
                    "supportsStow": False,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "staticWado": False,
                    "singlepart": "bulkdata,video",
                    "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                    "omitQuotationForMultipartRequest": False,
                },
            }
        ],
    }


def app_config_script(dicomweb_url: str, prefix: str) -> str:
    config = json.dumps(ohif_config(dicomweb_url, prefix), indent=2, ensure_ascii=False)
    return (
        "/* Generated by dicomweb-proxy for this server (dicomweb_proxy/http/viewer.py). */\n"
        # Some OHIF builds read a bare __filename (Emscripten glue) and fail to boot without it.
        "window.__filename = window.__filename || '';\n"
        f"window.config = {config};\n"
    )


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    etag: str


class ViewerFiles:
    """Serves one OHIF dist folder; per worker process."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._assets: SizedLRU[tuple[str, int, int, str], _Asset] = SizedLRU(
            ASSET_CACHE_BYTES, lambda asset: len(asset.body) + len(asset.gzipped or b"")
        )

    async def handle(self, request: Request) -> Response:
        if self.root is None:
            return PlainTextResponse(NOT_INSTALLED, 404)
        prefix = _prefix(request)
        path = request.path_params.get("path", "")
        if path == "app-config.js":
            script = app_config_script(service_base_url(request), prefix)
            return Response(
                script, media_type=_CONTENT_TYPES[".js"], headers={"Cache-Control": "no-store"}
            )
        file = self._file(path or "index.html")
        if file is None:
            if not _wants_html(request):
                return PlainTextResponse(f"no such viewer file: {path}\n", 404)
            file = self.root / "index.html"
        response = await self._serve(request, file, prefix)
        if file.suffix.lower() in REWRITES:  # the body holds the prefix
            response.headers.add_vary_header("X-Forwarded-Prefix")
        return response

    def _file(self, path: str) -> Path | None:
        """The file under the root a URL path names; None for folders, escapes and misses."""
        assert self.root is not None
        if "\x00" in path:
            return None
        candidate = Path(os.path.realpath(self.root / path))
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    async def _serve(self, request: Request, file: Path, prefix: str) -> Response:
        suffix = file.suffix.lower()
        stat = file.stat()
        cache_control = IMMUTABLE if _HASHED.search(file.name) else REVALIDATE
        if suffix not in _TEXT_SUFFIXES or stat.st_size > _LARGEST_CACHED_FILE:
            return FileResponse(
                file,
                stat_result=stat,
                media_type=_content_type(suffix),
                headers={"Cache-Control": cache_control},
            )
        key = (str(file), stat.st_mtime_ns, stat.st_size, prefix)
        asset = self._assets.get(key)
        if asset is None:
            asset = self._assets.put(key, await run_in_threadpool(_load, file, prefix))
        body, etag, encoding = asset.body, asset.etag, {}
        if asset.gzipped is not None and accepts_gzip(request):
            # Each representation its own ETag (as the metadata resource does).
            body, etag = asset.gzipped, variant_etag(etag, "gzip")
            encoding = {"Content-Encoding": "gzip"}
        headers = {"Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding"}
        if not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=_content_type(suffix), headers={**headers, **encoding})


def _load(file: Path, prefix: str) -> _Asset:
    body = rewrite(file.suffix.lower(), file.read_bytes(), prefix)
    gzipped = gzip.compress(body, compresslevel=3, mtime=0) if len(body) > 1024 else None
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return _Asset(body, gzipped, etag)


def rewrite(suffix: str, body: bytes, prefix: str) -> bytes:
    """The file's root-relative references moved under *prefix* (see REWRITES), escaped for
    where each one stands (urls.py only lets plain path segments through; this holds anyway)."""
    if not prefix:
        return body
    js = json.dumps(prefix)[1:-1]
    for char in "<>&'":  # no </script>, no end of a single-quoted string
        js = js.replace(char, f"\\u{ord(char):04x}")
    encoded = {
        b"{js}": js,
        b"{attr}": html.escape(prefix, quote=True),
        b"{url}": urllib.parse.quote(prefix, safe="/"),
    }
    for pattern, template in REWRITES.get(suffix, ()):
        for placeholder, value in encoded.items():
            # a re replacement template: its backslashes are escapes
            template = template.replace(placeholder, value.encode().replace(b"\\", b"\\\\"))
        body = pattern.sub(template, body)
    return body


def _prefix(request: Request) -> str:
    """The viewer's path as the browser sees it (behind a trusted proxy: after its
    X-Forwarded-Prefix, validated by urls.py)."""
    return forwarded_prefix(request) + MOUNT


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _content_type(suffix: str) -> str:
    return (
        _CONTENT_TYPES.get(suffix)
        or mimetypes.guess_type(f"x{suffix}")[0]
        or ("application/octet-stream")
    )


def routes(settings: Settings) -> list[BaseRoute]:
    """``/viewer/...``, registered next to (not under) the DICOMweb base path."""
    files = ViewerFiles(find_viewer_dir(settings))

    async def redirect(request: Request) -> Response:
        return RedirectResponse(_prefix(request) + "/", 308, headers={"Vary": "X-Forwarded-Prefix"})

    return [
        Route(MOUNT, redirect, methods=["GET", "HEAD"]),
        Route(MOUNT + "/{path:path}", files.handle, methods=["GET", "HEAD"]),
    ]


def root_asset_routes() -> list[BaseRoute]:
    """``/assets/...`` and ``/favicon.ico`` redirected into the viewer: OHIF's files name a few
    icons root-relative where no rewrite reaches (``sw.js``'s precache list, browser manifests,
    ``browserconfig.xml``), and browsers ask for ``/favicon.ico`` on their own. Registered after
    the DICOMweb mounts, so a base path of ``/assets`` keeps its own."""

    async def asset(request: Request) -> Response:
        path = urllib.parse.quote(request.path_params.get("path", "favicon.ico"))
        location = f"{_prefix(request)}/assets/{path}"
        return RedirectResponse(location, 308, headers={"Vary": "X-Forwarded-Prefix"})

    return [
        Route("/assets/{path:path}", asset, methods=["GET", "HEAD"]),
        Route("/favicon.ico", asset, methods=["GET", "HEAD"]),
    ]
