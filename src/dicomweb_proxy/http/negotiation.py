"""Content negotiation for every DICOMweb resource (PS3.18 8.7), in one place.

A request's acceptable media ranges come from the ``accept`` query parameter when present, else
from the ``Accept`` header. A resource lists the representations it can produce, in the server's
order of preference, as :class:`Offer` values; :func:`choose` picks one. Decisions (see
docs/wado.md): ``*/*`` means the resource's default representation; a media type without a
``transfer-syntax`` parameter means Explicit VR Little Endian for ``application/dicom`` and
``application/octet-stream`` and any representation of that media type that needs no lossy
transcoding otherwise; ``transfer-syntax=*`` means any non-lossy one, the stored bytes first;
``application/octet-stream`` with an explicit or ``*`` transfer syntax may carry compressed frames
(what OHIF/Cornerstone ask for and decode from the part's ``transfer-syntax`` parameter).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..dicom import transfer_syntax as ts

ANY = "*/*"
MULTIPART = "multipart/related"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"

#: Names seen in the wild for standard media types (VIEWERS.md); matched case-insensitively.
ALIASES = {
    "image/jhc": "image/jphc",
    "image/x-jls": "image/jls",
    "image/x-dicom-rle": "image/dicom-rle",
    "application/json": DICOM_JSON,
    "multipart/*": MULTIPART,
}

#: Media types of encapsulated transfer syntaxes, default first (PS3.18 Table 8.7.3-5).
MEDIA_TYPE_SYNTAXES: dict[str, tuple[str, ...]] = {
    "image/jpeg": (ts.JPEG_LOSSLESS_SV1, ts.JPEG_BASELINE, ts.JPEG_EXTENDED, ts.JPEG_LOSSLESS),
    "image/dicom-rle": (ts.RLE_LOSSLESS,),
    "image/jls": (ts.JPEG_LS_LOSSLESS, ts.JPEG_LS_NEAR_LOSSLESS),
    "image/jp2": (ts.JPEG_2000_LOSSLESS, ts.JPEG_2000),
    "image/jpx": (ts.JPEG_2000_MC_LOSSLESS, ts.JPEG_2000_MC),
    "image/jphc": (ts.HTJ2K_LOSSLESS, ts.HTJ2K_LOSSLESS_RPCL, ts.HTJ2K),
}
_MEDIA_TYPE_OF_SYNTAX = {uid: media for media, uids in MEDIA_TYPE_SYNTAXES.items() for uid in uids}
#: Media types whose transfer syntax is not implied by the type: no parameter means this one.
_DEFAULT_SYNTAX = {DICOM: ts.EXPLICIT_VR_LE, OCTET_STREAM: ts.EXPLICIT_VR_LE}
#: type/subtype (RFC 9110 8.3.1), either possibly ``*``.
_MEDIA_RANGE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
#: A q value: RFC 9110 12.4.2 allows 0 to 1 with up to 3 decimals; longer decimals are read
#: too. Anything else (``x``, ``nan``, ``1e3``) counts as 1, like no q at all.
_QVALUE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{0,12})?|\.[0-9]{1,12}")


def media_type_of(transfer_syntax_uid: str) -> str:
    """The single-part media type frames of this transfer syntax are sent as."""
    if transfer_syntax_uid in ts.NATIVE:
        return OCTET_STREAM
    if transfer_syntax_uid in ts.VIDEO:
        return _video_media_type(transfer_syntax_uid)
    return _MEDIA_TYPE_OF_SYNTAX.get(transfer_syntax_uid, OCTET_STREAM)


def _video_media_type(uid: str) -> str:
    number = uid.removeprefix("1.2.840.10008.1.2.4.").split(".")[0]
    if number in ("100", "101"):
        return "video/mpeg2"
    return "video/H265" if number in ("107", "108") else "video/mp4"


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One element of an Accept list. For ``multipart/related``, ``part_type`` is its ``type``."""

    media_type: str
    part_type: str | None = None
    transfer_syntax: str | None = None
    q: float = 1.0

    @property
    def multipart(self) -> bool:
        return self.media_type == MULTIPART

    @property
    def payload_type(self) -> str:
        return (self.part_type or ANY) if self.multipart else self.media_type


@dataclass(frozen=True, slots=True)
class Offer:
    """A representation a resource can produce.

    ``explicit_only`` marks lossy transcodes: chosen only when their transfer syntax is named.
    ``default`` marks what ``*/*`` (or no Accept at all) gets.
    """

    media_type: str
    transfer_syntax: str | None = None
    multipart: bool = True
    explicit_only: bool = False
    default: bool = False

    def part_content_type(self) -> str:
        """Content-Type of the payload (the part's, or the whole response's when single-part)."""
        if self.transfer_syntax is None:
            return self.media_type
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"

    def describe(self) -> str:
        if not self.multipart:
            return self.part_content_type()
        syntax = f"; transfer-syntax={self.transfer_syntax}" if self.transfer_syntax else ""
        return f'{MULTIPART}; type="{self.media_type}"{syntax}'


