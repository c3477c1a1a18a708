"""HTTP byte ranges (RFC 9110 14) on single payloads: frames and bulk data.

Cornerstone fetches a prefix of an HTJ2K frame (``bytes=0-64000``), then the rest
(``bytes=64001-``); its last range may end past the frame, which means "to the end". Only a
single range is served; several ranges get the whole payload (allowed by RFC 9110). A
malformed header is ignored (the whole payload, 200); positions of any length are read, those
beyond any payload size as "past the end" (never ``int()`` of thousands of digits).
"""

from __future__ import annotations

import re

# Possessive quantifiers: a header of many spaces must not make the match backtrack (it runs on
# the event loop).
_SINGLE_RANGE = re.compile(r"\s*+bytes\s*+=\s*+([0-9]*+)\s*+-\s*+([0-9]*+)\s*+", re.IGNORECASE)
#: Positions with more digits than this are past the end of any payload.
_MAX_DIGITS = 18
_BEYOND = 10**_MAX_DIGITS


class RangeNotSatisfiable(Exception):
    def __init__(self, length: int) -> None:
        super().__init__(f"range not satisfiable: the payload has {length} bytes")
        self.length = length


def requested_range(header: str | None, length: int) -> tuple[int, int] | None:
    """The (first, last) byte positions, inclusive, that *header* asks of a payload of *length*
    bytes; None for no range (or one we do not serve: multiple ranges, other units, malformed).
    Raises RangeNotSatisfiable when the range starts past the end."""
    if not header:
        return None
    match = _SINGLE_RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        suffix = _position(last)
        if suffix == 0 or length == 0:
            raise RangeNotSatisfiable(length)
        return max(0, length - suffix), length - 1
    start = _position(first)
    end = _position(last) if last else length - 1
    if last and end < start:
        return None  # invalid: ignored, as RFC 9110 says
    if start >= length:
        raise RangeNotSatisfiable(length)
    return start, min(end, length - 1)


def _position(digits: str) -> int:
    """A byte position; any number too long to be one is _BEYOND (past every payload)."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_DIGITS else _BEYOND


def content_range(span: tuple[int, int], length: int) -> str:
    return f"bytes {span[0]}-{span[1]}/{length}"
