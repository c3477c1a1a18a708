"""Accept parsing and the choice of a representation (PS3.18 8.7), as viewers really send them."""

from __future__ import annotations

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from dicomweb_proxy.dicom import transfer_syntax as ts
from dicomweb_proxy.http.negotiation import (
    DICOM,
    DICOM_JSON,
    OCTET_STREAM,
    MediaRange,
    Offer,
    acceptable,
    choose,
    media_type_of,
    negotiate,
    not_acceptable_message,
    parse_accept,
)
from dicomweb_proxy.http.wado import frame_offers, instance_offers
from dicomweb_proxy.retrieve.records import InstanceRecord

CT = {
    "PixelData": None,
    "BitsAllocated": 16,
    "SamplesPerPixel": 1,
    "PhotometricInterpretation": "MONOCHROME2",
}
US = {**CT, "BitsAllocated": 8, "SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}


def record(stored: str = ts.HTJ2K_LOSSLESS_RPCL, attributes=CT, frames=1) -> InstanceRecord:
    ids = tuple(f"{n:032x}" for n in range(frames))
    return InstanceRecord("0" * 32, "1", "2", "3", dict(attributes), {}, stored, ids)


def pick(accept: str, offers: list[Offer]) -> tuple[str, str | None, bool] | None:
    offer = choose(parse_accept(accept), offers)
    return None if offer is None else (offer.media_type, offer.transfer_syntax, offer.multipart)


def test_parses_quoted_and_unquoted_parameters_q_values_and_case():
    ranges = parse_accept(
        'Multipart/Related; TYPE="Application/Octet-Stream"; transfer-syntax="*", '
        "image/JHC;q=0.5, */*;q=0.1, nonsense"
    )
    assert ranges == (
        MediaRange("multipart/related", OCTET_STREAM, "*", 1.0),
        MediaRange("image/jphc", None, None, 0.5),
        MediaRange("*/*", None, None, 0.1),
    )
    assert parse_accept("") == (MediaRange("*/*"),)
    assert parse_accept('multipart/related; type="a/b, c"; q=x')[0].part_type == "a/b, c"


@pytest.mark.parametrize(
    "accept",
    [
        'multipart/related; type="application/octet-stream"; transfer-syntax="*"',
        "multipart/related; type=application/octet-stream; transfer-syntax=*",
    ],
)
def test_ohif_gets_the_stored_bytes_labelled_with_their_syntax(accept):
    assert pick(accept, frame_offers(record(), single=True)) == (
        OCTET_STREAM,
        ts.HTJ2K_LOSSLESS_RPCL,
        True,
    )


def test_defaults_follow_ps3_18():
    offers = frame_offers(record(), single=True)
    explicit = (OCTET_STREAM, ts.EXPLICIT_VR_LE, True)
    assert pick("*/*", offers) == explicit
    assert pick('multipart/related; type="application/octet-stream"', offers) == explicit
    assert pick("application/octet-stream", offers) == (OCTET_STREAM, ts.EXPLICIT_VR_LE, False)
    dicom = instance_offers(record(), single=False)
    assert pick('multipart/related; type="application/dicom"', dicom) == (
        DICOM,
        ts.EXPLICIT_VR_LE,
        True,
    )
    assert pick('multipart/related; type="application/dicom"; transfer-syntax=*', dicom) == (
        DICOM,
        ts.HTJ2K_LOSSLESS_RPCL,
        True,
    )


def test_aliases_and_htj2k_without_a_syntax_get_the_stored_codestream():
    offers = frame_offers(record(), single=True)
    stored = ("image/jphc", ts.HTJ2K_LOSSLESS_RPCL, False)
    assert pick("image/jhc", offers) == stored
    assert pick("IMAGE/JPHC", offers) == stored
    assert pick("image/jphc; transfer-syntax=1.2.840.10008.1.2.4.201", offers) == (
        "image/jphc",
        ts.HTJ2K_LOSSLESS,
        False,
    )
    assert pick('multipart/related; type="image/jhc"', offers)[2] is True


def test_q_values_and_specific_ranges_win():
    offers = frame_offers(record(), single=True)
    jp2 = ("image/jp2", ts.JPEG_2000_LOSSLESS, False)
    assert pick("image/jphc;q=0.2, image/jp2", offers) == jp2
    refused = '*/*, multipart/related; type="application/octet-stream"; q=0'
    assert pick(refused, offers) == (OCTET_STREAM, ts.EXPLICIT_VR_LE, False)
    assert pick("image/jphc;q=0, image/*", offers) == jp2
    assert pick("image/*", offers) == ("image/jphc", ts.HTJ2K_LOSSLESS_RPCL, False)


def test_lossy_transcodes_only_when_named():
    offers = frame_offers(record(attributes=US), single=True)
    assert pick("image/jpeg", offers) is None
    assert pick("image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50", offers) == (
        "image/jpeg",
        ts.JPEG_BASELINE,
        False,
    )
    jpeg_stored = frame_offers(record(ts.JPEG_BASELINE, US), single=True)
    assert pick("image/jpeg", jpeg_stored) == ("image/jpeg", ts.JPEG_BASELINE, False)


def test_not_acceptable_cases():
    one = frame_offers(record(frames=3), single=False)
    assert pick("image/jphc", one) is None  # several frames cannot be single-part
    assert pick("image/png", frame_offers(record(), single=True)) is None
    assert pick("image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50", one) is None  # 16 bits
    message = not_acceptable_message(one)
    assert 'multipart/related; type="image/jphc"' in message and ts.JPEG_2000_LOSSLESS in message
    metadata = (Offer(DICOM_JSON, multipart=False, default=True),)
    assert pick("application/dicom", list(metadata)) is None
    assert pick("application/json", list(metadata)) == (DICOM_JSON, None, False)
    assert pick("text/html, */*;q=0.8", list(metadata)) == (DICOM_JSON, None, False)


def test_video_and_instances_without_pixels():
    video = frame_offers(record("1.2.840.10008.1.2.4.102"), single=True)
    assert pick("*/*", video) == ("video/mp4", "1.2.840.10008.1.2.4.102", True)
    assert pick("application/octet-stream", video) is None
    report = record(ts.EXPLICIT_VR_LE, {"SOPClassUID": "1.2"}, frames=0)
    offers = instance_offers(report, single=True)
    assert pick('multipart/related; type="application/dicom"; transfer-syntax=*', offers) == (
        DICOM,
        ts.EXPLICIT_VR_LE,
        True,
    )
    assert pick(f"application/dicom; transfer-syntax={ts.HTJ2K_LOSSLESS_RPCL}", offers) == (
        DICOM,
        ts.HTJ2K_LOSSLESS_RPCL,
        False,
    )


def test_media_types_of_syntaxes():
    assert media_type_of(ts.HTJ2K_LOSSLESS_RPCL) == "image/jphc"
    assert media_type_of(ts.JPEG_2000_LOSSLESS) == "image/jp2"
    assert media_type_of(ts.RLE_LOSSLESS) == "image/dicom-rle"
    assert media_type_of(ts.EXPLICIT_VR_LE) == OCTET_STREAM
    assert media_type_of("1.2.840.10008.1.2.4.100") == "video/mpeg2"


def test_accept_query_parameter_overrides_the_header():
    scope = {
        "type": "http",
        "query_string": b"accept=image%2Fjhc",
        "headers": [(b"accept", b"application/octet-stream")],
    }
    assert acceptable(Request(scope)) == (MediaRange("image/jphc"),)
    scope["query_string"] = b""
    assert acceptable(Request(scope)) == (MediaRange(OCTET_STREAM),)


@pytest.mark.parametrize(
    "accept", [";", " ; ", ";;", ",;,", ";q=0.5", "; image/png", "image", "/", "image/", "a/b/c"]
)
def test_empty_and_malformed_elements_are_skipped(accept):
    """``Accept: ;`` was a 500 on every route (unpacking an empty list)."""
    assert parse_accept(accept) == (MediaRange("*/*"),)
    assert parse_accept(f"{accept}, image/png") == (MediaRange("image/png"),)


@pytest.mark.parametrize(
    ("q", "expected"),
    [("0.5", 0.5), ("0", 0.0), ("1.000", 1.0), ("0.1234", 0.1234), ("7", 1.0)]
    # Not decimal numbers: as if no q was given.
    + [(text, 1.0) for text in ("nan", "inf", "-1", "1e-3", "1_0", "\u0661", "", "x")],
)
def test_q_values_are_decimal_numbers(q, expected):
    assert parse_accept(f"image/png;q={q}") == (MediaRange("image/png", q=expected),)


def test_negotiate_is_406_listing_the_offers():
    offers = frame_offers(record(), single=True)
    assert negotiate(parse_accept("image/jp2"), offers).transfer_syntax == ts.JPEG_2000_LOSSLESS
    with pytest.raises(HTTPException) as raised:
        negotiate(parse_accept("image/png"), offers)
    assert raised.value.status_code == 406 and "image/jphc" in raised.value.detail
