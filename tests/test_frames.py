"""Stored frames decode to exactly what pydicom decodes from the source (lossless paths)."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder

from dicomweb_proxy.dicom import transfer_syntax as ts
from dicomweb_proxy.dicom.ahi_json import dataset_to_attributes
from dicomweb_proxy.dicom.frames import decode_frame, store_pixels

from .pydicom_files import bundled_files


def source_frames(ds: Dataset) -> list[np.ndarray] | None:
    """pydicom's own decoding of every frame, without colour conversion; None if it cannot."""
    try:
        decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
        return [array for array, _ in decoder.iter_array(ds, raw=True)]
    except Exception:
        return None


def files_with_pixels():
    for path in bundled_files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        if "PixelData" in ds and "TransferSyntaxUID" in ds.file_meta:
            yield pytest.param(path, id=path.name)


@pytest.mark.parametrize("path", list(files_with_pixels()))
@pytest.mark.parametrize("keep_original", [False, True], ids=["htj2k", "original"])
def test_frames_decode_like_pydicom(path, keep_original):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        expected = source_frames(ds)
        if expected is None:
            pytest.skip(f"pydicom cannot decode {path.name} with the installed plugins")
        stored = store_pixels(ds, keep_original=keep_original)
    source_ts = ds.file_meta.TransferSyntaxUID
    if keep_original or ts.keeps_original_bytes(source_ts):
        assert stored.transfer_syntax_uid in (source_ts, ts.EXPLICIT_VR_LE)
    elif ds.BitsAllocated in (8, 16, 32):
        assert stored.transfer_syntax_uid == ts.HTJ2K_LOSSLESS_RPCL
    assert len(stored.frames) == len(expected)
    attributes, _ = dataset_to_attributes(ds)
    attributes.update(stored.changed_attributes)
    lossy = stored.transfer_syntax_uid not in ts.NATIVE | ts.HTJ2K_FAMILY | ts.LOSSLESS_ENCAPSULATED
    for number, (frame, reference) in enumerate(zip(stored.frames, expected, strict=True), 1):
        decoded = decode_frame(frame.data, stored.transfer_syntax_uid, attributes)
        assert decoded.shape == reference.shape, f"frame {number}"
        if not lossy:
            np.testing.assert_array_equal(decoded, reference, err_msg=f"frame {number}")


def test_htj2k_frames_list_every_resolution():
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts.EXPLICIT_VR_LE
    ds.Rows, ds.Columns = 256, 192
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    pixels = (np.arange(256 * 192, dtype=np.int16) % 4000 - 2000).reshape(256, 192)
    ds.PixelData = pixels.tobytes()
    (frame,) = store_pixels(ds).frames
    sizes = [(c["Width"], c["Height"]) for c in frame.checksums]
    assert sizes == [(12, 16), (24, 32), (48, 64), (96, 128), (192, 256)]
    assert (frame.min_value, frame.max_value) == (pixels.min(), pixels.max())
    assert frame.size_in_bytes == pixels.nbytes


def native_dataset(pixels: np.ndarray, bits_stored: int, frames: int = 1) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts.EXPLICIT_VR_LE
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if pixels.ndim == 4 else pixels.shape[-2:]
    ds.SamplesPerPixel = pixels.shape[-1] if pixels.ndim == 4 else 1
    ds.PhotometricInterpretation = "RGB" if ds.SamplesPerPixel == 3 else "MONOCHROME2"
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    return ds


@pytest.mark.parametrize(
    "pixels, bits_stored",
    [
        pytest.param(np.arange(-600, 600, dtype=np.int16).reshape(3, 20, 20), 12, id="signed"),
        pytest.param(np.arange(1200, dtype=np.uint16).reshape(3, 20, 20) | 0x4000, 12, id="high"),
        pytest.param(np.arange(3600, dtype=np.uint32).reshape(3, 20, 20, 3) % 251, 8, id="rgb"),
        pytest.param(np.arange(-50, 50, dtype=np.int8).reshape(1, 10, 10) * 2, 8, id="bytes"),
    ],
)
@pytest.mark.parametrize("keep_original", [False, True], ids=["htj2k", "original"])
def test_uncompressed_frames_are_what_pydicom_decodes(pixels, bits_stored, keep_original):
    """Frames read straight from little-endian pixel data equal pydicom's decoding, also when
    unused high bits are set (pydicom clears them) and for several frames."""
    ds = native_dataset(pixels, bits_stored, frames=len(pixels))
    expected = source_frames(ds)
    stored = store_pixels(ds, keep_original=keep_original)
    attributes, _ = dataset_to_attributes(ds)
    assert len(stored.frames) == len(expected)
    for frame, reference in zip(stored.frames, expected, strict=True):
        decoded = decode_frame(frame.data, stored.transfer_syntax_uid, attributes)
        np.testing.assert_array_equal(decoded, reference)
        assert (frame.min_value, frame.max_value) == (reference.min(), reference.max())
