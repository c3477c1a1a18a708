"""SearchImageSets over a local store: AHI's filters, sort order and keyset paging.

Supported as AHI documents them: up to two filters, EQUAL on DICOMPatientId,
DICOMAccessionNumber, DICOMStudyId, DICOMStudyInstanceUID, DICOMSeriesInstanceUID and isPrimary;
EQUAL or BETWEEN on createdAt, updatedAt and DICOMStudyDateAndTime; sort by updatedAt (the
default, newest first), createdAt or DICOMStudyDateAndTime. Every image set is primary here (the
local store keeps one image set per series).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from dicomweb_proxy.dicom.image_set import iter_instances
from dicomweb_proxy.stores.base import ImageSetNotFound, ImageSetSummary
from dicomweb_proxy.stores.local import LocalStore

MAX_RESULTS = 50
#: DICOMTags members of a search result and the attribute each comes from.
SUMMARY_TAGS = {
    "DICOMPatientId": "PatientID",
    "DICOMPatientName": "PatientName",
    "DICOMPatientBirthDate": "PatientBirthDate",
    "DICOMPatientSex": "PatientSex",
    "DICOMStudyInstanceUID": "StudyInstanceUID",
    "DICOMStudyId": "StudyID",
    "DICOMStudyDescription": "StudyDescription",
    "DICOMNumberOfStudyRelatedSeries": "NumberOfStudyRelatedSeries",
    "DICOMNumberOfStudyRelatedInstances": "NumberOfStudyRelatedInstances",
    "DICOMAccessionNumber": "AccessionNumber",
    "DICOMSeriesInstanceUID": "SeriesInstanceUID",
    "DICOMSeriesModality": "Modality",
    "DICOMSeriesBodyPart": "BodyPartExamined",
    "DICOMSeriesNumber": "SeriesNumber",
    "DICOMStudyDate": "StudyDate",
    "DICOMStudyTime": "StudyTime",
}
_INTEGER_TAGS = frozenset(
    {"DICOMNumberOfStudyRelatedSeries", "DICOMNumberOfStudyRelatedInstances", "DICOMSeriesNumber"}
)
_EQUAL_ONLY = frozenset(
    {
        "DICOMPatientId",
        "DICOMAccessionNumber",
        "DICOMStudyId",
        "DICOMStudyInstanceUID",
        "DICOMSeriesInstanceUID",
        "isPrimary",
    }
)
_RANGES = frozenset({"createdAt", "updatedAt", "DICOMStudyDateAndTime"})
_SORT_FIELDS = frozenset({"updatedAt", "createdAt", "DICOMStudyDateAndTime"})


class SearchError(ValueError):
    """The request is not one AHI accepts (answered as ValidationException)."""


@dataclass(frozen=True)
class Entry:
    """One image set as search sees it: its summary and its DICOMTags."""

    summary: ImageSetSummary
    tags: dict[str, Any]

    def value(self, field: str) -> Any:
        if field == "createdAt":
            return self.summary.created_at.timestamp()
        if field == "updatedAt":
            return self.summary.updated_at.timestamp()
        if field == "DICOMStudyDateAndTime":
            return _study_date_time(
                self.tags.get("DICOMStudyDate"), self.tags.get("DICOMStudyTime")
            )
        if field == "isPrimary":
            return True
        return self.tags.get(field)

    def to_json(self) -> dict[str, Any]:
        return {
            "imageSetId": self.summary.image_set_id,
            "version": self.summary.version,
            "createdAt": self.summary.created_at.timestamp(),
            "updatedAt": self.summary.updated_at.timestamp(),
            "isPrimary": True,
            "DICOMTags": self.tags,
        }


class Catalog:
    """The image sets of one store with their DICOMTags, read once per image-set version."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._tags: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def entries(self) -> list[Entry]:
        entries = []
        for summary in self.store.list_image_sets():
            key = (summary.image_set_id, summary.version)
            with self._lock:
                tags = self._tags.get(key)
            if tags is None:
                try:
                    tags = dicom_tags(self.store.get_image_set_metadata(summary.image_set_id))
                except (ImageSetNotFound, FileNotFoundError):
                    continue  # deleted meanwhile
                with self._lock:
                    self._tags[key] = tags
            entries.append(Entry(summary, tags))
        return entries


