"""AHI image-set attributes → DICOM JSON (PS3.18 Annex F).

AHI keys attributes by keyword (or by 8-hex tag, with the VR in ``DICOMVRs``) and keeps DS/IS as
text and binary values as base64; DICOM JSON keys by tag and wants numbers and typed objects. This
runs once per instance for every metadata request, so dictionary lookups are cached.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from pydicom.datadict import RepeatersDictionary, get_entry, keyword_dict

BulkDataURI = Callable[[str], str | None]
"""Given a tag path (``"7FE00010"``, or ``"00540016/0/00181074"`` inside sequences, item index
0-based), returns the URI to serve that value from, or None to inline it."""

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# VRs whose value is never split on backslash (it is a legal character in them).
_UNSPLIT_VRS = frozenset({"LT", "ST", "UT", "UR"})
_PIXEL_TAGS = frozenset({"7FE00010", "7FE00008", "7FE00009"})
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_JSON_SAFE_INTEGER = 2**53 - 1
#: Converted values kept (_kept_values), of at most _MAX_KEPT_TEXT characters: a few MB.
_MAX_KEPT = 32_768
_MAX_KEPT_TEXT = 256
_KEPT: dict[tuple[str, bool, str], dict] = {}
# Repeating-group keywords (OverlayData, CurveData, ...) name the group's first instance.
_REPEATER_TAGS = {
    entry[4]: int(mask.replace("x", "0"), 16) for mask, entry in RepeatersDictionary.items()
}


def to_dicom_json(
    attributes: Mapping[str, Any],
    vrs: Mapping[str, str] | None = None,
    *,
    bulk_data_uri: BulkDataURI | None = None,
    inline_binary_limit: int | None = None,
) -> dict[str, dict]:
    """Convert one AHI attribute block into a DICOM JSON dataset, keyed by sorted 8-hex tags.

    ``vrs`` maps 8-hex tags to VRs and wins over the data dictionary. Binary values are inlined
    unless ``bulk_data_uri`` is given and the value is larger than ``inline_binary_limit`` bytes
    (no limit: every binary value) and the callback returns a URI for it.
    """
    return _dataset(attributes, vrs or {}, "", bulk_data_uri, inline_binary_limit)


def decoded_length(base64_text: str) -> int:
    """Byte length of a base64 value without decoding it."""
    return len(base64_text) * 3 // 4 - base64_text.count("=", -2)


@lru_cache(maxsize=16384)
def _lookup(key: str) -> tuple[str, str, bool] | None:
    """(8-hex tag, default VR, may hold several values) for a keyword or 8-hex key; None if the
    key is neither. Ambiguous dictionary VRs resolve to their first alternative."""
    tag = keyword_dict.get(key) or _REPEATER_TAGS.get(key)
    if tag is None:
        if not _HEX_TAG.fullmatch(key):
            return None
        tag = int(key, 16)
    try:
        vr, vm = get_entry(tag)[:2]
    except KeyError:
        group, element = tag >> 16, tag & 0xFFFF
        if element == 0:
            vr, vm = "UL", "1"  # group length
        elif group % 2 and 0x10 <= element <= 0xFF:
            vr, vm = "LO", "1"  # private creator
        else:
            vr, vm = "UN", "1"
    return f"{tag:08X}", vr.split(" or ")[0], vm != "1"


def _dataset(
    attributes: Mapping[str, Any],
    vrs: Mapping[str, str],
    prefix: str,
    bulk_data_uri: BulkDataURI | None,
    limit: int | None,
) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key, value in attributes.items():
        if key == "DICOMVRs":
            continue
        entry = _lookup(key)
        if entry is None:
            continue
        tag, vr, multiple = entry
        vr = vrs.get(tag) or vrs.get(key) or vr
        path = prefix + tag
        if vr == "SQ":
            element = _sequence(value, vrs, path, bulk_data_uri, limit)
        elif vr in _BINARY_VRS:
            element = _binary(tag, vr, value, path, bulk_data_uri, limit)
        else:
            element = _kept_values(vr, value, multiple)
        if element is not None:
            out[tag] = element
    return dict(sorted(out.items()))


def _kept_values(vr: str, value: Any, multiple: bool) -> dict:
    """:func:`_values`, kept: most attributes of an instance are its patient's, study's and
    series' and convert alike for every instance. Callers must not change what it returns.
    Keyed by the value's text (repr tells 1, 1.0 and "1" apart); long values, mappings and
    sequences are not kept."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) or (isinstance(value, list) and len(value) <= 16):
        text = repr(value)
    else:
        return _values(vr, value, multiple)
    if len(text) > _MAX_KEPT_TEXT:
        return _values(vr, value, multiple)
    key = (vr, multiple, text)
    element = _KEPT.get(key)
    if element is None:
        if len(_KEPT) >= _MAX_KEPT:
            _KEPT.clear()  # rare: a fresh start costs one conversion per value
        element = _KEPT[key] = _values(vr, value, multiple)
    return element


