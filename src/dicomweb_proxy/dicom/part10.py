"""Re-assemble a DICOM Part 10 object from image-set attributes and frames.

The object is produced as chunks so a caller can stream it without joining large payloads: the
head (preamble, file meta and every attribute before the pixel data), the pixel data element
(native: its header then the frames; encapsulated: a Basic Offset Table and one item per frame),
then the tail (attributes after the pixel data, rare). Every syntax produced is Explicit VR
Little Endian for the data set, so one writer serves them all.
"""

from __future__ import annotations

import math
import struct
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.pixels.utils import pack_bits
from pydicom.uid import UID

from . import transfer_syntax as ts
from .ahi_json import attributes_to_dataset
from .transcode import int_attribute

IMPLEMENTATION_CLASS_UID = UID(
    f"2.25.{uuid.uuid5(uuid.NAMESPACE_DNS, 'dicomweb-proxy.invalid').int}"
)
IMPLEMENTATION_VERSION_NAME = "DWPROXY_0_1"
UTF8 = "ISO_IR 192"

#: Pixel attributes by keyword: tag and the VR of their native form.
_PIXEL_ELEMENTS = {
    "PixelData": (0x7FE00010, None),
    "FloatPixelData": (0x7FE00008, "OF"),
    "DoubleFloatPixelData": (0x7FE00009, "OD"),
}
_PIXEL_DATA = 0x7FE00008  # the first pixel tag: attributes after it follow the pixel data
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM = 0xE000
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
        non_pixel = {k: v for k, v in attributes.items() if k not in _PIXEL_ELEMENTS}
        try:
            self.head, self.tail = _write_split(_dataset(non_pixel, vrs, transfer_syntax))
        except _CharsetTooNarrow:
            # Values are Unicode in the metadata: UTF-8 holds them all.
            non_pixel["SpecificCharacterSet"] = UTF8
            self.head, self.tail = _write_split(_dataset(non_pixel, vrs, transfer_syntax))
        self._native_vr = self._native_vr_for(int_attribute(attributes, "BitsAllocated", 8))

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


def _file_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


class _CharsetTooNarrow(ValueError):
    """A text value cannot be encoded in the data set's Specific Character Set."""


def _dataset(
    attributes: Mapping[str, Any], vrs: Mapping[str, str], transfer_syntax: str
) -> Dataset:
    ds = attributes_to_dataset(attributes, vrs)
    ds.file_meta = _file_meta(ds, transfer_syntax)
    return ds


def _write_split(ds: Dataset) -> tuple[bytes, bytes]:
    """(everything before the pixel data, everything after it) as Part 10 bytes; *ds* holds no
    pixel data, so the split is at its tag."""
    whole = _write(ds)
    tags = sorted(ds.keys())
    if not tags or tags[-1] < _PIXEL_DATA:
        return whole, b""
    head_only = Dataset({tag: ds[tag] for tag in tags if tag < _PIXEL_DATA})
    head_only.file_meta = ds.file_meta
    head = _write(head_only)
    return head, whole[len(head) :]


def _write(ds: Dataset) -> bytes:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = _dcmwrite(ds)
    if any("encode" in str(warning.message) for warning in caught):
        raise _CharsetTooNarrow(str(ds.get("SpecificCharacterSet")))
    return data


def _dcmwrite(ds: Dataset) -> bytes:
    buffer = DicomBytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
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
