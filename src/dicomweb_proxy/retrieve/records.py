"""What retrieval hands out: resolved instances, the plan of a request, and its failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

InstanceKey = tuple[str, str, str]
"""(Study Instance UID, Series Instance UID, SOP Instance UID)."""


class NotFound(LookupError):
    """Nothing in the index (or the store) matches the UIDs of a request."""


class FrameGone(NotFound):
    """The index and the metadata name a frame the store no longer has (its image set was
    deleted or replaced since)."""


class UndecodableFrame(Exception):
    """A stored frame no installed codec decodes, asked for in another transfer syntax: its
    stored bytes can still be sent."""

    def __init__(self, record: InstanceRecord, number: int, reason: Exception) -> None:
        super().__init__(f"frame {number} of instance {record.sop_uid}: {reason}")
        self.record = record
        self.number = number
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One instance: all its attributes merged from the image-set levels, and its frames."""

    image_set_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    attributes: dict[str, Any]
    vrs: dict[str, str]
    transfer_syntax: str
    frame_ids: tuple[str, ...]
    #: The image-set version the attributes are from (None: not known, e.g. a layout that
    #: keeps no versions); an instance's data never changes within one version.
    version: int | None = None

    @property
    def key(self) -> InstanceKey:
        return self.study_uid, self.series_uid, self.sop_uid


@dataclass(frozen=True, slots=True)
class Plan:
    """The instances a request names, from the index: (image set id, Series Instance UID,
    SOP Instance UID) in display order, and the indexed version of each image set (the index
    follows the store; a version names an immutable metadata document)."""

    uids: tuple[str, str | None, str | None]
    rows: list[tuple[str, str, str]]
    versions: dict[str, int | None]


def describe(study_uid: str, series_uid: str | None, sop_uid: str | None) -> str:
    """What was not found, for NotFound messages."""
    if sop_uid is not None:
        return f"instance {sop_uid} not found in series {series_uid} of study {study_uid}"
    if series_uid is not None:
        return f"series {series_uid} not found in study {study_uid}"
    return f"study {study_uid} not found"
