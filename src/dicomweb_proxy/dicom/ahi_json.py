"""Convert between pydicom datasets and AHI image-set attribute blocks (SchemaVersion 1.1).

The encoding is documented in docs/architecture.md. It must be lossless: every attribute of a source
file comes back with an equal value from :func:`attributes_to_dataset`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import correct_ambiguous_vr_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

#: VRs whose values are raw bytes, written as base64.
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: VRs whose values are binary numbers, written as JSON numbers.
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
#: Attributes that hold pixels; their values live in the image frames, never in the metadata.
PIXEL_KEYWORDS = frozenset({"PixelData", "FloatPixelData", "DoubleFloatPixelData"})
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
#: The key of an attribute block (or sequence item) that lists VRs of tags keyed by number.
VRS_KEY = "DICOMVRs"

_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


#: Encoded elements by what their encoding depends on (see :func:`dataset_to_attributes`).
Memo = dict[tuple[Any, ...], tuple[str, str | None, Any]]
#: Raw values longer than this are encoded every time (they rarely repeat).
MEMO_VALUE_BYTES = 256
#: Entries a memo holds at most (one per distinct short value: instance UIDs too).
MEMO_ENTRIES = 65536


def dataset_to_attributes(
    ds: Dataset, memo: Memo | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the AHI attribute block of *ds* and the VRs of its number-keyed tags.

    File meta attributes are included (except the group length), as AHI does. With *memo*, an
    element whose raw bytes, tag, VR, byte order and character set were met before takes the
    value encoded then: files of one series share most of their elements, and pydicom's value
    conversion is most of the cost.
    """
    attributes: dict[str, Any] = {}
    vrs: dict[str, str] = {}
    big_endian = ds.original_encoding[1] is False if ds.original_encoding else False
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        for elem in file_meta:
            _add_element(attributes, vrs, elem, ds, big_endian)
    charset = _charset_key(ds) if memo is not None else None
    for tag in ds.keys():  # noqa: SIM118 - iterating ds itself would convert values first
        key = _memo_key(ds.get_item(tag), charset) if memo is not None else None
        known = memo.get(key) if memo is not None and key is not None else None
        if known is None:
            known = _add_element(attributes, vrs, _element_or_raw_text(ds, tag), ds, big_endian)
            if memo is not None and key is not None and known is not None:
                if len(memo) >= MEMO_ENTRIES:
                    memo.clear()  # values of files long gone: the next series refills it
                memo[key] = (known[0], known[1], _own(known[2]))
            continue
        name, vr, value = known
        attributes[name] = _own(value)
        if vr is not None:
            vrs[f"{int(tag):08X}"] = vr
    return attributes, vrs


def _own(value: Any) -> Any:
    """A copy of a remembered list of scalars (sequences are never remembered): each file has
    its own."""
    return list(value) if isinstance(value, list) else value


def _charset_key(ds: Dataset) -> tuple[str, ...] | str:
    charset = ds.original_character_set
    return charset if isinstance(charset, str) else tuple(charset)


def _memo_key(raw: DataElement | RawDataElement, charset: Any) -> tuple[Any, ...] | None:
    """What encoding *raw* depends on, or None when that includes more of the dataset: an
    element already converted, a sequence, an ambiguous VR, or a private tag of unknown VR."""
    if not isinstance(raw, RawDataElement) or raw.value is None:
        return None
    if len(raw.value) > MEMO_VALUE_BYTES or raw.VR == "SQ":
        return None
    if raw.VR in (None, "UN"):  # pydicom looks the VR up: in the private creator's block, or
        if raw.tag.is_private:  # in the dictionary (ambiguous ones by other elements' values)
            return None
        try:
            looked_up = dictionary_VR(raw.tag)
        except KeyError:
            looked_up = "UN"
        if " or " in looked_up or looked_up == "SQ":
            return None
    return raw.tag, raw.VR, raw.value, raw.is_little_endian, charset


def _element_or_raw_text(ds: Dataset, tag: BaseTag) -> DataElement:
    """Return the element at *tag*; a value pydicom cannot convert is kept as its raw text.

    Real files carry invalid values (a DS of ``1A``); keeping the text loses nothing.
    """
    try:
        return ds[tag]
    except ValueError:
        raw = ds.get_item(tag)
        text = raw.value.decode("latin-1").rstrip(" \x00") if raw.value else ""
        return DataElement(tag, "UN" if raw.VR in (None, "UN") else raw.VR, text)


def _add_element(
    attributes: dict[str, Any],
    vrs: dict[str, str],
    elem: DataElement,
    ds: Dataset,
    big_endian: bool,
) -> tuple[str, str | None, Any] | None:
    """Add *elem* to the block; return its key, its VR when recorded, and its value."""
    tag = elem.tag
    if tag.element == 0 or tag in (0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD):
        return None
    if " or " in elem.VR:
        elem = correct_ambiguous_vr_element(elem, ds, not big_endian)
    key, numbered = _key_for(tag, elem.VR)
    if numbered:
        vrs[f"{int(tag):08X}"] = elem.VR
    value = attributes[key] = None if tag in PIXEL_TAGS else _encode_value(elem, ds, big_endian)
    return key, elem.VR if numbered else None, value


