"""Re-assemble a DICOM Part 10 object from image-set attributes and frames.

The object is produced as chunks so a caller can stream it without joining large payloads: the
head (preamble, file meta and every attribute before the pixel data), the pixel data element
(native: its header then the frames; encapsulated: a Basic Offset Table and one item per frame),
then the tail (attributes after the pixel data, rare). Every syntax produced is Explicit VR
Little Endian for the data set, so one writer serves them all.

An Explicit VR Little Endian data set is its elements' encodings in tag order, and most of an
instance's attributes are its patient's, study's and series', the same in every instance of a
series: elements are encoded by pydicom one by one and kept in a byte-bounded LRU keyed by
attribute, VR, value and character set, so an instance costs the encoding of what is its own.
"""

from __future__ import annotations

import math
import struct
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.pixels.utils import pack_bits
from pydicom.tag import Tag
from pydicom.uid import UID

from ..cache import SizedLRU
from . import transfer_syntax as ts
from .ahi_json import VRS_KEY, data_element, tag_and_vr
from .transcode import int_attribute

IMPLEMENTATION_CLASS_UID = UID(
    f"2.25.{uuid.uuid5(uuid.NAMESPACE_DNS, 'dicomweb-proxy.invalid').int}"
)
IMPLEMENTATION_VERSION_NAME = "DWPROXY_0_1"
UTF8 = "ISO_IR 192"
#: Encoded data elements kept per worker process.
ELEMENT_CACHE_BYTES = 32 * 1024 * 1024
_PREAMBLE = b"\x00" * 128 + b"DICM"
#: pydicom's default when a data set has no Specific Character Set.
_DEFAULT_CHARSET = "iso8859"

#: Pixel attributes by keyword: tag and the VR of their native form.
_PIXEL_ELEMENTS = {
    "PixelData": (0x7FE00010, None),
    "FloatPixelData": (0x7FE00008, "OF"),
    "DoubleFloatPixelData": (0x7FE00009, "OD"),
}
_PIXEL_DATA = 0x7FE00008  # the first pixel tag: attributes after it follow the pixel data
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM = 0xE000
#: (attribute key, VR, character set, value) as text: repr tells every value apart (1, 1.0,
#: "1", nan, None), and what it cannot tell apart is only a miss.
_ElementKey = tuple[str, str, str, str]
_elements: SizedLRU[_ElementKey, bytes] = SizedLRU(
    ELEMENT_CACHE_BYTES, size_of=lambda encoded: 2 * len(encoded) + 200
)
#: Ends encapsulated pixel data (the Sequence Delimitation Item).
ENCAPSULATED_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


class Part10:
    """The non-pixel bytes of one instance written as *transfer_syntax*, and how its pixel data
    element must be framed. *changes* replace attributes the new encoding describes differently.
    """

    def __init__(
        self,
        attributes: Mapping[str, Any],
        vrs: Mapping[str, str],
        transfer_syntax: str,
        changes: Mapping[str, Any] | None = None,
    ) -> None:
        self.is_encapsulated = ts.is_encapsulated(transfer_syntax)
        attributes = {**attributes, **(changes or {})}
        self.pixel_keyword = next((k for k in _PIXEL_ELEMENTS if k in attributes), None)
        meta = _file_meta_bytes(attributes, transfer_syntax)
        try:
            elements = _encoded_elements(attributes, vrs)
        except _CharsetTooNarrow:
            # Values are Unicode in the metadata: UTF-8 holds them all.
            elements = _encoded_elements({**attributes, "SpecificCharacterSet": UTF8}, vrs)
        head = [encoded for tag, encoded in elements if tag < _PIXEL_DATA]
        self.head = b"".join([_PREAMBLE, meta, *head])
        self.tail = b"".join(encoded for _, encoded in elements[len(head) :])
        self._native_vr = self._native_vr_for(int_attribute(attributes, "BitsAllocated", 8))

    @property
    def size(self) -> int:
        return len(self.head) + len(self.tail) + 200

    @property
    def pixel_tag(self) -> int | None:
        return _PIXEL_ELEMENTS[self.pixel_keyword][0] if self.pixel_keyword else None

    def _native_vr_for(self, bits_allocated: int) -> str:
        if self.pixel_keyword is None:
            return "OB"
        return _PIXEL_ELEMENTS[self.pixel_keyword][1] or ("OW" if bits_allocated > 8 else "OB")

    def native_header(self, length: int) -> bytes:
        """Header of a native pixel data element whose value is *length* bytes (before padding)."""
        return _element_header(self.pixel_tag or 0x7FE00010, self._native_vr, length + length % 2)

    def encapsulated(self, frames: Sequence[bytes], *, offset_table: bool = True) -> list[bytes]:
        """The whole encapsulated pixel data element for frames in hand: one fragment per frame
        and a Basic Offset Table unless *offset_table* is False (video)."""
        chunks = [encapsulated_start(frames if offset_table else None)]
        for frame in frames:
            chunks.extend(fragment(frame))
        chunks.append(ENCAPSULATED_END)
        return chunks


