"""DICOM JSON values (as image-set metadata documents hold them) to typed column values.

A malformed value becomes None rather than an error: the index is a search aid, and one bad
date must not keep an instance out of it (the store still holds the value as written).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

import orjson

from .dicom_json import decoded_length, to_dicom_json

MAX_INDEXED_BINARY = 64
"""Bytes; larger binary values stay in the store, out of the indexed attributes JSON."""

_INT32 = 2**31

_DA = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_TM = re.compile(r"([0-9]{2})([0-9]{2})?([0-9]{2})?(?:\.([0-9]{1,6}))?")
_DT = re.compile(
    r"([0-9]{4})([0-9]{2})?([0-9]{2})?([0-9]{2})?([0-9]{2})?([0-9]{2})?"
    r"(?:\.([0-9]{1,6}))?(?:[+-][0-9]{4})?"
)


def parse_date(value: Any) -> date | None:
    """DA 'YYYYMMDD' → date; None when absent or malformed."""
    match = _DA.fullmatch(parse_text(value) or "")
    if not match:
        return None
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        return None


def parse_time(value: Any) -> time | None:
    """TM 'HH[MM[SS[.ffffff]]]' (colons of old ACR-NEMA times ignored) → time; None if bad."""
    match = _TM.fullmatch((parse_text(value) or "").replace(":", ""))
    if not match:
        return None
    hour, minute, second, fraction = match.groups()
    try:
        return time(int(hour), int(minute or 0), int(second or 0), _microseconds(fraction))
    except ValueError:
        return None


def parse_datetime(value: Any) -> datetime | None:
    """DT 'YYYY[MM[DD[HH[MM[SS[.ffffff]]]]]][&ZZXX]' → naive datetime in the value's own time
    (the offset is dropped: DA and TM columns carry none either); None if bad."""
    match = _DT.fullmatch(parse_text(value) or "")
    if not match:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            _microseconds(fraction),
        )
    except ValueError:
        return None


def parse_text(value: Any) -> str | None:
    """The first value as text, NULs and padding stripped; None when empty or not a string."""
    value = _first(value)
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).replace("\x00", "").strip()
    return text or None


def parse_joined(value: Any) -> str | None:
    """Every value, backslash-separated as in DICOM."""
    if isinstance(value, list):
        value = "\\".join("" if item is None else str(item) for item in value)
    return parse_text(value)


def parse_real(value: Any) -> float | None:
    """The first value as a finite float (DS text or a JSON number)."""
    value = _first(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        try:
            number = float(parse_text(value) or "")
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def parse_integer(value: Any) -> int | None:
    """The first value as an integer that fits a 32-bit signed column."""
    number = parse_real(value)
    if number is None or not number.is_integer() or not -_INT32 <= number < _INT32:
        return None
    return int(number)


def attributes_json(attributes: Mapping[str, Any], vrs: Mapping[str, str] | None) -> str:
    """One level's attributes as DICOM JSON text, without binary values over
    MAX_INDEXED_BINARY bytes, for QIDO to answer includefield=all from the index."""
    return orjson.dumps(without_bulk_data(to_dicom_json(attributes, vrs))).decode()


def without_bulk_data(dataset: dict[str, dict]) -> dict[str, dict]:
    """A DICOM JSON data set less its InlineBinary values over MAX_INDEXED_BINARY bytes,
    in sequence items too."""
    out = {}
    for tag, element in dataset.items():
        inline = element.get("InlineBinary")
        if inline is not None and decoded_length(inline) > MAX_INDEXED_BINARY:
            continue
        if element["vr"] == "SQ" and "Value" in element:
            element = {"vr": "SQ", "Value": [without_bulk_data(item) for item in element["Value"]]}
        out[tag] = element
    return out


def _microseconds(fraction: str | None) -> int:
    return int((fraction or "0").ljust(6, "0"))


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value
