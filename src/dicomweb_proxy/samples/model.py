"""Patients, studies and series of the samples, and what every instance of them shares.

UIDs are ``2.25.`` UIDs (PS3.5 B.2) of name-based UUIDs of the seed and the instance's place in
the set, and random numbers come from a generator per purpose, so reruns reproduce every file.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID
from pydicom.valuerep import format_number_as_ds

_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "samples.dicomweb-proxy.invalid")

IMPLEMENTATION_CLASS_UID = UID(f"2.25.{_UUID_NAMESPACE.int}")
IMPLEMENTATION_VERSION_NAME = "DWPROXY_SAMPLES"

_CHARSET = "ISO_IR 192"  # UTF-8: every sample patient has a non-ASCII name
_LOCAL_SCHEME = "99DWP"  # a local coding scheme ("99" prefix) for made-up procedure codes


def seeded_uid(seed: int, *parts: object) -> UID:
    """A UID that depends only on the seed and the parts, so reruns reproduce it.

    (``generate_uid(prefix=None)`` ignores ``entropy_srcs`` and would be random.)
    """
    name = "/".join(map(str, (seed, *parts)))
    return UID(f"2.25.{uuid.uuid5(_UUID_NAMESPACE, name).int}")


def seeded_rng(seed: int, *parts: object) -> np.random.Generator:
    """A generator per purpose, so adding a series does not change the pixels of the others."""
    key = zlib.crc32("/".join(map(str, parts)).encode())
    return np.random.default_rng([seed, key])


def decimal_string(value: float) -> str:
    """A DS string of at most 16 characters (pydicom refuses longer ones on write)."""
    return format_number_as_ds(float(value))


@dataclass(frozen=True)
class Patient:
    """A sample patient; *issuer* is its Issuer of Patient ID, if any."""

    name: str
    patient_id: str
    birth_date: date
    sex: str
    issuer: str = ""


@dataclass(frozen=True)
class Study:
    """A sample study of one patient."""

    patient: Patient
    accession: str
    when: datetime
    description: str
    referring_physician: str
    procedure: tuple[str, str]  # (code value, meaning) in the local coding scheme
    institution: str
    prior_accession: str = ""  # referenced in ReferencedStudySequence when set


@dataclass(frozen=True)
class Series:
    """A sample series of one study."""

    study: Study
    number: int
    modality: str
    description: str
    when: datetime
    body_part: str = ""


_EQUIPMENT = {
    # modality: (Manufacturer, ManufacturerModelName, SoftwareVersions)
    "CT": ("Phantom Imaging Systems", "HelixScan 128", "VB20"),
    "MR": ("Phantom Imaging Systems", "SynthMR 3T", "XA31"),
    "US": ("Phantom Imaging Systems", "SonoSynth 5", "3.2.1"),
    "CR": ("Phantom Imaging Systems", "RadPlate CR", "2.0"),
    "SR": ("dicomweb-proxy", "sample generator", "0.1"),
}


def _da(when: date) -> str:
    return when.strftime("%Y%m%d")


def _tm(when: datetime) -> str:
    return when.strftime("%H%M%S")


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _age(birth: date, on: date) -> str:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def instance_uid(seed: int, series: Series, instance_number: int) -> UID:
    return seeded_uid(seed, "instance", series.study.accession, series.number, instance_number)


def new_instance(
    series: Series, sop_class: str, instance_number: int, seed: int, *, offset_s: float = 0
) -> Dataset:
    """An instance with the patient, study, series, equipment and SOP common attributes set."""
    study, patient = series.study, series.study.patient
    content = series.when + timedelta(seconds=offset_s)
    ds = Dataset()
    ds.SpecificCharacterSet = _CHARSET
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance_uid(seed, series, instance_number)
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da(content), _tm(content)
    ds.StudyDate, ds.StudyTime = _da(study.when), _tm(study.when)
    ds.SeriesDate, ds.SeriesTime = _da(series.when), _tm(series.when)
    ds.ContentDate, ds.ContentTime = _da(content), _tm(content)
    ds.AccessionNumber = study.accession
    ds.Modality = series.modality
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = _EQUIPMENT[series.modality]
    ds.InstitutionName = study.institution
    ds.ReferringPhysicianName = study.referring_physician
    ds.StudyDescription = study.description
    ds.ProcedureCodeSequence = [code_item(study.procedure[0], _LOCAL_SCHEME, study.procedure[1])]
    ds.SeriesDescription = series.description
    if study.prior_accession:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Study Management (retired)
        ref.ReferencedSOPInstanceUID = seeded_uid(seed, "study", study.prior_accession)
        ds.ReferencedStudySequence = [ref]
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = _da(patient.birth_date)
    ds.PatientSex = patient.sex
    ds.PatientAge = _age(patient.birth_date, study.when.date())
    if series.body_part:
        ds.BodyPartExamined = series.body_part
    ds.StudyInstanceUID = seeded_uid(seed, "study", study.accession)
    ds.SeriesInstanceUID = seeded_uid(seed, "series", study.accession, series.number)
    ds.StudyID = study.accession.split("-")[-1]
    ds.SeriesNumber = series.number
    ds.InstanceNumber = instance_number
    return ds


def save(out_dir: Path, series: Series, ds: Dataset, transfer_syntax: str) -> Path:
    """Write ds as Part 10 to <patient id>/<accession>/<series number>/<instance number>.dcm."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    study = series.study
    path = (
        out_dir
        / study.patient.patient_id
        / study.accession
        / f"{series.number:03d}"
        / f"{ds.InstanceNumber:04d}.dcm"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
