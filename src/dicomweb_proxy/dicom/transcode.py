"""Frames in a transfer syntax other than the stored one: decode, then re-encode if asked.

Stored bytes are always preferred (no work); these paths run only when a client needs another
encoding. Codecs are imagecodecs', which release the GIL, so callers run them in worker threads.
Lossless sources can become Explicit VR Little Endian, JPEG 2000 lossless or HTJ2K lossless, and
8-bit ones JPEG baseline (lossy: only when named); lossy sources only Explicit VR Little Endian.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import imagecodecs
import numpy as np

from . import transfer_syntax as ts
from .frames import decode_frame, encode_htj2k

#: Syntaxes whose stored frames hold the original pixel values exactly.
LOSSLESS_STORED = ts.NATIVE | ts.LOSSLESS_ENCAPSULATED | {ts.HTJ2K_LOSSLESS, ts.HTJ2K_LOSSLESS_RPCL}
#: Targets that lose information: produced only when a client names them.
LOSSY_TARGETS = frozenset({ts.JPEG_BASELINE})
_JPEG_QUALITY = 90
_JPEG_FAMILY = frozenset({ts.JPEG_BASELINE, ts.JPEG_EXTENDED})
_J2K_IRREVERSIBLE = frozenset({ts.JPEG_2000, ts.JPEG_2000_MC, ts.HTJ2K})


def same_bytes(stored_ts: str, target_ts: str) -> bool:
    """Whether stored frames already are valid *target_ts* frames: an RPCL lossless HTJ2K
    codestream (.202) is also an HTJ2K lossless one (.201)."""
    return stored_ts == target_ts or (
        stored_ts == ts.HTJ2K_LOSSLESS_RPCL and target_ts == ts.HTJ2K_LOSSLESS
    )


def targets(stored_ts: str, attributes: Mapping[str, Any]) -> tuple[str, ...]:
    """Transfer syntaxes this instance's frames can be transcoded to, besides the stored one."""
    return _targets(
        stored_ts,
        "PixelData" in attributes,
        int_attribute(attributes, "BitsAllocated", 8),
        int_attribute(attributes, "SamplesPerPixel", 1),
        _photometric(attributes),
    )


@lru_cache(maxsize=256)
def _targets(
    stored_ts: str, integer: bool, bits: int, samples: int, photometric: str
) -> tuple[str, ...]:
    if stored_ts in ts.VIDEO:
        return ()
    found = [ts.EXPLICIT_VR_LE] if stored_ts != ts.EXPLICIT_VR_LE else []
    compressible = integer and bits in (8, 16) and samples in (1, 3)
    if stored_ts not in LOSSLESS_STORED or not compressible:
        return tuple(found)
    found.append(ts.JPEG_2000_LOSSLESS)
    if stored_ts not in ts.HTJ2K_FAMILY:
        found.append(ts.HTJ2K_LOSSLESS)
    if bits == 8 and photometric in ("MONOCHROME1", "MONOCHROME2", "RGB"):
        found.append(ts.JPEG_BASELINE)
    return tuple(found)


def _native_dtype(attributes: Mapping[str, Any]) -> np.dtype:
    """The little-endian sample type of an instance's native frames (BitsAllocated >= 8)."""
    bits = int_attribute(attributes, "BitsAllocated", 8)
    signed = int_attribute(attributes, "PixelRepresentation", 0) == 1
    return np.dtype(f"<{'i' if signed else 'u'}{max(1, bits // 8)}")


def to_array(data: bytes, stored_ts: str, attributes: dict[str, Any]) -> np.ndarray:
    """Decode one stored frame to samples (rows, columns[, samples]), typed as BitsAllocated."""
    array = decode_frame(data, stored_ts, attributes)
    if int_attribute(attributes, "BitsAllocated", 8) in (8, 16, 32) and "PixelData" in attributes:
        array = array.astype(_native_dtype(attributes), copy=False)
    return array


def to_native(data: bytes, stored_ts: str, attributes: dict[str, Any]) -> bytes:
    """One frame as Explicit VR Little Endian pixel bytes."""
    if stored_ts == ts.EXPLICIT_VR_LE:
        return data
    array = to_array(data, stored_ts, attributes)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode(array: np.ndarray, target_ts: str, attributes: Mapping[str, Any]) -> bytes:
    """Encode decoded samples as *target_ts* (one of :func:`targets` but Explicit VR LE)."""
    if target_ts == ts.JPEG_2000_LOSSLESS:
        return imagecodecs.jpeg2k_encode(array, codecformat="J2K", reversible=True, mct=False)
    if target_ts == ts.HTJ2K_LOSSLESS:
        return encode_htj2k(array)[0]
    if target_ts == ts.JPEG_BASELINE:
        if array.ndim == 3:
            return imagecodecs.jpeg8_encode(
                array, level=_JPEG_QUALITY, outcolorspace="YCbCr", subsampling="422"
            )
        return imagecodecs.jpeg8_encode(array, level=_JPEG_QUALITY)
    raise ValueError(f"cannot encode frames as {target_ts}")


def changed_attributes(
    stored_ts: str, target_ts: str, attributes: Mapping[str, Any]
) -> dict[str, Any]:
    """Attributes a Part 10 object must change when its frames go from *stored_ts* to
    *target_ts* (PS3.5 8.2: the photometric interpretation follows the encoding)."""
    if target_ts == stored_ts:
        return {}
    photometric = _photometric(attributes)
    if target_ts == ts.JPEG_BASELINE:
        changes: dict[str, Any] = {
            "LossyImageCompression": "01",
            "LossyImageCompressionMethod": ["ISO_10918_1"],
        }
        if photometric == "RGB":
            changes["PhotometricInterpretation"] = "YBR_FULL_422"
        return changes
    if stored_ts in _JPEG_FAMILY and photometric == "YBR_FULL_422":
        return {"PhotometricInterpretation": "YBR_FULL"}  # decoded, no longer subsampled
    if stored_ts in _J2K_IRREVERSIBLE and photometric in ("YBR_ICT", "YBR_RCT"):
        return {"PhotometricInterpretation": "RGB"}  # the decoder undoes the colour transform
    return {}


def _photometric(attributes: Mapping[str, Any]) -> str:
    value = attributes.get("PhotometricInterpretation") or ""
    return str(value[0] if isinstance(value, list) and value else value).strip()


def int_attribute(attributes: Mapping[str, Any], keyword: str, default: int) -> int:
    """An integer attribute of merged metadata (a number, a numeric string or a one-item list)."""
    value = attributes.get(keyword)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default