def encapsulated_start(frames: Sequence[bytes] | None) -> bytes:
    """Header of encapsulated pixel data and its Basic Offset Table: the offsets of *frames*,
    or empty when they are not known yet (streaming) or would overflow 32 bits."""
    offsets = list(_item_offsets(frames)) if frames else []
    if offsets and offsets[-1] >= 2**32:
        offsets = []
    table = _item_header(4 * len(offsets)) + struct.pack(f"<{len(offsets)}I", *offsets)
    return _element_header(0x7FE00010, "OB", _UNDEFINED_LENGTH) + table


def fragment(frame: bytes) -> tuple[bytes, ...]:
    """One frame as one fragment item, padded to even length."""
    header = _item_header(len(frame) + len(frame) % 2)
    return (header, frame, b"\x00") if len(frame) % 2 else (header, frame)


def native_length(attributes: Mapping[str, Any], number_of_frames: int) -> int:
    """Bytes of native pixel data for *number_of_frames* frames (1-bit frames packed together)."""
    rows, columns = int_attribute(attributes, "Rows", 0), int_attribute(attributes, "Columns", 0)
    samples = int_attribute(attributes, "SamplesPerPixel", 1)
    bits = int_attribute(attributes, "BitsAllocated", 8)
    return math.ceil(rows * columns * samples * bits * number_of_frames / 8)


def pack_bit_frames(frames: Sequence[bytes], pixels_per_frame: int) -> bytes:
    """Join 1-bit frames that were packed one by one into the continuous bit stream of a
    multi-frame object (frames do not start on byte boundaries there)."""
    bits = [
        np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")[:pixels_per_frame]
        for frame in frames
    ]
    return pack_bits(np.concatenate(bits))


def _file_meta_bytes(attributes: Mapping[str, Any], transfer_syntax: str) -> bytes:
    """The file meta group (PS3.10 7.1), its group length first; what pydicom's
    write_file_meta_info writes for these elements (tests/test_part10.py compares), without
    building a data set per instance."""
    elements = b"".join(
        [
            _element_header(0x00020001, "OB", 2) + b"\x00\x01",
            _uid_element(0x00020002, attributes.get("SOPClassUID") or ""),
            _uid_element(0x00020003, attributes.get("SOPInstanceUID") or ""),
            _uid_element(0x00020010, transfer_syntax),
            _IMPLEMENTATION_ELEMENTS,
        ]
    )
    return _short_element(0x00020000, "UL", struct.pack("<I", len(elements))) + elements


def _uid_element(tag: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    return _short_element(tag, "UI", value + b"\x00" * (len(value) % 2))


def _short_element(tag: int, vr: str, value: bytes) -> bytes:
    """An Explicit VR Little Endian element of a VR with a 2-byte length."""
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


_IMPLEMENTATION_ELEMENTS = _uid_element(0x00020012, IMPLEMENTATION_CLASS_UID) + _short_element(
    0x00020013,
    "SH",
    IMPLEMENTATION_VERSION_NAME.encode() + b" " * (len(IMPLEMENTATION_VERSION_NAME) % 2),
)


class _CharsetTooNarrow(ValueError):
    """A text value cannot be encoded in the data set's Specific Character Set."""


def _encoded_elements(
    attributes: Mapping[str, Any], vrs: Mapping[str, str]
) -> list[tuple[int, bytes]]:
    """(tag, encoding) of every data set element but pixel data, file meta and retired group
    lengths (as pydicom's writer leaves them out), in tag order."""
    charset = attributes.get("SpecificCharacterSet") or _DEFAULT_CHARSET
    charset_key = repr(charset)
    elements = []
    for key, value in attributes.items():
        if key == VRS_KEY or key in _PIXEL_ELEMENTS:
            continue
        tag, hex_tag, default_vr = _tag_of(key)
        if tag >> 16 == 2 or (tag & 0xFFFF == 0 and tag >> 16 > 6):
            continue
        vr = vrs.get(hex_tag) or default_vr
        cache_key = (key, vr, charset_key, repr(value))
        encoded = _elements.get(cache_key)
        if encoded is None:
            encoded = _elements.put(cache_key, _encode(tag, vr, value, charset))
        elements.append((tag, encoded))
    elements.sort(key=lambda element: element[0])
    return elements


@lru_cache(maxsize=8192)
def _tag_of(key: str) -> tuple[int, str, str]:
    """(tag, its 8-hex form, the VR when DICOMVRs gives none): the dictionary lookups cost
    more than most encodings."""
    tag, vr = tag_and_vr(key, {})
    return int(tag), f"{int(tag):08X}", vr


def _encode(tag: int, vr: str, value: Any, charset: Any) -> bytes:
    """One element as Explicit VR Little Endian; _CharsetTooNarrow when pydicom warns that a
    text value does not fit the character set."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_data_element(buffer, data_element(Tag(tag), vr, value), charset)
    if any("encode" in str(warning.message) for warning in caught):
        raise _CharsetTooNarrow(str(charset))
    return buffer.getvalue()


def _element_header(tag: int, vr: str, length: int) -> bytes:
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, length)


def _item_header(length: int) -> bytes:
    return struct.pack("<HHI", 0xFFFE, _ITEM, length)


def _item_offsets(frames: Sequence[bytes]) -> Iterator[int]:
    offset = 0
    for frame in frames:
        yield offset
        offset += 8 + len(frame) + len(frame) % 2
