"""Every attribute of a source file survives the trip through an AHI attribute block and JSON."""

from __future__ import annotations

import warnings

import orjson
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomweb_proxy.dicom.ahi_json import (
    PIXEL_TAGS,
    attributes_to_dataset,
    dataset_to_attributes,
)

from .pydicom_files import bundled_files

EMPTY = ("", None, [])


def assert_same_elements(source: Dataset, copy: Dataset, where: str) -> None:
    for elem in source:
        if elem.tag in PIXEL_TAGS or elem.tag.element == 0:
            continue
        assert elem.tag in copy, f"{where}: {elem.tag} missing"
        other = copy[elem.tag]
        if elem.VR == "SQ":
            assert len(elem.value) == len(other.value), f"{where}: {elem.tag} item count"
            for index, (item, item_copy) in enumerate(zip(elem.value, other.value, strict=True)):
                assert_same_elements(item, item_copy, f"{where} {elem.tag}[{index}]")
        elif elem.value in EMPTY:
            assert other.value in EMPTY, f"{where}: {elem.tag} should be empty"
        else:
            assert other.value == elem.value, f"{where}: {elem.tag} {elem.VR}"


@pytest.mark.parametrize("path", bundled_files(), ids=lambda p: p.name)
def test_pydicom_file_round_trip(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = pydicom.dcmread(path)
        attributes, vrs = dataset_to_attributes(source)
        stored = orjson.loads(orjson.dumps(attributes))
        copy = attributes_to_dataset(stored, orjson.loads(orjson.dumps(vrs)))
        assert_same_elements(source, copy, path.name)
        assert_same_elements(source.file_meta, copy.file_meta, f"{path.name} meta")
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in source:
            assert stored[keyword] is None


def test_value_encoding_follows_ahi():
    ds = Dataset()
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.SoftwareVersions = "1.06"
    ds.SliceThickness = "1.50"
    ds.ImagePositionPatient = ["-1.0", "2", "3.25"]
    ds.Rows = 512
    ds.AccessionNumber = ""
    ds.FrameIncrementPointer = 0x00181063
    ds.add_new(0x00111010, "LO", "DICOMWEB_PROXY")
    ds.add_new(0x00111011, "OB", b"\x00\x01\x02")
    ds.ReferencedStudySequence = [Dataset()]
    ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID = "1.2.3"
    attributes, vrs = dataset_to_attributes(ds)
    assert attributes["PatientName"] == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert attributes["SoftwareVersions"] == ["1.06"]  # the dictionary allows many: an array
    assert attributes["SliceThickness"] == "1.50"  # DS keeps its text
    assert attributes["ImagePositionPatient"] == ["-1.0", "2", "3.25"]
    assert attributes["Rows"] == 512
    assert attributes["AccessionNumber"] is None
    assert attributes["FrameIncrementPointer"] == ["00181063"]
    assert attributes["00111011"] == "AAEC"
    assert vrs == {"00111010": "LO", "00111011": "OB"}
    assert attributes["ReferencedStudySequence"] == [{"ReferencedSOPInstanceUID": "1.2.3"}]


def test_private_tags_in_sequence_items_keep_their_vr():
    item = Dataset()
    item.add_new(0x00110010, "LO", "CREATOR")
    item.add_new(0x00111001, "US", 7)
    ds = Dataset()
    ds.ReferencedStudySequence = [item]
    attributes, _ = dataset_to_attributes(ds)
    assert attributes["ReferencedStudySequence"][0]["DICOMVRs"] == {
        "00110010": "LO",
        "00111001": "US",
    }
    copy = attributes_to_dataset(orjson.loads(orjson.dumps(attributes)))
    assert copy.ReferencedStudySequence[0][0x00111001].VR == "US"
    assert copy.ReferencedStudySequence[0][0x00111001].value == 7


def test_a_memo_changes_no_value():
    """Elements taken from the memo (files read twice, after every other file) encode as
    without it, and a file's values are its own (lists are not shared between files)."""
    memo: dict = {}
    paths = bundled_files()
    for path in [*paths, *paths]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = dataset_to_attributes(pydicom.dcmread(path))
            remembered = dataset_to_attributes(pydicom.dcmread(path), memo)
        assert remembered == expected, path.name
    assert memo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, _ = dataset_to_attributes(pydicom.dcmread(paths[0]), memo)
        again, _ = dataset_to_attributes(pydicom.dcmread(paths[0]), memo)
    lists = [key for key, value in first.items() if isinstance(value, list) and value]
    assert lists
    assert all(first[key] is not again[key] for key in lists)
