"""Build and read image-set metadata documents (AHI SchemaVersion 1.1).

An instance is written with its attributes split over the patient, study and series blocks (see
docs/architecture.md, "Levels") and read back by merging those blocks again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ahi_json import VRS_KEY
from .levels import LEVEL_OF_KEYWORD

SCHEMA_VERSION = "1.1"


@dataclass
class InstanceEntry:
    """One instance with all its attributes in one flat block, as a source file holds them."""

    study_uid: str
    series_uid: str
    sop_uid: str
    attributes: dict[str, Any]
    vrs: dict[str, str] = field(default_factory=dict)
    stored_transfer_syntax_uid: str | None = None
    image_frames: list[dict[str, Any]] = field(default_factory=list)

    def to_block(self, attributes: dict[str, Any]) -> dict[str, Any]:
        block: dict[str, Any] = {"DICOM": attributes}
        if self.vrs:
            block[VRS_KEY] = self.vrs
        if self.stored_transfer_syntax_uid:
            block["StoredTransferSyntaxUID"] = self.stored_transfer_syntax_uid
        if self.image_frames:
            block["ImageFrames"] = self.image_frames
        return block


def build_metadata(
    datastore_id: str, image_set_id: str, instances: Sequence[InstanceEntry]
) -> dict[str, Any]:
    """Return the metadata document of an image set holding *instances* (one study)."""
    if not instances:
        raise ValueError("an image set holds at least one instance")
    study_uids = {entry.study_uid for entry in instances}
    if len(study_uids) != 1:
        raise ValueError(f"an image set holds one study, not {sorted(study_uids)}")
    shared = _shared_level_attributes(instances)
    study: dict[str, Any] = {"DICOM": shared["Study"], "Series": {}}
    for entry in sorted(instances, key=_instance_order):
        series = study["Series"].get(entry.series_uid)
        if series is None:
            series_block = _series_block(instances, entry.series_uid)
            series = study["Series"][entry.series_uid] = {"DICOM": series_block, "Instances": {}}
        lifted = shared["Patient"].keys() | study["DICOM"].keys() | series["DICOM"].keys()
        own = {k: v for k, v in entry.attributes.items() if k not in lifted}
        series["Instances"][entry.sop_uid] = entry.to_block(own)
    return {
        "SchemaVersion": SCHEMA_VERSION,
        "DatastoreID": datastore_id,
        "ImageSetID": image_set_id,
        "Patient": {"DICOM": shared["Patient"]},
        "Study": study,
    }


def _instance_order(entry: InstanceEntry) -> tuple[str, int, str]:
    number = entry.attributes.get("InstanceNumber")
    try:
        position = int(number)
    except (TypeError, ValueError):
        position = 0
    return entry.series_uid, position, entry.sop_uid


def _shared_level_attributes(instances: Sequence[InstanceEntry]) -> dict[str, dict[str, Any]]:
    """Patient and study attributes that every instance holds with the same value."""
    shared: dict[str, dict[str, Any]] = {"Patient": {}, "Study": {}}
    for keyword, value in _common_attributes(instances).items():
        level = LEVEL_OF_KEYWORD[keyword]
        if level in shared:
            shared[level][keyword] = value
    return shared


def _series_block(instances: Sequence[InstanceEntry], series_uid: str) -> dict[str, Any]:
    members = [entry for entry in instances if entry.series_uid == series_uid]
    return {
        keyword: value
        for keyword, value in _common_attributes(members).items()
        if LEVEL_OF_KEYWORD[keyword] == "Series"
    }


def _common_attributes(instances: Sequence[InstanceEntry]) -> dict[str, Any]:
    first, *others = instances
    return {
        keyword: value
        for keyword, value in first.attributes.items()
        if keyword in LEVEL_OF_KEYWORD
        and all(keyword in o.attributes and o.attributes[keyword] == value for o in others)
    }


def merged_instance_attributes(
    metadata: Mapping[str, Any], series_uid: str, sop_uid: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """All attributes of one instance and their DICOMVRs: patient → study → series → instance,
    later levels winning (levels hold only what every instance shares). KeyError if absent."""
    study = metadata["Study"]
    series = study["Series"][series_uid]
    return _merge((metadata.get("Patient") or {}, study, series, series["Instances"][sop_uid]))


def iter_instances(metadata: Mapping[str, Any]) -> Iterator[InstanceEntry]:
    """Yield every instance of a metadata document with its levels merged back into one block."""
    patient = metadata.get("Patient") or {}
    study = metadata.get("Study") or {}
    for series_uid, series in (study.get("Series") or {}).items():
        for sop_uid, instance in (series.get("Instances") or {}).items():
            attributes, vrs = _merge((patient, study, series, instance))
            yield InstanceEntry(
                study_uid=attributes.get("StudyInstanceUID"),
                series_uid=series_uid,
                sop_uid=sop_uid,
                attributes=attributes,
                vrs=vrs,
                stored_transfer_syntax_uid=instance.get("StoredTransferSyntaxUID"),
                image_frames=instance.get("ImageFrames") or [],
            )


def _merge(levels: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    attributes: dict[str, Any] = {}
    vrs: dict[str, str] = {}
    for level in levels:
        attributes.update(level.get("DICOM") or {})
        vrs.update(level.get(VRS_KEY) or {})
    return attributes, vrs
