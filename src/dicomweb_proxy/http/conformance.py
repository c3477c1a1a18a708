"""What the service offers, as data: resources, query keys, media types, transfer syntaxes.

The one description behind the capabilities document the server answers (``OPTIONS {base}``,
``GET {base}/capabilities``; PS3.18 8.9, WADL per Appendix H, or JSON) and behind
``docs/conformance.md`` (``python -m dicomweb_proxy.http.conformance > docs/conformance.md``;
a test fails when the committed file differs). Lists that the code already keeps are read from
where the code uses them: matching keys from the index's search columns, returned attributes from
the query parser, media types and transfer syntaxes from the negotiation tables and the
transcoder. The resource list is checked against the application's routes by the tests (every
route described, every described resource answering). It describes the HTTP layer and reads the
HTTP layer's tables, so it lives in ``http/``; only ``http/capabilities.py`` imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pydicom.uid import UID

from ..dicom import transcode
from ..dicom import transfer_syntax as ts
from ..dicom.query import MAX_INCLUDEFIELDS, RESERVED, Level, find_attribute, parse_search
from ..dicom.render import RENDERED_MEDIA_TYPES
from ..index.matching import COLUMNS, IN_STUDY
from .negotiation import (
    ALIASES,
    DICOM,
    DICOM_JSON,
    MEDIA_TYPE_SYNTAXES,
    OCTET_STREAM,
    media_type_of,
)

WADL = "application/vnd.sun.wadl+xml"
JSON = "application/json"
CAPABILITIES_MEDIA_TYPES = (WADL, JSON)  # WADL first: the default (PS3.18 8.9)

# --- media types a resource answers with -------------------------------------------------------


def _multipart(media_type: str) -> str:
    return f'multipart/related; type="{media_type}"'


_FRAME_TYPES = tuple(
    dict.fromkeys([OCTET_STREAM, *MEDIA_TYPE_SYNTAXES, "video/mpeg2", "video/mp4", "video/H265"])
)
SEARCH = (DICOM_JSON,)
METADATA = (DICOM_JSON,)
INSTANCES = (_multipart(DICOM),)
INSTANCE = (_multipart(DICOM), DICOM)
FRAMES = tuple(_multipart(media_type) for media_type in _FRAME_TYPES)
FRAME = FRAMES + _FRAME_TYPES  # one frame: single-part too
BULK = (_multipart(OCTET_STREAM), OCTET_STREAM)
RENDERED = RENDERED_MEDIA_TYPES


# --- query parameters ---------------------------------------------------------------------------

QUERY_PARAMETERS: dict[str, str] = {
    "{attribute}": "a matching key, by keyword (PatientName) or tag (00100010); repeated keys "
    "and backslash-separated values are lists of values",
    "includefield": "attributes to return besides the defaults: keywords or tags, "
    f"comma-separated and/or repeated, or 'all'; at most {MAX_INCLUDEFIELDS}",
    "fuzzymatching": "true or false (default): person names matched at the start of any name "
    "component",
    "limit": "page size (the server caps it and says so in a Warning header)",
    "offset": "results to skip",
    "orderby": "extension: comma-separated keys, '-' for descending (-StudyDate,PatientName)",
}
assert set(QUERY_PARAMETERS) >= RESERVED, "a QIDO option is missing from QUERY_PARAMETERS"
ACCEPT_PARAMETER = {"accept": "a media type, instead of the Accept header (PS3.18 8.3.3.1)"}
RENDERED_PARAMETERS: dict[str, str] = {
    "window": "center,width,function (LINEAR, LINEAR_EXACT or SIGMOID): the VOI window",
    "viewport": "vw,vh or vw,vh,sx,sy,sw,sh: output size and source region",
    "quality": "1-100: JPEG quality",
    "annotation": "accepted and ignored, with a Warning header",
}
THUMBNAIL_PARAMETERS: dict[str, str] = {
    "viewport": "vw,vh: the box the thumbnail fits in (default 128x128)",
}


# --- resources ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    path: str  # under the base path; {study}, {series}, {instance}, {frames}, {path}
    transaction: str
    section: str  # where PS3.18 (or another document) defines it
    media_types: tuple[str, ...]
    parameters: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("GET", "HEAD")
    ranges: bool = False  # answers single byte ranges (206, Content-Range)


_STUDY = "/studies/{study}"
_SERIES = _STUDY + "/series/{series}"
_INSTANCE = _SERIES + "/instances/{instance}"
_FRAMES = _INSTANCE + "/frames/{frames}"
_SEARCH_PARAMETERS = (*QUERY_PARAMETERS, "accept")
_RENDERED_PARAMETERS = (*RENDERED_PARAMETERS, "accept")
_THUMBNAIL_PARAMETERS = (*THUMBNAIL_PARAMETERS, "accept")

RESOURCES: tuple[Resource, ...] = (
    Resource("/studies", "Search for Studies", "PS3.18 10.6", SEARCH, _SEARCH_PARAMETERS),
    Resource("/series", "Search for Series", "PS3.18 10.6", SEARCH, _SEARCH_PARAMETERS),
    Resource("/instances", "Search for Instances", "PS3.18 10.6", SEARCH, _SEARCH_PARAMETERS),
    Resource(
        _STUDY + "/series",
        "Search for Series of a Study",
        "PS3.18 10.6",
        SEARCH,
        _SEARCH_PARAMETERS,
    ),
    Resource(
        _STUDY + "/instances",
        "Search for Instances of a Study",
        "PS3.18 10.6",
        SEARCH,
        _SEARCH_PARAMETERS,
    ),
    Resource(
        _SERIES + "/instances",
        "Search for Instances of a Series",
        "PS3.18 10.6",
        SEARCH,
        _SEARCH_PARAMETERS,
    ),
    Resource(_STUDY, "Retrieve Study", "PS3.18 10.4", INSTANCES, ("accept",)),
    Resource(_SERIES, "Retrieve Series", "PS3.18 10.4", INSTANCES, ("accept",)),
    Resource(_INSTANCE, "Retrieve Instance", "PS3.18 10.4", INSTANCE, ("accept",)),
    Resource(_STUDY + "/metadata", "Retrieve Study Metadata", "PS3.18 10.4", METADATA),
    Resource(_SERIES + "/metadata", "Retrieve Series Metadata", "PS3.18 10.4", METADATA),
    Resource(_INSTANCE + "/metadata", "Retrieve Instance Metadata", "PS3.18 10.4", METADATA),
    Resource(_FRAMES, "Retrieve Frames", "PS3.18 10.4", FRAME, ("accept",), ranges=True),
    Resource(
        _INSTANCE + "/bulk/{path}",
        "Retrieve Bulkdata (the BulkDataURIs of the metadata)",
        "PS3.18 10.4",
        tuple(dict.fromkeys(BULK + FRAMES)),
        ("accept",),
        ranges=True,
    ),
    Resource(
        _STUDY + "/rendered",
        "Retrieve Rendered Study",
        "PS3.18 10.4",
        RENDERED,
        _RENDERED_PARAMETERS,
    ),
    Resource(
        _SERIES + "/rendered",
        "Retrieve Rendered Series",
        "PS3.18 10.4",
        RENDERED,
        _RENDERED_PARAMETERS,
    ),
    Resource(
        _INSTANCE + "/rendered",
        "Retrieve Rendered Instance",
        "PS3.18 10.4",
        RENDERED,
        _RENDERED_PARAMETERS,
    ),
    Resource(
        _FRAMES + "/rendered",
        "Retrieve Rendered Frames",
        "PS3.18 10.4",
        RENDERED,
        _RENDERED_PARAMETERS,
    ),
    Resource(
        _STUDY + "/thumbnail",
        "Retrieve Study Thumbnail",
        "PS3.18 10.4",
        RENDERED,
        _THUMBNAIL_PARAMETERS,
    ),
    Resource(
        _SERIES + "/thumbnail",
        "Retrieve Series Thumbnail",
        "PS3.18 10.4",
        RENDERED,
        _THUMBNAIL_PARAMETERS,
    ),
    Resource(
        _INSTANCE + "/thumbnail",
        "Retrieve Instance Thumbnail",
        "PS3.18 10.4",
        RENDERED,
        _THUMBNAIL_PARAMETERS,
    ),
    Resource(
        _FRAMES + "/thumbnail",
        "Retrieve Frame Thumbnail",
        "PS3.18 10.4",
        RENDERED,
        _THUMBNAIL_PARAMETERS,
    ),
    Resource(
        "/capabilities",
        "Retrieve Capabilities (also OPTIONS on the base URL and on every resource)",
        "PS3.18 8.9",
        CAPABILITIES_MEDIA_TYPES,
        ("accept",),
        ("GET", "HEAD", "OPTIONS"),
    ),
    Resource("/health/live", "Liveness: the process answers (extension)", "README", (JSON,)),
    Resource(
        "/health/ready", "Readiness: the index and the store answer (extension)", "README", (JSON,)
    ),
    Resource("/health", "Health check: readiness, as /health/ready (extension)", "README", (JSON,)),
    Resource(
        "/",
        "Front page: the datastores with their counts, health, capabilities, viewer (extension; "
        "also GET on the base URL without the final slash and on /)",
        "README",
        ("text/html", JSON),
    ),
)


def resource_for(path: str) -> Resource | None:
    return next((resource for resource in RESOURCES if resource.path == path), None)


# --- search keys and returned attributes --------------------------------------------------------

_LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE)


@cache
def matching_keys() -> dict[str, tuple[str, ...]]:
    """Keywords the index can match, by the level that holds them."""
    keys: dict[str, list[str]] = {level.name.lower(): [] for level in _LEVELS}
    for keyword in [*COLUMNS, *IN_STUDY]:
        attribute = find_attribute(keyword)
        assert attribute is not None, keyword
        keys[attribute.level.name.lower()].append(keyword)
    return {level: tuple(names) for level, names in keys.items()}


@cache
def returned_attributes() -> dict[str, tuple[str, ...]]:
    """What each search level returns without includefield (PS3.18 Tables 10.6.3-3 to -5)."""
    levels = (Level.STUDY, Level.SERIES, Level.INSTANCE)
    return {
        level.name.lower(): tuple(key.attribute.keyword for key in parse_search(level, []).returned)
        for level in levels
    }


# --- transfer syntaxes --------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferSyntax:
    uid: str
    name: str
    media_type: str
    stored: str  # when frames are kept in this syntax ("" never)
    produced: str  # when the server transcodes into it ("" never)


_MONO8 = {"BitsAllocated": 8, "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2"}
_MONO16 = {**_MONO8, "BitsAllocated": 16}


def _transcode_targets() -> dict[str, str]:
    """Syntaxes lossless frames can be transcoded to, as the transcoder decides them."""
    found: dict[str, str] = {}
    for stored in (ts.HTJ2K_LOSSLESS_RPCL, ts.EXPLICIT_VR_LE):
        for attributes in (_MONO16, _MONO8):
            for uid in transcode.targets(stored, {**attributes, "PixelData": None}):
                if uid in transcode.LOSSY_TARGETS:
                    found[uid] = "from lossless 8-bit frames, only when asked for by name (lossy)"
                else:
                    found.setdefault(uid, "from lossless frames")
    found[ts.HTJ2K_LOSSLESS] = "the stored HTJ2K RPCL codestream, labelled .201; or encoded"
    return found


@cache
def transfer_syntaxes() -> tuple[TransferSyntax, ...]:
    produced = _transcode_targets()
    stored: dict[str, str] = {
        ts.HTJ2K_LOSSLESS_RPCL: "the default for lossless and uncompressed sources",
        ts.EXPLICIT_VR_LE: "uncompressed sources with --keep-original; pixels HTJ2K cannot hold "
        "(1-bit, float)",
    }
    for uid in sorted(ts.LOSSLESS_ENCAPSULATED):
        stored[uid] = "with --keep-original"
    for uid in _known_syntaxes():
        if ts.keeps_original_bytes(uid):
            stored.setdefault(uid, "as the source had it (lossy, video and HTJ2K sources)")
    uids = dict.fromkeys([*stored, *produced])
    return tuple(
        TransferSyntax(
            uid, UID(uid).name, media_type_of(uid), stored.get(uid, ""), produced.get(uid, "")
        )
        for uid in sorted(uids, key=_syntax_order)
    )


def _known_syntaxes() -> list[str]:
    uids = {uid for syntaxes in MEDIA_TYPE_SYNTAXES.values() for uid in syntaxes}
    return sorted(uids | ts.VIDEO | ts.HTJ2K_FAMILY)


def _syntax_order(uid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in uid.split("."))


# --- documents ----------------------------------------------------------------------------------


def service_version() -> str:
    try:
        return version("dicomweb-proxy")
    except PackageNotFoundError:
        return "unknown"


def _parameters(names: Iterable[str]) -> dict[str, str]:
    every = {**QUERY_PARAMETERS, **ACCEPT_PARAMETER, **RENDERED_PARAMETERS}
    meanings = {**every, **THUMBNAIL_PARAMETERS}
    return {name: meanings[name] for name in names}


def capabilities(base_url: str, resources: Iterable[Resource] = RESOURCES) -> dict[str, Any]:
    """The capabilities as JSON (the same content as the WADL)."""
    return {
        "service": "dicomweb-proxy",
        "version": service_version(),
        "standard": "DICOM PS3.18 (QIDO-RS, WADO-RS)",
        "base": base_url,
        "resources": [
            {
                "path": resource.path,
                "url": base_url + resource.path,
                "transaction": resource.transaction,
                "section": resource.section,
                "methods": list(resource.methods),
                "mediaTypes": list(resource.media_types),
                "parameters": _parameters(resource.parameters),
                "byteRanges": resource.ranges,
            }
            for resource in resources
        ],
        "matchingKeys": {level: list(keys) for level, keys in matching_keys().items()},
        "returnedAttributes": {level: list(keys) for level, keys in returned_attributes().items()},
        "transferSyntaxes": [
            {
                "uid": syntax.uid,
                "name": syntax.name,
                "mediaType": syntax.media_type,
                "stored": syntax.stored,
                "produced": syntax.produced,
            }
            for syntax in transfer_syntaxes()
        ],
        "mediaTypeAliases": dict(ALIASES),
    }


def wadl(base_url: str, resources: Iterable[Resource] = RESOURCES) -> str:
    """The capabilities as WADL (PS3.18 Appendix H): one resource element per path."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<application xmlns="http://wadl.dev.java.net/2009/02">',
        f'  <doc title="dicomweb-proxy {escape(service_version())}">'
        "DICOM PS3.18 QIDO-RS and WADO-RS</doc>",
        f"  <resources base={quoteattr(base_url.rstrip('/') + '/')}>",
    ]
    for resource in resources:
        lines.append(f"    <resource path={quoteattr(resource.path.lstrip('/'))}>")
        lines.append(f"      <doc title={quoteattr(resource.transaction)}>{resource.section}</doc>")
        for name in _template_parameters(resource.path):
            lines.append(f'      <param name="{name}" style="template" required="true"/>')
        for method in resource.methods:
            lines.append(f'      <method name="{method}">')
            parameters = _parameters(resource.parameters)
            if parameters and method != "OPTIONS":
                lines.append("        <request>")
                for name, meaning in parameters.items():
                    repeating = (
                        ' repeating="true"' if name in ("{attribute}", "includefield") else ""
                    )
                    lines.append(
                        f'          <param name={quoteattr(name)} style="query"{repeating}>'
                        f"<doc>{escape(meaning)}</doc></param>"
                    )
                lines.append("        </request>")
            lines.append('        <response status="200">')
            for media_type in resource.media_types:
                lines.append(f"          <representation mediaType={quoteattr(media_type)}/>")
            lines.append("        </response>")
            lines.append("      </method>")
        lines.append("    </resource>")
    lines += ["  </resources>", "</application>", ""]
    return "\n".join(lines)


