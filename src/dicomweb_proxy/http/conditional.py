"""Content coding and conditional requests, shared by every route that serves cacheable bodies
(metadata, frames, bulk data, the viewer's files).

- :func:`accepts_gzip`: whether ``Accept-Encoding`` (RFC 9110 12.5.3) allows a gzip body. Names
  are case-insensitive, ``x-gzip`` is ``gzip``, ``q=0`` means "not acceptable", and an explicit
  ``gzip`` wins over ``*``. No header: identity only (servers may send anything, but a client
  that says nothing is safest with the identity body).
- :func:`not_modified`: whether ``If-None-Match`` (RFC 9110 13.1.2) matches the current ETag:
  ``*`` matches any existing representation; otherwise a comma-separated list of entity tags,
  compared weakly (``W/"x"`` matches ``"x"``), as the RFC asks for this header.
- :func:`variant_etag`: the ETag of another coding of the same body (``"abc"`` → ``"abc-gzip"``).
"""

from __future__ import annotations

import re

from starlette.requests import Request

#: One element of Accept-Encoding: a coding name, then parameters (only q matters).
_CODING = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*((?:;[^,]*)?)")
_Q = re.compile(r";\s*q\s*=\s*([0-9.]+)\s*(?:;|$)", re.IGNORECASE)
#: RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
#: An entity tag (RFC 9110 8.8.3): optional weakness, then opaque characters in quotes.
_ENTITY_TAG = re.compile(r'(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
#: A list of entity tags; empty elements are allowed (RFC 9110 5.6.1).
_ENTITY_TAGS = re.compile(r'[\s,]*(?:(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"[\s,]*)*')


def accepts_gzip(request: Request) -> bool:
    """Whether the request's ``Accept-Encoding`` lets the answer be gzip-compressed."""
    return accepts_coding(request.headers.get("accept-encoding", ""), "gzip")


def accepts_coding(header: str, coding: str) -> bool:
    """Whether *coding* has a non-zero quality in an Accept-Encoding value; the quality of an
    explicit mention wins over ``*``. Malformed elements are ignored."""
    names = {coding, f"x-{coding}"} if coding in ("gzip", "compress") else {coding}
    explicit: float | None = None
    wildcard: float | None = None
    for element in header.split(","):
        if not element.strip():
            continue
        match = _CODING.fullmatch(element)
        if match is None:
            continue
        quality = _quality(match.group(2))
        if quality is None:
            continue
        name = match.group(1).lower()
        if name in names:
            explicit = max(explicit or 0.0, quality)
        elif name == "*":
            wildcard = quality
    chosen = explicit if explicit is not None else wildcard
    return bool(chosen)


def _quality(parameters: str) -> float | None:
    """The q of an element's parameters (1 without one); None when q is malformed."""
    match = _Q.search(parameters)
    if match is None:
        return None if re.search(r";\s*q\s*=", parameters, re.IGNORECASE) else 1.0
    value = match.group(1)
    return float(value) if _QVALUE.fullmatch(value) else None


def not_modified(request: Request, etag: str) -> bool:
    """Whether ``If-None-Match`` matches *etag* (weak comparison): the answer is then 304."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    return if_none_match(header, etag)


def if_none_match(header: str, etag: str) -> bool:
    """Whether an If-None-Match value matches *etag*; a malformed list matches nothing."""
    if header.strip() == "*":
        return True
    if _ENTITY_TAGS.fullmatch(header) is None:
        return False
    return _opaque(etag) in _ENTITY_TAG.findall(header)


def _opaque(etag: str) -> str:
    """The quoted part of an entity tag, without weakness and quotes."""
    return etag.strip().removeprefix("W/").strip('"')


def variant_etag(etag: str, coding: str) -> str:
    """The ETag of the same body in another content coding: each representation its own."""
    weak = "W/" if etag.startswith("W/") else ""
    return f'{weak}"{_opaque(etag)}-{coding}"'
