"""The request sequences of real viewers, replayed with dicomweb-client (Python) on the samples.

- OHIF 3.12+ (default DICOMweb data source): study list, prior studies by patient id, series
  list, one series-metadata request per series, one frame per request with
  ``transfer-syntax=*`` (see shared VIEWERS.md).
- Weasis 4 (DICOMweb node, base URL ``http://host:8080/aetitle``): QIDO-RS studies and series
  with includefield, then the series' instances retrieved with WADO-RS as
  ``multipart/related; type="application/dicom"``.
- 3D Slicer (DICOMweb browser, ``DICOMUtils.importFromDICOMWeb``): series of a study, instances
  of each series, each instance retrieved and written to the DICOM database.

The pixels that arrive are checked against pydicom's decoding of the source files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from .sample_data import ImportedSamples

pytestmark = pytest.mark.parametrize("imported_samples", ["sqlite", "ahi"], indirect=True)

OHIF_STUDY_FIELDS = ["00081030", "00080060", "00080090", "00100030"]
OHIF_SERIES_FIELDS = ["00080021", "00080031", "0008103E", "00200011"]
WEASIS_STUDY_FIELDS = ["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"]


@pytest.fixture(scope="module")
def sources(imported_samples: ImportedSamples) -> dict[str, Path]:
    """SOP Instance UID -> generated sample file."""
    found = {}
    for path in imported_samples.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if str(ds.get("PatientID", "")).startswith("PAT-"):
            found[ds.SOPInstanceUID] = path
    return found


def _value(dataset: dict, tag: str):
    return dataset[tag]["Value"][0]


def _source_pixels(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path).pixel_array


def test_ohif_study_list_series_metadata_and_frames(samples_server: str, sources):
    client = DICOMwebClient(url=samples_server)
    studies = client.search_for_studies(
        limit=101, offset=0, fuzzymatching=False, fields=OHIF_STUDY_FIELDS
    )
    ct = next(
        study
        for study in studies
        if "CT" in study.get("00080061", {}).get("Value", [])
        and _value(study, "00100020") == "PAT-001"
    )
    study_uid, patient_id = _value(ct, "0020000D"), _value(ct, "00100020")
    # the Patient Name filter with non-ASCII text, and prior studies by hex-tag key
    name = _value(ct, "00100010")["Alphabetic"].split("^")[0]
    by_name = client.search_for_studies(search_filters={"PatientName": f"*{name[1:4]}*"})
    assert study_uid in {_value(s, "0020000D") for s in by_name}
    priors = client.search_for_studies(
        search_filters={"00100020": patient_id}, fields=OHIF_STUDY_FIELDS
    )
    assert study_uid in {_value(s, "0020000D") for s in priors}
    series_list = client.search_for_series(study_uid, fields=OHIF_SERIES_FIELDS)
    assert all("0008103E" in series for series in series_list)
    for series in series_list:
        series_uid = _value(series, "0020000E")
        metadata = client.retrieve_series_metadata(study_uid, series_uid)
        assert len(metadata) == _value(series, "00201209")
        first = min(metadata, key=lambda m: int(_value(m, "00200013")))
        sop_uid = _value(first, "00080018")
        (frame,) = client.retrieve_instance_frames(
            study_uid,
            series_uid,
            sop_uid,
            frame_numbers=[1],
            media_types=(("application/octet-stream", "*"),),
        )
        syntax = _value(first, "00020010")
        assert syntax == "1.2.840.10008.1.2.4.202"  # stored HTJ2K, sent as it is
        decoded = imagecodecs.htj2k_decode(frame)
        assert np.array_equal(decoded, _source_pixels(sources[sop_uid]))


def test_weasis_query_and_retrieve_series(samples_server: str, sources):
    client = DICOMwebClient(url=samples_server)
    studies = client.search_for_studies(
        search_filters={"PatientName": "Øvrebø*"}, fields=WEASIS_STUDY_FIELDS
    )
    assert len(studies) == 1
    study_uid = _value(studies[0], "0020000D")
    series_list = client.search_for_series(
        study_uid, fields=["SeriesDescription", "NumberOfSeriesRelatedInstances"]
    )
    assert len(series_list) == 2
    for series in series_list:
        series_uid = _value(series, "0020000E")
        instances = client.retrieve_series(
            study_uid, series_uid, media_types=(("application/dicom", "*"),)
        )
        assert len(instances) == _value(series, "00201209")
        for instance in instances:
            expected = _source_pixels(sources[instance.SOPInstanceUID])
            assert np.array_equal(instance.pixel_array, expected)
            assert (
                instance.PatientName
                == pydicom.dcmread(
                    sources[instance.SOPInstanceUID], stop_before_pixels=True
                ).PatientName
            )


def test_slicer_import_from_dicomweb(samples_server: str, sources, tmp_path: Path):
    """DICOMUtils.importFromDICOMWeb: series, instances, then each instance retrieved with the
    client's default media type, written as a file, read back."""
    client = DICOMwebClient(url=samples_server)
    (us_study,) = client.search_for_studies(
        search_filters={"ModalitiesInStudy": "US", "PatientID": "PAT-*"}
    )
    study_uid = _value(us_study, "0020000D")
    written = []
    for series in client.search_for_series(study_uid):
        series_uid = _value(series, "0020000E")
        for instance in client.search_for_instances(study_uid, series_uid):
            sop_uid = _value(instance, "00080018")
            dataset = client.retrieve_instance(study_uid, series_uid, sop_uid)
            path = tmp_path / f"{sop_uid}.dcm"
            dataset.save_as(path, enforce_file_format=True)
            written.append(path)
    assert len(written) == 3  # two cines and the SR
    for path in written:
        ds = pydicom.dcmread(path)
        source = pydicom.dcmread(sources[ds.SOPInstanceUID])
        assert ds.Modality == source.Modality
        if "PixelData" in source and source.file_meta.TransferSyntaxUID.is_compressed is False:
            assert np.array_equal(ds.pixel_array, source.pixel_array)
        if ds.Modality == "SR":
            assert ds.ContentSequence == source.ContentSequence
