"""Absolute URLs of this service as clients see them (RetrieveURL, BulkDataURI, the viewer's path).

Behind a load balancer the request's own host and scheme are not the client's: a configured
``public_base_url`` wins, then the ``Forwarded`` / ``X-Forwarded-Host``, ``-Proto`` and ``-Prefix``
headers, then the request itself. The forwarded headers count only when the connection comes from
a peer in ``forwarded_allow_ips`` (a proxy that sets them; any other client could write anything
there), and only values of the expected shape (:func:`forwarded_values`): a host name or address
with an optional port, ``http`` or ``https``, a path of plain segments. Anything else is ignored,
so these values are safe to put into URLs, HTML and scripts. (uvicorn runs without its own proxy
handling, which would replace the peer's address by X-Forwarded-For's before this check.)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import cache

from starlette.requests import Request

from ..config import Settings

#: The request headers :func:`forwarded_values` reads (for ``Vary``).
FORWARDED_HEADERS = ("Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Prefix")

#: A host name or IPv4 address (``_``: some container names have one) or a bracketed IPv6 address,
#: with an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?")
_PROTO = re.compile(r"https?")
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)*")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Forwarded:
    """How the client addressed this service: scheme, host (``name[:port]``) and path prefix
    (``""`` or ``/a/b``, without a final '/')."""

    scheme: str
    host: str
    prefix: str


def forwarded_values(request: Request) -> Forwarded:
    """The client's scheme, host and path prefix: from the forwarded headers when the peer is a
    trusted proxy and the values are valid, else the request's own."""
    headers = request.headers
    protos: list[str | None] = []
    hosts: list[str | None] = []
    prefixes: list[str | None] = []
    if peer_is_trusted(request):
        forwarded = _parse_forwarded(headers.get("forwarded", ""))
        protos = [forwarded.get("proto"), _first(headers.get("x-forwarded-proto"))]
        hosts = [forwarded.get("host"), _first(headers.get("x-forwarded-host"))]
        prefixes = [_first(headers.get("x-forwarded-prefix"))]
    return Forwarded(
        scheme=_valid_proto(protos) or request.url.scheme,
        host=_valid_host([*hosts, headers.get("host")]) or _server_address(request),
        prefix=_valid_prefix(prefixes) or "",
    )


def forwarded_prefix(request: Request) -> str:
    """The path prefix a trusted proxy puts in front of this service (``""`` when none)."""
    return forwarded_values(request).prefix


def service_base_url(request: Request) -> str:
    """The DICOMweb base URL (e.g. ``https://pacs.example.org/aetitle``), without a final '/'."""
    return datastore_base_url(request, request.app.state.services.settings)


def datastore_base_url(request: Request, settings: Settings) -> str:
    """The base URL of the datastore *settings* describe, as the client reaching *request* sees
    it (the front page lists every datastore's)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    client = forwarded_values(request)
    return f"{client.scheme}://{client.host}{client.prefix}{settings.base_path.rstrip('/')}"


def peer_is_trusted(request: Request) -> bool:
    """Whether the connection comes from an address in the ``forwarded_allow_ips`` setting."""
    allowed = tuple(request.app.state.services.settings.forwarded_allow_ips)
    if "*" in allowed:
        return True
    if request.client is None or not allowed:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(allowed))


@cache
def _networks(allowed: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed if item != "*")


def _server_address(request: Request) -> str:
    """``host:port`` the connection came in on (for a request without a valid Host header)."""
    host, port = request.scope.get("server") or ("localhost", None)
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def _valid_proto(values: list[str | None]) -> str | None:
    for value in values:
        if value and _PROTO.fullmatch(value.lower()):
            return value.lower()
    return None


def _valid_host(values: list[str | None]) -> str | None:
    for value in values:
        match = _HOST.fullmatch(value or "")
        if match and (match.group(1) is None or int(match.group(1)) <= 65535):
            return value
    return None


def _valid_prefix(values: list[str | None]) -> str | None:
    for value in values:
        if value is None:
            continue
        value = value.rstrip("/")
        segments = value.split("/")[1:]
        if _PREFIX.fullmatch(value) and not {".", ".."} & set(segments):
            return value
    return None


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
