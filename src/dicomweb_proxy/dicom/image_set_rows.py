"""An image-set metadata document (AHI SchemaVersion 1.1) read into column values per level.

The index writer stores these values; this module only decides which attribute feeds which
column and how its value is converted, so it holds no SQL. Patient, study and series values
come from the first instance's merged attributes, since a level block only holds what all its
instances share (see docs/architecture.md, "Levels").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .columns import (
    attributes_json,
    parse_date,
    parse_datetime,
    parse_integer,
    parse_joined,
    parse_real,
    parse_text,
    parse_time,
)
from .image_set import merged_instance_attributes
from .transfer_syntax import HTJ2K_LOSSLESS_RPCL

_Fields = tuple[tuple[str, str, Callable[[Any], Any]], ...]
"""(column name, attribute keyword, value conversion) of one level."""

_PATIENT: _Fields = (
    ("patientname", "PatientName", parse_text),
    ("patientbirthdate", "PatientBirthDate", parse_date),
    ("patientsex", "PatientSex", parse_text),
    ("patientcomments", "PatientComments", parse_text),
)
_STUDY: _Fields = (
    ("accessionnumber", "AccessionNumber", parse_text),
    ("studyid", "StudyID", parse_text),
    ("studydate", "StudyDate", parse_date),
    ("studytime", "StudyTime", parse_time),
    ("studydescription", "StudyDescription", parse_text),
    ("referringphysicianname", "ReferringPhysicianName", parse_text),
)
_SERIES: _Fields = (
    ("modality", "Modality", parse_text),
    ("seriesnumber", "SeriesNumber", parse_integer),
    ("seriesdescription", "SeriesDescription", parse_text),
    ("institutionname", "InstitutionName", parse_text),
    ("bodypartexamined", "BodyPartExamined", parse_text),
    ("stationname", "StationName", parse_text),
    ("manufacturer", "Manufacturer", parse_text),
    ("protocolname", "ProtocolName", parse_text),
    ("laterality", "Laterality", parse_text),
    ("seriesdate", "SeriesDate", parse_date),
    ("seriestime", "SeriesTime", parse_time),
    ("performedprocedurestepstartdate", "PerformedProcedureStepStartDate", parse_date),
    ("performedprocedurestepstarttime", "PerformedProcedureStepStartTime", parse_time),
)
_INSTANCE: _Fields = (
    ("sopclassuid", "SOPClassUID", parse_text),
    ("imagetype", "ImageType", parse_joined),
    ("instancenumber", "InstanceNumber", parse_integer),
    ("acquisitiondate", "AcquisitionDate", parse_date),
    ("acquisitiontime", "AcquisitionTime", parse_time),
    ("contentdate", "ContentDate", parse_date),
    ("contenttime", "ContentTime", parse_time),
    ("photometricinterpretation", "PhotometricInterpretation", parse_text),
    ("numberofframes", "NumberOfFrames", parse_integer),
    ("rows", "Rows", parse_integer),
    ("columns", "Columns", parse_integer),
    ("bitsallocated", "BitsAllocated", parse_integer),
    ("bitsstored", "BitsStored", parse_integer),
    ("highbit", "HighBit", parse_integer),
    ("rescaleslope", "RescaleSlope", parse_real),
    ("rescaleintercept", "RescaleIntercept", parse_real),
    ("pixelrepresentation", "PixelRepresentation", parse_integer),
    ("windowcenter", "WindowCenter", parse_joined),
    ("windowwidth", "WindowWidth", parse_joined),
    ("observationtime", "ObservationDateTime", parse_datetime),
    ("contentdescription", "ContentDescription", parse_text),
)


@dataclass(slots=True)
class InstanceRow:
    """One instance's column values and its frame IDs in frame order."""

    uid: str
    series_uid: str
    row: dict[str, Any]
    frame_ids: list[str]


@dataclass(slots=True)
class SeriesRow:
    """One series' column values and its instances."""

    uid: str
    row: dict[str, Any]
    instances: list[InstanceRow]
    reference: Mapping[str, Any]  # the first instance's merged attributes


@dataclass(slots=True)
class ImageSetRows:
    """Every level's column values of one image-set document. The patient and issuer IDs are
    None when the document has none: what stands in for them is the index's choice."""

    issuer_id: str | None
    patient_id: str | None
    patient: dict[str, Any]
    study_uid: str
    study: dict[str, Any]
    series: list[SeriesRow]

    @classmethod
    def parse(cls, metadata: Mapping[str, Any]) -> ImageSetRows:
        """ValueError if the document names no Study Instance UID."""
        patient_level = metadata.get("Patient") or {}
        study_level = metadata.get("Study") or {}
        upper = {**(patient_level.get("DICOM") or {}), **(study_level.get("DICOM") or {})}
        upper_vrs = {**(patient_level.get("DICOMVRs") or {}), **(study_level.get("DICOMVRs") or {})}
        all_series = [
            _parse_series(metadata, uid, level, upper)
            for uid, level in (study_level.get("Series") or {}).items()
        ]
        reference = all_series[0].reference if all_series else upper
        study_uid = parse_text(reference.get("StudyInstanceUID"))
        if not study_uid:
            raise ValueError("image set metadata has no StudyInstanceUID")
        patient_row = _columns(_PATIENT, reference)
        patient_row["attributes"] = attributes_json(
            patient_level.get("DICOM") or {}, patient_level.get("DICOMVRs")
        )
        study_row = _columns(_STUDY, reference)
        study_row["attributes"] = attributes_json(upper, upper_vrs)
        return cls(
            issuer_id=parse_text(reference.get("IssuerOfPatientID")),
            patient_id=parse_text(reference.get("PatientID")),
            patient=patient_row,
            study_uid=study_uid,
            study=study_row,
            series=all_series,
        )


def _columns(fields: _Fields, attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: parse(attributes.get(keyword)) for name, keyword, parse in fields}


def _parse_series(
    metadata: Mapping[str, Any], uid: str, level: Mapping[str, Any], upper: Mapping[str, Any]
) -> SeriesRow:
    instances = []
    reference: Mapping[str, Any] | None = None
    for sop_uid, document in (level.get("Instances") or {}).items():
        attributes, _ = merged_instance_attributes(metadata, uid, sop_uid)
        if reference is None:
            reference = attributes
        row = _columns(_INSTANCE, attributes)
        row["storedtransfersyntaxuid"] = (
            parse_text(document.get("StoredTransferSyntaxUID"))
            or HTJ2K_LOSSLESS_RPCL  # AHI: absent means HTJ2K RPCL
        )
        row["attributes"] = attributes_json(document.get("DICOM") or {}, document.get("DICOMVRs"))
        frame_ids = [
            str(one["ID"]) for one in document.get("ImageFrames") or () if one and one.get("ID")
        ]
        instances.append(InstanceRow(sop_uid, uid, row, frame_ids))
    if reference is None:
        reference = {**upper, **(level.get("DICOM") or {})}
    row = _columns(_SERIES, reference)
    row["attributes"] = attributes_json(level.get("DICOM") or {}, level.get("DICOMVRs"))
    return SeriesRow(uid, row, instances, reference)
