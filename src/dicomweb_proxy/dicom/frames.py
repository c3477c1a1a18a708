"""Split a dataset's pixel data into frames, encode them the way AHI stores them, and decode them.

Uncompressed and lossless sources become one HTJ2K lossless RPCL codestream per frame, decoded
once with pydicom and encoded with OpenJPH (through imagecodecs). Lossy sources, video and HTJ2K
keep their bytes. What cannot be HTJ2K (1-bit and floating-point pixels) is kept as Explicit VR
Little Endian frames.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import imagecodecs
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_fragments, generate_frames
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import pack_bits

from . import transfer_syntax as ts

#: Largest number of wavelet decompositions; 5 gives a 16x16 base level for a 512x512 frame.
MAX_DECOMPOSITIONS = 5


@dataclass(frozen=True)
class StoredFrame:
    """One frame blob and the facts AHI lists for it in ``ImageFrames``."""

    data: bytes
    size_in_bytes: int
    checksums: list[dict[str, int]] = field(default_factory=list)
    min_value: int | float | None = None
    max_value: int | float | None = None


@dataclass(frozen=True)
class StoredPixels:
    """The frames of one instance, their transfer syntax, and attributes the encoding changed."""

    transfer_syntax_uid: str
    frames: list[StoredFrame]
    changed_attributes: dict[str, Any]


def has_pixels(ds: Dataset) -> bool:
    return any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009))


def store_pixels(ds: Dataset, *, keep_original: bool = False) -> StoredPixels | None:
    """Return the frames to store for *ds*, or None when it has no pixel data."""
    if not has_pixels(ds):
        return None
    source_ts = str(ds.file_meta.TransferSyntaxUID)
    if ts.is_encapsulated(source_ts) and (keep_original or ts.keeps_original_bytes(source_ts)):
        return StoredPixels(source_ts, list(_original_frames(ds, source_ts)), {})
    native = keep_original or not _fits_htj2k(ds)
    stored_ts = ts.EXPLICIT_VR_LE if native else ts.HTJ2K_LOSSLESS_RPCL
    views = _little_endian_frames(ds, source_ts)
    if views is not None:
        frames = [
            _stored_bytes_frame(array, bytes(data)) if native else _htj2k_frame(array)
            for array, data in views
        ]
        return StoredPixels(stored_ts, frames, {})
    changed: dict[str, Any] = {}
    frames = []
    for array, meta in get_decoder(source_ts).iter_array(ds, raw=True):
        frames.append(_native_frame(array, ds) if native else _htj2k_frame(array))
        changed.update(_changes(ds, meta))
    return StoredPixels(stored_ts, frames, changed)


def _little_endian_frames(
    ds: Dataset, source_ts: str
) -> list[tuple[np.ndarray, bytes | memoryview]] | None:
    """Each frame of little-endian native pixel data as an array viewing the source bytes, with
    those bytes (the pixel data itself when it is one frame).

    What pydicom's decoder yields for the common uncompressed source, without its validation
    and copies. None when the decoder must do it: big endian, 1-bit, subsampled or planar
    colour, missing or short values, or unused high bits set (which the decoder clears).
    """
    if source_ts not in ts.NATIVE or source_ts == ts.EXPLICIT_VR_BE or "PixelData" not in ds:
        return None
    rows, columns, bits, stored, samples, signed = (
        ds.get(keyword)
        for keyword in (
            "Rows",
            "Columns",
            "BitsAllocated",
            "BitsStored",
            "SamplesPerPixel",
            "PixelRepresentation",
        )
    )
    if (
        not all(isinstance(value, int) for value in (rows, columns, stored, signed))
        or bits not in (8, 16, 32)
        or not 0 < stored <= bits
        or not (samples == 1 or (samples == 3 and ds.get("PlanarConfiguration") == 0))
        or str(ds.get("PhotometricInterpretation", "")).endswith(("_422", "_420"))
    ):
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    shape = (rows, columns, samples) if samples > 1 else (rows, columns)
    length = rows * columns * samples * dtype.itemsize
    count = int(ds.get("NumberOfFrames") or 1)
    pixel_data = ds.PixelData
    if not isinstance(pixel_data, bytes) or not 0 < length * count <= len(pixel_data):
        return None
    low, high = (
        (-(1 << (stored - 1)), (1 << (stored - 1)) - 1) if signed else (0, (1 << stored) - 1)
    )
    frames = []
    view = memoryview(pixel_data)
    for index in range(count):
        data = pixel_data if len(pixel_data) == length else view[index * length :][:length]
        array = np.frombuffer(data, dtype).reshape(shape)
        if stored < bits and not low <= array.min() <= array.max() <= high:
            return None
        frames.append((array, data))
    return frames


def _fits_htj2k(ds: Dataset) -> bool:
    return "PixelData" in ds and ds.BitsAllocated in (8, 16, 32) and ds.SamplesPerPixel in (1, 3)


def _changes(ds: Dataset, meta: dict[str, Any]) -> dict[str, Any]:
    """Attributes that describe decoded frames differently from the source (PS3.5 8.2)."""
    changes: dict[str, Any] = {}
    photometric = meta.get("photometric_interpretation")
    if photometric and photometric != ds.get("PhotometricInterpretation"):
        changes["PhotometricInterpretation"] = photometric
    if ds.get("SamplesPerPixel", 1) > 1 and ds.get("PlanarConfiguration", 0) != 0:
        changes["PlanarConfiguration"] = 0
    return changes


def _original_frames(ds: Dataset, source_ts: str) -> Iterator[StoredFrame]:
    frame_size = _frame_size(ds)
    if source_ts in ts.VIDEO:
        stream = b"".join(generate_fragments(ds.PixelData))
        yield StoredFrame(stream, frame_size * int(ds.get("NumberOfFrames") or 1))
        return
    count = int(ds.get("NumberOfFrames") or 1)
    for data in generate_frames(ds.PixelData, number_of_frames=count):
        yield StoredFrame(bytes(data), frame_size)


def _frame_size(ds: Dataset) -> int:
    samples = ds.get("SamplesPerPixel", 1)
    bits = ds.get("BitsAllocated", 8)
    return math.ceil(ds.Rows * ds.Columns * samples * bits / 8)


def _native_frame(array: np.ndarray, ds: Dataset) -> StoredFrame:
    if ds.get("BitsAllocated") == 1:
        data = pack_bits(array)
    else:
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return _stored_bytes_frame(array, data)


def _stored_bytes_frame(array: np.ndarray, data: bytes) -> StoredFrame:
    """A frame kept as the little-endian bytes *data* of *array*."""
    return StoredFrame(
        data,
        len(data),
        [_checksum(array.astype(array.dtype.newbyteorder("="), copy=False))],
        *_min_max(array),
    )


def encode_htj2k(array: np.ndarray) -> tuple[bytes, int]:
    """Encode one frame as lossless HTJ2K RPCL; return the codestream and its decomposition count.

    Three-sample frames use the reversible colour transform: decoders apply its inverse, so the
    decoded samples are the source samples, and Cornerstone's OpenJPH build mis-decodes colour
    codestreams without it.
    """
    levels = min(MAX_DECOMPOSITIONS, max(0, int(math.log2(max(1, min(array.shape[:2])))) - 3))
    colour = array.ndim == 3 and array.shape[2] == 3
    return imagecodecs.htj2k_encode(array, resolutions=levels, rgb=colour), levels


def _htj2k_frame(array: np.ndarray) -> StoredFrame:
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    data, levels = encode_htj2k(array)
    checksums = [
        _checksum(imagecodecs.htj2k_decode(data, skipres=skip, planar=False))
        for skip in range(levels, 0, -1)
    ]
    checksums.append(_checksum(array))
    return StoredFrame(data, array.nbytes, checksums, *_min_max(array))


def _checksum(array: np.ndarray) -> dict[str, int]:
    height, width = array.shape[:2]
    checksum = zlib.crc32(np.ascontiguousarray(array))  # its bytes, without a copy
    return {"Width": int(width), "Height": int(height), "Checksum": checksum}


def _min_max(array: np.ndarray) -> tuple[int | float, int | float]:
    return array.min().item(), array.max().item()


def decode_frame(data: bytes, transfer_syntax_uid: str, attributes: dict[str, Any]) -> np.ndarray:
    """Decode one stored frame to a sample array (rows, columns[, samples]).

    *attributes* are the instance's merged metadata (Rows, Columns, BitsAllocated, ...).
    """
    if transfer_syntax_uid in ts.HTJ2K_FAMILY:
        return imagecodecs.htj2k_decode(data, planar=False)
    if not ts.is_encapsulated(transfer_syntax_uid):
        return _native_array(data, attributes)
    decoder_input = _single_frame_dataset(data, transfer_syntax_uid, attributes)
    array, _ = next(get_decoder(transfer_syntax_uid).iter_array(decoder_input, raw=True))
    return array


def _native_array(data: bytes, attributes: dict[str, Any]) -> np.ndarray:
    rows, columns = int(attributes["Rows"]), int(attributes["Columns"])
    samples = int(attributes.get("SamplesPerPixel") or 1)
    bits = int(attributes.get("BitsAllocated") or 8)
    if bits == 1:
        bits_array = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        return bits_array[: rows * columns].reshape(rows, columns)
    if "FloatPixelData" in attributes or "DoubleFloatPixelData" in attributes:
        kind = "f"
    else:
        kind = "i" if int(attributes.get("PixelRepresentation") or 0) == 1 else "u"
    dtype = np.dtype(f"<{kind}{bits // 8}")
    shape = (rows, columns, samples) if samples > 1 else (rows, columns)
    return np.frombuffer(data, dtype).reshape(shape)


def _single_frame_dataset(
    data: bytes, transfer_syntax_uid: str, attributes: dict[str, Any]
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax_uid
    for keyword in (
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PhotometricInterpretation",
        "PlanarConfiguration",
    ):
        if attributes.get(keyword) is not None:
            setattr(ds, keyword, attributes[keyword])
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([data])
    ds["PixelData"].VR = "OB"
    return ds
