"""Part 10 objects re-assembled from image-set attributes and frames parse like their sources."""

from __future__ import annotations

import struct

import numpy as np
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import parse_basic_offsets
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.pixels.utils import pack_bits

from dicomweb_proxy.dicom import transcode
from dicomweb_proxy.dicom import transfer_syntax as ts
from dicomweb_proxy.dicom.ahi_json import attributes_to_dataset, dataset_to_attributes
from dicomweb_proxy.dicom.frames import store_pixels
from dicomweb_proxy.dicom.part10 import (
    ENCAPSULATED_END,
    IMPLEMENTATION_CLASS_UID,
    Part10,
    encapsulated_start,
    fragment,
    native_length,
    pack_bit_frames,
)

from .test_ahi_json import assert_same_elements


def _test_file(name: str) -> str:
    """One of pydicom's test files, or of its character set files."""
    return get_testdata_file(name) or get_charset_files(name)[0]


def stored(name: str) -> tuple[Dataset, dict, dict, str, list[bytes]]:
    ds = pydicom.dcmread(_test_file(name))
    attributes, vrs = dataset_to_attributes(ds)
    pixels = store_pixels(ds)
    attributes.update(pixels.changed_attributes)
    return ds, attributes, vrs, pixels.transfer_syntax_uid, [f.data for f in pixels.frames]


def native_object(attributes: dict, vrs: dict, frames: list[bytes]) -> bytes:
    part10 = Part10(attributes, vrs, ts.EXPLICIT_VR_LE)
    length = native_length(attributes, len(frames))
    padding = b"\x00" * (length % 2)
    return b"".join([part10.head, part10.native_header(length), *frames, padding, part10.tail])


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_rle_2frame.dcm", "MR_small.dcm"])
def test_native_and_stored_syntaxes_round_trip(name):
    source, attributes, vrs, syntax, frames = stored(name)
    native = [transcode.to_native(frame, syntax, attributes) for frame in frames]
    copy = pydicom.dcmread(DicomBytesIO(native_object(attributes, vrs, native)))
    assert copy.file_meta.TransferSyntaxUID == ts.EXPLICIT_VR_LE
    assert copy.file_meta.MediaStorageSOPClassUID == source.SOPClassUID
    assert copy.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
    assert copy.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ("OW" if source.BitsAllocated > 8 else "OB") == copy["PixelData"].VR
    assert_same_elements(source, copy, name)
    np.testing.assert_array_equal(copy.pixel_array, source.pixel_array)

    part10 = Part10(attributes, vrs, syntax)
    data = b"".join([part10.head, *part10.encapsulated(frames), part10.tail])
    encapsulated = pydicom.dcmread(DicomBytesIO(data))
    assert encapsulated.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(encapsulated.pixel_array, source.pixel_array)


def test_basic_offset_table_points_at_each_frame():
    frames = [b"\x01" * 5, b"\x02" * 8, b"\x03"]
    chunks = [encapsulated_start(frames)]
    for frame in frames:
        chunks.extend(fragment(frame))
    chunks.append(ENCAPSULATED_END)
    value = b"".join(chunks)[12:]  # after tag, VR, reserved and undefined length
    table = DicomBytesIO(value)
    table.is_little_endian = True
    offsets = parse_basic_offsets(table)
    assert offsets == [0, 8 + 6, 8 + 6 + 8 + 8]
    items = value[8 + 4 * len(frames) :]
    for offset, frame in zip(offsets, frames, strict=True):
        (length,) = struct.unpack_from("<I", items, offset + 4)
        assert items[offset + 8 : offset + 8 + len(frame)] == frame
        assert length == len(frame) + len(frame) % 2
    assert encapsulated_start(None).endswith(struct.pack("<HHI", 0xFFFE, 0xE000, 0))


