"""A Comprehensive SR report referencing other instances of its study."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage

from .model import Series, code_item, instance_uid, new_instance, save, seeded_uid


def _content_item(
    relationship: str, value_type: str, concept: tuple[str, str, str], **values: object
) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [code_item(*concept)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _measurement(value: str, unit: tuple[str, str, str]) -> Dataset:
    measured = Dataset()
    measured.MeasurementUnitsCodeSequence = [code_item(*unit)]
    measured.NumericValue = value
    return measured


def _sr_tree() -> list[Dataset]:
    """Findings (TEXT, CODE, NUM) and an impression under the report's root CONTAINER."""
    findings = _content_item(
        "CONTAINS",
        "CONTAINER",
        ("121070", "DCM", "Findings"),
        ContinuityOfContent="SEPARATE",
        ContentSequence=[
            _content_item(
                "CONTAINS",
                "TEXT",
                ("121071", "DCM", "Finding"),
                TextValue="Portal vein patent with hepatopetal flow; no focal lesion ≥ 5 mm.",
            ),
            _content_item(
                "CONTAINS",
                "CODE",
                ("363698007", "SCT", "Finding site"),
                ConceptCodeSequence=[code_item("10200004", "SCT", "Liver")],
            ),
            _content_item(
                "CONTAINS",
                "NUM",
                ("81827009", "SCT", "Diameter"),
                MeasuredValueSequence=[_measurement("11.5", ("mm", "UCUM", "millimeter"))],
            ),
        ],
    )
    impression = _content_item(
        "CONTAINS",
        "CONTAINER",
        ("121072", "DCM", "Impressions"),
        ContinuityOfContent="SEPARATE",
        ContentSequence=[
            _content_item(
                "CONTAINS",
                "TEXT",
                ("121073", "DCM", "Impression"),
                TextValue="Ecografía abdominal sin hallazgos patológicos.",
            )
        ],
    )
    language = _content_item(
        "HAS CONCEPT MOD",
        "CODE",
        ("121049", "DCM", "Language of Content Item and Descendants"),
        ConceptCodeSequence=[code_item("es", "RFC5646", "Spanish")],
    )
    return [language, findings, impression]


def write_sr(
    out_dir: Path,
    series: Series,
    evidence: Sequence[tuple[Series, int, str]],
    *,
    seed: int,
    transfer_syntax: str,
) -> Path:
    """A Comprehensive SR report referencing the (series, instance number, SOP class) evidence."""
    ds = new_instance(series, ComprehensiveSRStorage, 1, seed)
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.PerformedProcedureCodeSequence = []
    ds.CurrentRequestedProcedureEvidenceSequence = [_evidence(evidence, seed)]
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [code_item("18748-4", "LN", "Diagnostic imaging report")]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2000"
    ds.ContentTemplateSequence = [template]
    ds.ContentSequence = _sr_tree()
    return save(out_dir, series, ds, transfer_syntax)


def _evidence(evidence: Sequence[tuple[Series, int, str]], seed: int) -> Dataset:
    """A Hierarchical SOP Instance Reference to the evidence (all in one study)."""
    study = Dataset()
    study.StudyInstanceUID = seeded_uid(seed, "study", evidence[0][0].study.accession)
    study.ReferencedSeriesSequence = []
    for series in dict.fromkeys(s for s, _, _ in evidence):
        ref_series = Dataset()
        ref_series.SeriesInstanceUID = seeded_uid(
            seed, "series", series.study.accession, series.number
        )
        ref_series.ReferencedSOPSequence = []
        for _, number, sop_class in (e for e in evidence if e[0] == series):
            sop = Dataset()
            sop.ReferencedSOPClassUID = sop_class
            sop.ReferencedSOPInstanceUID = instance_uid(seed, series, number)
            ref_series.ReferencedSOPSequence.append(sop)
        study.ReferencedSeriesSequence.append(ref_series)
    return study
