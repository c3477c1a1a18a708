"""Accept-Encoding and If-None-Match, shared by metadata, frames, bulk data and the viewer."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from dicomweb_proxy.http.conditional import (
    accepts_coding,
    accepts_gzip,
    if_none_match,
    not_modified,
    variant_etag,
)


def request(**headers: str) -> Request:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip ; Q=0.8 ", True),
        ("gzip;q=0.001", True),
        ("*", True),
        ("br, *;q=0.1", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=0.000", False),  # the viewer's copy knew this one, wado's did not
        ("*;q=0", False),
        ("*, gzip;q=0", False),  # an explicit gzip wins over *, wherever it stands
        ("gzip;q=0, *", False),
        ("gzip;q=abc", False),  # malformed q: the element is ignored
        ("gzip;q=1.5", False),
        (",,", False),
    ],
)
def test_accept_encoding(header, expected):
    assert accepts_coding(header, "gzip") is expected
    assert accepts_gzip(request(accept_encoding=header)) is expected


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),  # weak comparison, as RFC 9110 13.1.2 asks for If-None-Match
        ('"x", "abc"', True),
        (' "x" ,, W/"abc" ,', True),
        ("*", True),
        ('"abcd"', False),
        ('"ab"', False),
        ('"abc-gzip"', False),
        ("abc", False),  # not an entity tag
        ('"x", abc', False),
        ('"ab', False),
        ("", False),
    ],
)
def test_if_none_match(header, matches):
    for etag in ('"abc"', 'W/"abc"'):
        assert if_none_match(header, etag) is matches
        assert not_modified(request(if_none_match=header), etag) is matches


def test_variant_etag():
    assert variant_etag('"abc"', "gzip") == '"abc-gzip"'
    assert variant_etag('W/"abc"', "gzip") == 'W/"abc-gzip"'
    assert not if_none_match('"abc"', variant_etag('"abc"', "gzip"))
