"""Absolute URLs of this service as clients see them (RetrieveURL, BulkDataURI).

Behind a load balancer the request's own host and scheme are not the client's: a configured
``public_base_url`` wins, then the ``Forwarded`` / ``X-Forwarded-Host``, ``-Proto`` and ``-Prefix``
headers, then the request itself.
"""

from __future__ import annotations

from starlette.requests import Request


def service_base_url(request: Request) -> str:
    """The DICOMweb base URL (e.g. ``https://pacs.example.org/aetitle``), without a final '/'."""
    settings = request.app.state.services.settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    headers = request.headers
    forwarded = _parse_forwarded(headers.get("forwarded", ""))
    scheme = (
        forwarded.get("proto") or _first(headers.get("x-forwarded-proto")) or request.url.scheme
    )
    host = forwarded.get("host") or _first(headers.get("x-forwarded-host")) or headers.get("host")
    host = host or f"{request.url.hostname}:{request.url.port}"
    prefix = (_first(headers.get("x-forwarded-prefix")) or "").rstrip("/")
    return f"{scheme}://{host}{prefix}{settings.base_path.rstrip('/')}"


def _first(value: str | None) -> str | None:
    """The client-side value of a header a chain of proxies appended to."""
    return value.split(",")[0].strip() or None if value else None


def _parse_forwarded(value: str) -> dict[str, str]:
    """The first element of an RFC 7239 ``Forwarded`` header."""
    pairs: dict[str, str] = {}
    for part in value.split(",")[0].split(";"):
        name, _, item = part.partition("=")
        if item:
            pairs[name.strip().lower()] = item.strip().strip('"')
    return pairs