def dicom_tags(metadata: dict[str, Any]) -> dict[str, Any]:
    """The DICOMTags of an image set, from its first instance with its levels merged."""
    first = next(iter_instances(metadata), None)
    attributes = first.attributes if first else {}
    tags = {}
    for member, keyword in SUMMARY_TAGS.items():
        value = attributes.get(keyword)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            continue
        if member in _INTEGER_TAGS:
            try:
                value = int(str(value).strip())
            except ValueError:
                continue
        tags[member] = value if isinstance(value, int) else str(value)
    return tags


def search(
    entries: Iterable[Entry],
    criteria: dict[str, Any],
    *,
    max_results: int = MAX_RESULTS,
    next_token: str | None = None,
) -> dict[str, Any]:
    """The SearchImageSets answer for *criteria* (the request body)."""
    if not 1 <= max_results <= MAX_RESULTS:
        raise SearchError(f"maxResults must be between 1 and {MAX_RESULTS}")
    matches = [_matcher(item) for item in criteria.get("filters") or []]
    if len(matches) > 2:
        raise SearchError("at most 2 filters")
    sort = criteria.get("sort") or {"sortField": "updatedAt", "sortOrder": "DESC"}
    field, descending = sort.get("sortField"), sort.get("sortOrder") == "DESC"
    if field not in _SORT_FIELDS or sort.get("sortOrder") not in ("ASC", "DESC"):
        raise SearchError("sort needs sortField updatedAt|createdAt|DICOMStudyDateAndTime")

    def key(entry: Entry) -> list[Any]:
        return [entry.value(field), entry.summary.image_set_id]

    found = sorted(
        (entry for entry in entries if all(match(entry) for match in matches)),
        key=key,
        reverse=descending,
    )
    if next_token:
        after = _decode_token(next_token, field)
        found = [e for e in found if (key(e) < after if descending else key(e) > after)]
    page = found[:max_results]
    answer: dict[str, Any] = {
        "imageSetsMetadataSummaries": [entry.to_json() for entry in page],
        "sort": {"sortField": field, "sortOrder": "DESC" if descending else "ASC"},
    }
    if len(found) > max_results:
        answer["nextToken"] = _encode_token(field, key(page[-1]))
    return answer


def _matcher(search_filter: dict[str, Any]) -> Callable[[Entry], bool]:
    operator, values = search_filter.get("operator"), search_filter.get("values") or []
    if not all(isinstance(value, dict) and len(value) == 1 for value in values):
        raise SearchError("each filter value names exactly one attribute")
    fields = {next(iter(value)) for value in values}
    if len(fields) != 1:
        raise SearchError("the values of one filter must name the same attribute")
    field = fields.pop()
    bounds = [_filter_value(field, value[field]) for value in values]
    if operator == "EQUAL" and len(bounds) == 1 and field in _EQUAL_ONLY | _RANGES:
        return lambda entry: entry.value(field) == bounds[0]
    if operator == "BETWEEN" and len(bounds) == 2 and field in _RANGES:
        low, high = bounds
        return lambda entry: low <= entry.value(field) <= high
    raise SearchError(f"{operator} with {len(bounds)} value(s) is not supported for {field}")


def _filter_value(field: str, value: Any) -> Any:
    if field == "DICOMStudyDateAndTime":
        return _study_date_time(value.get("DICOMStudyDate"), value.get("DICOMStudyTime"))
    if field in ("createdAt", "updatedAt"):
        return float(value)
    return value


def _study_date_time(date: str | None, time: str | None) -> str:
    """Comparable text: date and time padded to seconds; empty without a date."""
    return f"{date}{(time or '').ljust(6, '0')}" if date else ""


def _encode_token(field: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([field, key])).decode()


def _decode_token(token: str, field: str) -> list[Any]:
    try:
        token_field, key = orjson.loads(base64.urlsafe_b64decode(token))
    except (ValueError, TypeError):
        raise SearchError("nextToken is not one this service issued") from None
    if token_field != field:
        raise SearchError("nextToken belongs to a search with another sort")
    return key