@lru_cache(maxsize=4096)  # a dictionary look-up per element of every file imported
def _key_for(tag: BaseTag, vr: str) -> tuple[str, bool]:
    """Return the block key for *tag* and whether its VR must be recorded in DICOMVRs."""
    if not tag.is_private:
        keyword = keyword_for_tag(tag)
        # Repeating groups (overlays, curves) share one keyword; only the base group may use it.
        if keyword and tag_for_keyword(keyword) == tag:
            return keyword, " or " in dictionary_VR(tag)
    return f"{int(tag):08X}", True


def _encode_value(elem: DataElement, ds: Dataset, big_endian: bool) -> Any:
    vr, value = elem.VR, elem.value
    if value is None or (not isinstance(value, int | float) and len(value) == 0):
        return [] if vr == "SQ" else None
    if vr == "SQ":
        return [_item_to_attributes(item, big_endian) for item in value]
    if vr in BINARY_VRS:
        raw = bytes(value)
        if big_endian and vr in _WORD_SIZE:
            raw = _swap_words(raw, _WORD_SIZE[vr])
        return base64.b64encode(raw).decode("ascii")
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    encoded = [_encode_scalar(vr, v) for v in values]
    if len(encoded) == 1 and not _allows_many(elem.tag):
        return encoded[0]
    return encoded


def _item_to_attributes(item: Dataset, big_endian: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    vrs: dict[str, str] = {}
    for elem in item:
        _add_element(attributes, vrs, elem, item, big_endian)
    if vrs:
        attributes[VRS_KEY] = vrs
    return attributes


def _encode_scalar(vr: str, value: Any) -> Any:
    if value is None:
        return None
    if vr in NUMBER_VRS:
        return value
    if vr == "AT":
        return f"{int(value):08X}"
    # DS, IS and PN keep their original text; str() of pydicom's value types gives exactly that.
    return str(value)


@lru_cache(maxsize=4096)
def _allows_many(tag: BaseTag) -> bool:
    if tag.is_private:
        return False
    try:
        return dictionary_VM(tag) != "1"
    except KeyError:
        return False


def _swap_words(raw: bytes, size: int) -> bytes:
    dtype = {2: ">u2", 4: ">u4", 8: ">u8"}[size]
    usable = len(raw) - len(raw) % size
    return np.frombuffer(raw[:usable], dtype=dtype).astype(dtype[1:]).tobytes() + raw[usable:]


def attributes_to_dataset(
    attributes: Mapping[str, Any], vrs: Mapping[str, str] | None = None
) -> Dataset:
    """Build a dataset from an attribute block; the inverse of :func:`dataset_to_attributes`.

    File meta attributes (group 0002) are returned in ``ds.file_meta``.
    """
    ds = Dataset()
    meta = Dataset()
    for key, value in attributes.items():
        if key == VRS_KEY:
            continue
        tag, vr = tag_and_vr(key, vrs or attributes.get(VRS_KEY) or {})
        (meta if tag.group == 2 else ds)[tag] = data_element(tag, vr, value)
    if len(meta):
        ds.file_meta = FileMetaDataset(meta)
    return ds


def data_element(tag: BaseTag, vr: str, value: Any) -> DataElement | RawDataElement:
    """The element of one attribute's image-set value."""
    try:
        return DataElement(tag, vr, _decode_value(vr, value))
    except ValueError:
        # A value that was invalid in the source file (kept as text): hand it back unconverted.
        text = "\\".join(value) if isinstance(value, list) else str(value)
        raw = text.encode("utf-8")
        return RawDataElement(tag, vr, len(raw), raw, 0, False, True)


def tag_and_vr(key: str, vrs: Mapping[str, str]) -> tuple[BaseTag, str]:
    """The tag of an attribute key (keyword or 8-hex tag) and its VR: from *vrs* (keyed by
    8-hex tag), else the dictionary's (the first of an ambiguous one), else UN."""
    keyword_tag = tag_for_keyword(key)
    tag = Tag(keyword_tag if keyword_tag is not None else int(key, 16))
    vr = vrs.get(f"{int(tag):08X}")
    if vr is None:
        vr = dictionary_VR(tag).split(" or ")[0] if keyword_tag is not None else "UN"
    return tag, vr


def _decode_value(vr: str, value: Any) -> Any:
    if value is None:
        return [] if vr == "SQ" else None
    if vr == "SQ":
        return Sequence(attributes_to_dataset(item) for item in value)
    if vr in BINARY_VRS:
        return base64.b64decode(value)
    values: Iterable[Any] = value if isinstance(value, list) else [value]
    if vr == "AT":
        values = [None if v is None else int(v, 16) for v in values]
    decoded = list(values)
    return decoded[0] if len(decoded) == 1 else decoded