def acceptable(request: Request) -> tuple[MediaRange, ...]:
    """The media ranges a request accepts: the ``accept`` query parameter wins over the header."""
    values = request.query_params.getlist("accept")
    header = ", ".join(values) if values else request.headers.get("accept", "")
    return parse_accept(header)


@lru_cache(maxsize=512)
def parse_accept(header: str) -> tuple[MediaRange, ...]:
    """Parse an Accept value; an empty one accepts anything. Malformed elements are skipped."""
    ranges = []
    for element in _split(header, ","):
        media_range = _parse_range(element)
        if media_range is not None:
            ranges.append(media_range)
    return tuple(ranges) or (MediaRange(ANY),)


def _parse_range(element: str) -> MediaRange | None:
    pieces = _split(element, ";", keep_empty=True)
    media_type = _normalize(pieces[0])
    if not _MEDIA_RANGE.fullmatch(media_type):
        return None  # empty (";"), a parameter without a type, or not type/subtype
    params: dict[str, str] = {}
    for parameter in pieces[1:]:
        name, _, value = parameter.partition("=")
        params[name.strip().lower()] = _unquote(value.strip())
    q_text = params.get("q", "1")
    q = min(1.0, float(q_text)) if _QVALUE.fullmatch(q_text) else 1.0
    part_type = None
    if media_type == MULTIPART and params.get("type"):
        part_type = _normalize(params["type"])
    return MediaRange(media_type, part_type, params.get("transfer-syntax") or None, q)


def _normalize(media_type: str) -> str:
    media_type = media_type.strip().lower()
    return ALIASES.get(media_type, media_type)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _split(text: str, separator: str, *, keep_empty: bool = False) -> list[str]:
    """Split on *separator* outside double quotes, pieces stripped; empty ones dropped unless
    *keep_empty* (then there is always at least one piece)."""
    pieces, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    stripped = [piece.strip() for piece in pieces]
    return stripped if keep_empty else [piece for piece in stripped if piece]


def choose(ranges: Sequence[MediaRange], offers: Sequence[Offer]) -> Offer | None:
    """The offer with the highest quality; ties go to the earlier offer (server preference).

    An offer's quality is the q of the most specific range matching it (RFC 9110 12.5.1), so
    ``*/*, image/jphc;q=0`` excludes HTJ2K.
    """
    best: Offer | None = None
    best_q = 0.0
    for offer in offers:
        q = _quality(ranges, offer)
        if q > best_q:
            best, best_q = offer, q
    return best


def _quality(ranges: Iterable[MediaRange], offer: Offer) -> float:
    specificity, q = -1, 0.0
    for media_range in ranges:
        level = _match(media_range, offer)
        if level < 0:
            continue
        if level > specificity or (level == specificity and media_range.q > q):
            specificity, q = level, media_range.q
    return q


def _match(media_range: MediaRange, offer: Offer) -> int:
    """How specifically *media_range* names *offer*: -1 when it does not match it at all."""
    if media_range.media_type != ANY and media_range.multipart != offer.multipart:
        return -1
    payload = media_range.payload_type
    syntax = media_range.transfer_syntax
    if payload == ANY and syntax is None:
        return 0 if offer.default else -1
    if payload == ANY:
        level = 1
    elif payload.endswith("/*"):
        if not offer.media_type.startswith(payload[:-1]):
            return -1
        level = 2
    elif payload == offer.media_type:
        level = 3
    else:
        return -1
    if offer.transfer_syntax is None or syntax == offer.transfer_syntax:
        return level + 1 if syntax else level
    if syntax is None:
        default = _DEFAULT_SYNTAX.get(offer.media_type)
        accepted = offer.transfer_syntax == default if default else not offer.explicit_only
        return level if accepted else -1
    if syntax == "*" and not offer.explicit_only:
        return level
    return -1


def negotiate(ranges: Sequence[MediaRange], offers: Sequence[Offer]) -> Offer:
    """The offer :func:`choose` picks; 406 listing what could be sent when there is none."""
    offer = choose(ranges, offers)
    if offer is None:
        raise HTTPException(406, not_acceptable_message(offers))
    return offer


def not_acceptable_message(offers: Sequence[Offer]) -> str:
    """The body of a 406 answer: what the resource could have sent."""
    available = "\n".join(f"  {offer.describe()}" for offer in offers if not offer.explicit_only)
    lossy = [offer.describe() for offer in offers if offer.explicit_only]
    text = f"none of the accepted media types can be produced; available:\n{available}"
    if lossy:
        text += "\nlossy, when named explicitly:\n" + "\n".join(f"  {item}" for item in lossy)
    return text