def _values(vr: str, value: Any, multiple: bool) -> dict:
    if isinstance(value, list):
        items = value
    elif isinstance(value, str) and multiple and "\\" in value and vr not in _UNSPLIT_VRS:
        items = value.split("\\")
    else:
        items = [value]
    convert = _CONVERTERS.get(vr, _text)
    converted = [None if item is None or item == "" else convert(item) for item in items]
    if all(item is None for item in converted):
        return {"vr": vr}
    return {"vr": vr, "Value": converted}


def _sequence(
    value: Any,
    vrs: Mapping[str, str],
    path: str,
    bulk_data_uri: BulkDataURI | None,
    limit: int | None,
) -> dict:
    if not value:
        return {"vr": "SQ"}
    items = value if isinstance(value, list) else [value]
    converted = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            converted.append({})
            continue
        own_vrs = item.get("DICOMVRs")
        scope = {**vrs, **own_vrs} if own_vrs else vrs
        converted.append(_dataset(item, scope, f"{path}/{index}/", bulk_data_uri, limit))
    return {"vr": "SQ", "Value": converted}


def _binary(
    tag: str,
    vr: str,
    value: Any,
    path: str,
    bulk_data_uri: BulkDataURI | None,
    limit: int | None,
) -> dict | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        # Pixel data is null in AHI (pixels live in the frames): only a bulk data URI can serve it.
        if tag in _PIXEL_TAGS:
            uri = bulk_data_uri(path) if bulk_data_uri else None
            return {"vr": vr, "BulkDataURI": uri} if uri else None
        return {"vr": vr}
    if bulk_data_uri and (limit is None or decoded_length(value) > limit):
        uri = bulk_data_uri(path)
        if uri:
            return {"vr": vr, "BulkDataURI": uri}
    return {"vr": vr, "InlineBinary": value}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _person_name(value: Any) -> dict | None:
    if isinstance(value, Mapping):
        return dict(value) or None
    groups = zip(_PN_GROUPS, _text(value).split("="), strict=False)
    return {name: group for name, group in groups if group} or None


def _number_from_text(text: str) -> int | float | str:
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return _json_safe(int(text))
    if _DECIMAL.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


def _json_safe(number: int | float) -> int | float | str:
    """Integers beyond 2^53 lose precision in JavaScript clients (orjson refuses those beyond
    64 bits): they go as strings, as PS3.18 prescribes for UV and SV."""
    if isinstance(number, int) and abs(number) > _JSON_SAFE_INTEGER:
        return str(number)
    return number


def _integer_string(value: Any) -> int | float | str:
    if isinstance(value, float) and value.is_integer():
        return _json_safe(int(value))
    if isinstance(value, int | float):
        return _json_safe(value)
    text = _text(value).strip()
    return _json_safe(int(text)) if _INTEGER.fullmatch(text) else text


def _number(value: Any) -> int | float | str:
    """DS and the binary numeric VRs: numbers pass, text that parses becomes a number."""
    if isinstance(value, int | float):
        return _json_safe(value)
    return _number_from_text(_text(value))


def _attribute_tag(value: Any) -> str:
    return f"{value:08X}" if isinstance(value, int) else _text(value).strip().upper()


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "PN": _person_name,
    "IS": _integer_string,
    "DS": _number,
    "AT": _attribute_tag,
    "US": _number,
    "SS": _number,
    "UL": _number,
    "SL": _number,
    "FL": _number,
    "FD": _number,
    "UV": _number,
    "SV": _number,
}
