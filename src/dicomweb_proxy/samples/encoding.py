"""Pixel data of the samples in each transfer syntax the generator writes."""

from __future__ import annotations

from collections.abc import Callable

import imagecodecs
import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from .model import decimal_string


def _rle_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    return RLELosslessEncoder.encode(
        frame,
        rows=ds.Rows,
        columns=ds.Columns,
        samples_per_pixel=ds.SamplesPerPixel,
        bits_allocated=ds.BitsAllocated,
        bits_stored=ds.BitsStored,
        pixel_representation=ds.PixelRepresentation,
        photometric_interpretation=ds.PhotometricInterpretation,
        planar_configuration=ds.get("PlanarConfiguration", 0),
        number_of_frames=1,
    )


def _j2k_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    # mct=False keeps colour data in RGB, which is what PhotometricInterpretation says.
    return imagecodecs.jpeg2k_encode(
        frame, codecformat="j2k", reversible=True, mct=False, bitspersample=ds.BitsStored
    )


def _htj2k_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    return imagecodecs.htj2k_encode(frame, reversible=True)


def _jpeg_baseline_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    # JFIF YCbCr with 2x1 chroma subsampling is exactly PhotometricInterpretation YBR_FULL_422.
    return imagecodecs.jpeg8_encode(frame, level=90, subsampling="422")


_FRAME_ENCODERS: dict[str, Callable[[np.ndarray, Dataset], bytes]] = {
    RLELossless: _rle_frame,
    JPEG2000Lossless: _j2k_frame,
    HTJ2KLossless: _htj2k_frame,
    JPEGBaseline8Bit: _jpeg_baseline_frame,
}

SUPPORTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    *_FRAME_ENCODERS,
)
"""Transfer syntaxes the generator can write (JPEG baseline needs 8-bit data)."""


def set_pixels(
    ds: Dataset, frames: np.ndarray, transfer_syntax: str, *, photometric: str, bits_stored: int
) -> None:
    """Fill the Image Pixel module from frames shaped (frames, rows, columns[, samples])."""
    ds.SamplesPerPixel = frames.shape[3] if frames.ndim == 4 else 1
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(frames.dtype.kind == "i")
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    tsyntax = UID(transfer_syntax)
    if tsyntax.is_compressed:
        encoded = [_FRAME_ENCODERS[tsyntax](frame, ds) for frame in frames]
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        if tsyntax == JPEGBaseline8Bit:
            _mark_lossy(ds, frames.nbytes, sum(map(len, encoded)))
    else:
        # pydicom writes OW bytes as given, so big endian data must be swapped here.
        order = "<" if tsyntax.is_little_endian else ">"
        ds.PixelData = frames.astype(frames.dtype.newbyteorder(order), copy=False).tobytes()
        ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"


def _mark_lossy(ds: Dataset, raw_size: int, encoded_size: int) -> None:
    """Record the lossy JPEG encoding, as a modality writing JPEG baseline would."""
    if ds.SamplesPerPixel == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = decimal_string(round(raw_size / encoded_size, 2))
    ds.LossyImageCompressionMethod = "ISO_10918_1"