def test_values_the_source_charset_cannot_hold_switch_to_utf8():
    attributes = {
        "SpecificCharacterSet": "ISO_IR 100",
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7",
        "SOPInstanceUID": "1.2.3",
        "PatientName": "山田^太郎",
        "StudyDescription": "Müller",
    }
    copy = pydicom.dcmread(DicomBytesIO(Part10(attributes, {}, ts.EXPLICIT_VR_LE).head))
    assert copy.SpecificCharacterSet == "ISO_IR 192"
    assert copy.PatientName == "山田^太郎" and copy.StudyDescription == "Müller"
    latin = {**attributes, "PatientName": "Øvrebø^Åse"}
    copy = pydicom.dcmread(DicomBytesIO(Part10(latin, {}, ts.EXPLICIT_VR_LE).head))
    assert copy.SpecificCharacterSet == "ISO_IR 100" and copy.PatientName == "Øvrebø^Åse"


def test_attributes_after_the_pixel_data_stay_after_it():
    source, attributes, vrs, syntax, frames = stored("CT_small.dcm")
    after = [element.tag for element in source if element.tag > 0x7FE00010]
    assert after
    part10 = Part10(attributes, vrs, ts.EXPLICIT_VR_LE)
    assert part10.tail
    native = [transcode.to_native(frame, syntax, attributes) for frame in frames]
    copy = pydicom.dcmread(DicomBytesIO(native_object(attributes, vrs, native)))
    assert [element.tag for element in copy if element.tag > 0x7FE00010] == after


def test_one_bit_frames_are_packed_together():
    rows, columns, count = 3, 5, 3  # 15 pixels: frames do not end on a byte
    frames = np.random.default_rng(1).integers(0, 2, (count, rows, columns), dtype=np.uint8)
    per_frame = [pack_bits(frame) for frame in frames]
    joined = pack_bit_frames(per_frame, rows * columns)
    assert joined == pack_bits(frames)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts.EXPLICIT_VR_LE
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, count
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 1, 0
    ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME2"
    attributes, _ = dataset_to_attributes(ds)
    attributes["PixelData"] = None
    assert native_length(attributes, count) == len(joined)


def _reference_part10(attributes: dict, vrs: dict, syntax: str) -> bytes:
    """What pydicom's own writer makes of the non-pixel attributes: the element-by-element
    encoding must give the same bytes."""
    non_pixel = {k: v for k, v in attributes.items() if k not in ("PixelData",)}
    ds = attributes_to_dataset(non_pixel, vrs)
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = "DWPROXY_0_1"
    ds.file_meta = meta
    buffer = DicomBytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "SC_rgb_rle_2frame.dcm",
        "rtplan.dcm",
        "chrH31.dcm",
        "chrJapMulti.dcm",
        "chrRuss.dcm",
        "chrSQEncoding.dcm",
        "chrX1.dcm",
        "liver_1frame.dcm",
        "waveform_ecg.dcm",
        "JPEG2000.dcm",
    ],
)
def test_elements_encoded_one_by_one_equal_pydicoms_writer(name):
    ds = pydicom.dcmread(_test_file(name))
    if "PixelData" in ds:
        _, attributes, vrs, syntax, _ = stored(name)
    else:
        (attributes, vrs), syntax = dataset_to_attributes(ds), ts.EXPLICIT_VR_LE
    attributes.setdefault("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")  # some files lack them
    attributes.setdefault("SOPInstanceUID", "1.2.3.4")
    expected = _reference_part10(attributes, vrs, syntax)
    for _ in range(2):  # the second time from the element cache
        part10 = Part10(attributes, vrs, syntax)
        assert part10.head + part10.tail == expected


def test_the_element_cache_tells_values_apart():
    base = {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "SOPInstanceUID": "1.2.3"}
    for value in (1.0, float("nan"), None, -0.0):
        attributes = {**base, "SliceThickness": value, "ContrastBolusVolume": value}
        part10 = Part10(attributes, {}, ts.EXPLICIT_VR_LE)
        assert part10.head == _reference_part10(attributes, {}, ts.EXPLICIT_VR_LE), value
