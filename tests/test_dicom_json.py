"""AHI attribute blocks → DICOM JSON (PS3.18 Annex F), on the real AHI sample and per VR."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomweb_proxy.dicom.dicom_json import decoded_length, to_dicom_json
from dicomweb_proxy.dicom.image_set import merged_instance_attributes

_SERIES = "1.3.6.1.4.1.25403.166563008443.732.20120418082458.2"
_SINGLE_FRAME = "1.3.6.1.4.1.25403.166563008443.732.20120418082502.1"
_MULTI_FRAME = "1.3.6.1.4.1.25403.166563008443.732.20120418082508.1"


def _instance_json(sample: dict[str, Any], sop_uid: str = _SINGLE_FRAME, **options: Any) -> dict:
    attributes, vrs = merged_instance_attributes(sample, _SERIES, sop_uid)
    return to_dicom_json(attributes, vrs, **options)


# --- the real AHI sample ---------------------------------------------------------------------


def test_sample_keys_are_sorted_upper_case_tags(ahi_sample):
    dataset = _instance_json(ahi_sample)
    assert list(dataset) == sorted(dataset)
    assert all(len(tag) == 8 and tag == tag.upper() for tag in dataset)
    orjson.dumps(dataset)  # plain JSON types only


def test_sample_patient_name_is_a_person_name_object(ahi_sample):
    assert _instance_json(ahi_sample)["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "US Echo"}],
    }


def test_sample_nulls_keep_their_vr_without_value(ahi_sample):
    dataset = _instance_json(ahi_sample)
    assert dataset["00100020"] == {"vr": "LO"}  # PatientID
    assert dataset["00080032"] == {"vr": "TM"}  # AcquisitionTime
    assert dataset["00080090"] == {"vr": "PN"}  # ReferringPhysicianName


def test_sample_multi_valued_and_numeric_strings(ahi_sample):
    dataset = _instance_json(ahi_sample, _MULTI_FRAME)
    assert dataset["00181020"] == {"vr": "LO", "Value": ["1.06"]}  # SoftwareVersions
    assert dataset["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", None, "0011"]}
    assert dataset["00200013"] == {"vr": "IS", "Value": [3]}  # InstanceNumber "3"
    assert dataset["00280008"] == {"vr": "IS", "Value": [14]}  # NumberOfFrames "14"
    assert dataset["00181065"]["Value"][:3] == [33.333, 33.333, 50.0]  # FrameTimeVector
    assert dataset["00280009"] == {"vr": "AT", "Value": ["00181065"]}  # FrameIncrementPointer
    assert dataset["00280010"] == {"vr": "US", "Value": [240]}  # Rows


def test_sample_ultrasound_regions_sequence(ahi_sample):
    regions = _instance_json(ahi_sample)["00186011"]
    assert regions["vr"] == "SQ"
    assert len(regions["Value"]) == 4
    second = regions["Value"][1]
    assert list(second) == sorted(second)
    assert second["00186018"] == {"vr": "UL", "Value": [164]}  # RegionLocationMinX0
    assert second["0018602C"] == {"vr": "FD", "Value": [-0.07937499999068676]}  # PhysicalDeltaX
    assert second["00186020"] == {"vr": "SL", "Value": [170]}  # ReferencePixelX0


def test_sample_private_tags_take_their_vr_from_dicomvrs(ahi_sample):
    dataset = _instance_json(ahi_sample)
    assert dataset["7FDD0010"] == {"vr": "LO", "Value": ["TSC Private Group"]}
    assert dataset["7FDD1090"] == {"vr": "UN"}  # "" → present but empty
    assert dataset["7FDF1001"] == {"vr": "UN", "InlineBinary": "AQA="}
    assert dataset["00020001"] == {"vr": "OB", "InlineBinary": "AAE="}


def test_sample_pixel_data_needs_a_bulk_data_uri(ahi_sample):
    assert "7FE00010" not in _instance_json(ahi_sample)
    dataset = _instance_json(
        ahi_sample,
        bulk_data_uri=lambda path: f"https://x/bulk/{path}" if path == "7FE00010" else None,
    )
    assert dataset["7FE00010"] == {"vr": "OB", "BulkDataURI": "https://x/bulk/7FE00010"}
    assert dataset["7FDF1001"] == {"vr": "UN", "InlineBinary": "AQA="}  # callback said None


def test_merged_instance_attributes_later_levels_win(ahi_sample):
    series = ahi_sample["Study"]["Series"][_SERIES]
    series["DICOM"]["Manufacturer"] = "series level"
    series["Instances"][_SINGLE_FRAME]["DICOM"]["Manufacturer"] = "instance level"
    ahi_sample["Study"]["DICOMVRs"] = {"00091001": "LO"}
    attributes, vrs = merged_instance_attributes(ahi_sample, _SERIES, _SINGLE_FRAME)
    assert attributes["Manufacturer"] == "instance level"
    assert attributes["PatientName"] == "US Echo"
    assert attributes["StudyDate"] == "20120418"
    assert vrs["7FDD1090"] == "UN" and vrs["00091001"] == "LO"
    with pytest.raises(KeyError):
        merged_instance_attributes(ahi_sample, _SERIES, "1.2.3")


# --- one case per VR -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("RetrieveAETitle", "PACS", {"vr": "AE", "Value": ["PACS"]}),
        ("PatientAge", "045Y", {"vr": "AS", "Value": ["045Y"]}),
        ("Modality", "CT", {"vr": "CS", "Value": ["CT"]}),
        ("StudyDate", "20240102", {"vr": "DA", "Value": ["20240102"]}),
        ("SliceThickness", "1.50", {"vr": "DS", "Value": [1.5]}),
        ("SliceThickness", " 2 ", {"vr": "DS", "Value": [2]}),
        ("SliceThickness", "1e3", {"vr": "DS", "Value": [1000.0]}),
        ("SliceThickness", "abc", {"vr": "DS", "Value": ["abc"]}),
        ("SliceThickness", "NaN", {"vr": "DS", "Value": ["NaN"]}),
        ("SliceThickness", 0.5, {"vr": "DS", "Value": [0.5]}),
        ("PixelSpacing", ["0.5", "0.25"], {"vr": "DS", "Value": [0.5, 0.25]}),
        (
            "AcquisitionDateTime",
            "20240102030405.1+0100",
            {"vr": "DT", "Value": ["20240102030405.1+0100"]},
        ),
        ("InstanceNumber", "7", {"vr": "IS", "Value": [7]}),
        ("InstanceNumber", 7, {"vr": "IS", "Value": [7]}),
        ("InstanceNumber", 5.0, {"vr": "IS", "Value": [5]}),
        ("InstanceNumber", "7.5", {"vr": "IS", "Value": ["7.5"]}),
        ("Manufacturer", "ACME", {"vr": "LO", "Value": ["ACME"]}),
        ("AdditionalPatientHistory", "a\\b", {"vr": "LT", "Value": ["a\\b"]}),
        ("StationName", "CT01", {"vr": "SH", "Value": ["CT01"]}),
        ("InstitutionAddress", "1 Main St", {"vr": "ST", "Value": ["1 Main St"]}),
        ("StudyTime", "101010.5", {"vr": "TM", "Value": ["101010.5"]}),
        ("LongCodeValue", "x" * 100, {"vr": "UC", "Value": ["x" * 100]}),
        (
            "SOPClassUID",
            "1.2.840.10008.5.1.4.1.1.2",
            {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
        ),
        ("SourcePresentationAddress", "https://a/b", {"vr": "UR", "Value": ["https://a/b"]}),
        ("StrainAdditionalInformation", "long\\text", {"vr": "UT", "Value": ["long\\text"]}),
        ("Rows", 512, {"vr": "US", "Value": [512]}),
        ("TagAngleSecondAxis", -5, {"vr": "SS", "Value": [-5]}),
        ("SimpleFrameList", [1, 2], {"vr": "UL", "Value": [1, 2]}),
        ("ReferencePixelX0", -3, {"vr": "SL", "Value": [-3]}),
        ("RecommendedDisplayFrameRateInFloat", 29.97, {"vr": "FL", "Value": [29.97]}),
        ("EventTimeOffset", 1.25, {"vr": "FD", "Value": [1.25]}),
        ("FileOffsetInContainer", 2**40, {"vr": "UV", "Value": [2**40]}),
        ("FileOffsetInContainer", 2**60, {"vr": "UV", "Value": [str(2**60)]}),
        ("SelectorSVValue", [-(2**60)], {"vr": "SV", "Value": [str(-(2**60))]}),
        ("FrameIncrementPointer", "00181065", {"vr": "AT", "Value": ["00181065"]}),
        ("FrameIncrementPointer", 0x00181063, {"vr": "AT", "Value": ["00181063"]}),
        ("FileMetaInformationVersion", "AAE=", {"vr": "OB", "InlineBinary": "AAE="}),
        ("FilterLookupTableData", "AAAAAAAA8D8=", {"vr": "OD", "InlineBinary": "AAAAAAAA8D8="}),
        ("VectorGridData", "AACAPw==", {"vr": "OF", "InlineBinary": "AACAPw=="}),
        ("LongPrimitivePointIndexList", "AQAAAA==", {"vr": "OL", "InlineBinary": "AQAAAA=="}),
        ("ExtendedOffsetTable", "AAAAAAAAAAA=", {"vr": "OV", "InlineBinary": "AAAAAAAAAAA="}),
        ("RedPaletteColorLookupTableData", "AAD//w==", {"vr": "OW", "InlineBinary": "AAD//w=="}),
        ("RedPaletteColorLookupTableData", None, {"vr": "OW"}),
    ],
)
def test_value_encoding_per_vr(key, value, expected):
    tag = next(iter(to_dicom_json({key: value})))
    assert to_dicom_json({key: value}) == {tag: expected}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Doe^John", [{"Alphabetic": "Doe^John"}]),
        (
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
            [
                {
                    "Alphabetic": "Yamada^Tarou",
                    "Ideographic": "山田^太郎",
                    "Phonetic": "やまだ^たろう",
                }
            ],
        ),
        ("=山田^太郎", [{"Ideographic": "山田^太郎"}]),
        (
            ["Doe^John", "", "Roe^Jane"],
            [{"Alphabetic": "Doe^John"}, None, {"Alphabetic": "Roe^Jane"}],
        ),
    ],
)
def test_person_names(value, expected):
    assert to_dicom_json({"OtherPatientNames": value})["00101001"] == {
        "vr": "PN",
        "Value": expected,
    }


def test_empty_values_have_no_value_key():
    dataset = to_dicom_json(
        {"PatientName": "", "PatientID": None, "ImageType": [], "ReferencedImageSequence": []}
    )
    assert dataset == {
        "00080008": {"vr": "CS"},
        "00081140": {"vr": "SQ"},
        "00100010": {"vr": "PN"},
        "00100020": {"vr": "LO"},
    }


def test_scalars_become_one_element_arrays_and_backslashes_split_multi_valued():
    dataset = to_dicom_json({"SoftwareVersions": "1.0", "ImageType": "ORIGINAL\\PRIMARY"})
    assert dataset["00181020"] == {"vr": "LO", "Value": ["1.0"]}
    assert dataset["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]}
    # StudyDescription holds one value: a backslash in it is data, not a separator.
    assert to_dicom_json({"StudyDescription": "a\\b"})["00081030"]["Value"] == ["a\\b"]


def test_vr_resolution():
    # Ambiguous dictionary VRs take the first alternative unless DICOMVRs says otherwise.
    assert to_dicom_json({"SmallestImagePixelValue": 0})["00280106"]["vr"] == "US"
    assert to_dicom_json({"SmallestImagePixelValue": -2}, {"00280106": "SS"})["00280106"] == {
        "vr": "SS",
        "Value": [-2],
    }
    assert to_dicom_json({"00280106": 7})["00280106"]["vr"] == "US"
    # Unknown tags are UN, private creators LO, group lengths UL; unknown keywords are dropped.
    assert to_dicom_json({"00091001": "AQI="}) == {"00091001": {"vr": "UN", "InlineBinary": "AQI="}}
    assert to_dicom_json({"00090010": "ACME"})["00090010"] == {"vr": "LO", "Value": ["ACME"]}
    assert to_dicom_json({"00090000": 12})["00090000"] == {"vr": "UL", "Value": [12]}
    assert to_dicom_json({"NoSuchKeyword": "x"}) == {}
    # Lower-case hex keys and repeating-group keywords resolve too.
    assert "7FDD1090" in to_dicom_json({"7fdd1090": ""}, {"7FDD1090": "UN"})
    assert to_dicom_json({"OverlayRows": 512}) == {"60000010": {"vr": "US", "Value": [512]}}


def test_sequence_items_carry_their_own_dicomvrs():
    dataset = to_dicom_json(
        {
            "ReferencedImageSequence": [
                {
                    "ReferencedSOPInstanceUID": "1.2.3",
                    "00091010": 5,
                    "DICOMVRs": {"00091010": "US"},
                },
                {"00091010": "AQI="},
                None,
            ]
        },
        {"00091011": "LO"},
    )
    items = dataset["00081140"]["Value"]
    assert items[0] == {
        "00081155": {"vr": "UI", "Value": ["1.2.3"]},
        "00091010": {"vr": "US", "Value": [5]},
    }
    assert items[1] == {"00091010": {"vr": "UN", "InlineBinary": "AQI="}}
    assert items[2] == {}


def test_bulk_data_uri_paths_and_inline_limit():
    seen = []

    def uri(path: str) -> str:
        seen.append(path)
        return f"/bulk/{path}"

    attributes = {
        "FileMetaInformationVersion": "AAE=",  # 2 bytes
        "RedPaletteColorLookupTableData": "A" * 400,  # 300 bytes
        "IconImageSequence": [{"PixelData": None, "Rows": 64}],
    }
    dataset = to_dicom_json(attributes, bulk_data_uri=uri, inline_binary_limit=256)
    assert dataset["00020001"] == {"vr": "OB", "InlineBinary": "AAE="}
    assert dataset["00281201"] == {"vr": "OW", "BulkDataURI": "/bulk/00281201"}
    icon = dataset["00880200"]["Value"][0]
    assert icon["7FE00010"] == {"vr": "OB", "BulkDataURI": "/bulk/00880200/0/7FE00010"}
    assert seen == ["00281201", "00880200/0/7FE00010"]
    # Without a limit every binary value is offered to the callback.
    everything = to_dicom_json(attributes, bulk_data_uri=uri)
    assert everything["00020001"] == {"vr": "OB", "BulkDataURI": "/bulk/00020001"}


def test_decoded_length():
    assert [decoded_length(text) for text in ("", "AA==", "AAA=", "AAAA", "A" * 88)] == [
        0,
        1,
        2,
        3,
        66,
    ]


_VALUES = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.one_of(st.none(), st.text(max_size=8), st.integers()), max_size=3),
)
_KEYS = st.sampled_from(
    [
        "PatientName",
        "InstanceNumber",
        "SliceThickness",
        "Rows",
        "FrameIncrementPointer",
        "StudyDate",
        "FileOffsetInContainer",
        "EventTimeOffset",
        "ImageType",
        "00091010",
    ]
)


@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_any_values_convert_without_raising(attributes):
    orjson.dumps(to_dicom_json(attributes))


def test_kept_conversions_tell_values_apart():
    """Conversions are kept by the value's text: 1, 1.0 and "1" are not one value."""
    cases = [
        ({"SliceThickness": "1"}, {"00180050": {"vr": "DS", "Value": [1]}}),
        ({"SliceThickness": "1.0"}, {"00180050": {"vr": "DS", "Value": [1.0]}}),
        ({"SliceThickness": 1.5}, {"00180050": {"vr": "DS", "Value": [1.5]}}),
        ({"SliceThickness": 1}, {"00180050": {"vr": "DS", "Value": [1]}}),
        ({"PixelSpacing": ["0.5", "0.5"]}, {"00280030": {"vr": "DS", "Value": [0.5, 0.5]}}),
        ({"PixelSpacing": "0.5\\0.5"}, {"00280030": {"vr": "DS", "Value": [0.5, 0.5]}}),
        ({"InstanceNumber": "7"}, {"00200013": {"vr": "IS", "Value": [7]}}),
        ({"PatientName": "A^B"}, {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "A^B"}]}}),
    ]
    for _ in range(2):  # the second time from the kept conversions
        for attributes, expected in cases:
            converted = to_dicom_json(attributes)
            assert converted == expected, attributes
            assert orjson.dumps(converted) == orjson.dumps(expected), attributes