def _template_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def markdown() -> str:
    """docs/conformance.md."""
    out = [
        "# Conformance: what the service offers",
        "",
        "Generated from `src/dicomweb_proxy/http/conformance.py` by",
        "`python -m dicomweb_proxy.http.conformance > docs/conformance.md`; do not edit by hand",
        "(a test compares them). The running server answers the same content as a capabilities",
        "document (PS3.18 8.9): `OPTIONS {base}` or `GET {base}/capabilities` give WADL",
        f"(`{WADL}`, PS3.18 Appendix H) by default, JSON with `Accept: {JSON}`",
        f"(or `?accept={JSON}`); `OPTIONS` on a resource describes that resource alone.",
        "",
        "## Resources",
        "",
        "Under the base path (`/aetitle` by default). Byte ranges: a single `Range` answered with",
        "206 and `Content-Range` (416 when past the end).",
        "",
        "| resource | transaction | methods | media types | parameters |",
        "| --- | --- | --- | --- | --- |",
    ]
    for resource in RESOURCES:
        media = "<br>".join(f"`{media_type}`" for media_type in resource.media_types)
        parameters = ", ".join(f"`{name}`" for name in resource.parameters) or "—"
        transaction = f"{resource.transaction} ({resource.section})"
        if resource.ranges:
            transaction += "; byte ranges"
        out.append(
            f"| `{resource.path}` | {transaction} | {', '.join(resource.methods)} | {media} | "
            f"{parameters} |"
        )
    out += ["", "## Query parameters", "", "| parameter | meaning |", "| --- | --- |"]
    every = {**QUERY_PARAMETERS, **ACCEPT_PARAMETER}
    out += [f"| `{name}` | {meaning} |" for name, meaning in every.items()]
    out += ["", "Rendered resources:", "", "| parameter | meaning |", "| --- | --- |"]
    out += [f"| `{name}` | {meaning} |" for name, meaning in RENDERED_PARAMETERS.items()]
    out += [
        "",
        "## Matching keys",
        "",
        "Attributes a search can match on, by the level that holds them. Every search level takes",
        "all of them: a key of a lower level matches when one series or instance below matches",
        "(`/studies?Modality=CT`). Other parameters are ignored and named in a Warning header",
        "(PS3.18 8.3): unknown keys, sequence item paths, and other attributes given a value",
        "(those are returned, as with universal matching).",
        "",
        "| level | keys |",
        "| --- | --- |",
    ]
    out += [f"| {level} | {', '.join(keys)} |" for level, keys in matching_keys().items()]
    out += [
        "",
        "## Attributes returned by default",
        "",
        "`includefield` adds attributes of the search level and the levels above it.",
        "",
        "| search level | attributes |",
        "| --- | --- |",
    ]
    out += [f"| {level} | {', '.join(keys)} |" for level, keys in returned_attributes().items()]
    out += [
        "",
        "## Transfer syntaxes",
        "",
        "Frames are sent as stored with `transfer-syntax=*`, otherwise in the syntax asked for",
        "(docs/wado.md explains the negotiation).",
        "",
        "| UID | name | media type | stored | produced by transcoding |",
        "| --- | --- | --- | --- | --- |",
    ]
    out += [
        f"| `{s.uid}` | {s.name} | `{s.media_type}` | {s.stored or '—'} | {s.produced or '—'} |"
        for s in transfer_syntaxes()
    ]
    out += [
        "",
        "## Media type names accepted as aliases",
        "",
        "| asked | understood as |",
        "| --- | --- |",
    ]
    out += [f"| `{alias}` | `{name}` |" for alias, name in ALIASES.items()]
    return "\n".join(out) + "\n"


def main() -> int:
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
