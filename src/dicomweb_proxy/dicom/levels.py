"""Which attributes belong to the patient, study and series blocks of an image set.

AHI groups attributes by information-entity level. The sets follow the Patient, General Study,
Patient Study, General Series, General Equipment and Frame of Reference modules (PS3.3), plus the
attributes QIDO-RS returns at each level (PS3.18 Table 10.6.3-3 to 10.6.3-5).
"""

PATIENT_KEYWORDS = frozenset(
    {
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "TypeOfPatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientComments",
        "EthnicGroup",
        "PatientSpeciesDescription",
        "PatientBreedDescription",
        "ResponsiblePerson",
        "ResponsibleOrganization",
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "QualityControlSubject",
    }
)

STUDY_KEYWORDS = frozenset(
    {
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "IssuerOfAccessionNumberSequence",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
        "ReferringPhysicianIdentificationSequence",
        "ConsultingPhysicianName",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "ProcedureCodeSequence",
        "ReferencedStudySequence",
        "AdmittingDiagnosesDescription",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "Occupation",
        "AdditionalPatientHistory",
        "MedicalAlerts",
        "Allergies",
        "PregnancyStatus",
        "SmokingStatus",
        "AdmissionID",
    }
)

SERIES_KEYWORDS = frozenset(
    {
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "Laterality",
        "BodyPartExamined",
        "ProtocolName",
        "OperatorsName",
        "PerformingPhysicianName",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedProcedureStepID",
        "PerformedProcedureStepDescription",
        "RequestAttributesSequence",
        "PatientPosition",
        "Manufacturer",
        "ManufacturerModelName",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
        "SoftwareVersions",
        "FrameOfReferenceUID",
        "PositionReferenceIndicator",
    }
)

#: The block each level-bound keyword belongs to, as named in the image-set metadata.
LEVEL_OF_KEYWORD: dict[str, str] = {
    **{k: "Patient" for k in PATIENT_KEYWORDS},
    **{k: "Study" for k in STUDY_KEYWORDS},
    **{k: "Series" for k in SERIES_KEYWORDS},
}
