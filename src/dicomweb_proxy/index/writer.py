"""Write AHI image-set metadata documents (SchemaVersion 1.1) into the SQL index.

Both functions run inside the caller's transaction (``database.begin_write``) and only write
rows that differ, so re-indexing an unchanged document writes nothing. A SOP instance belongs to
the first image set that indexed it: when several image sets hold one series, the first stays
primary, the others get ``conflict`` rows and keep only the instances nobody else holds.
Concurrent writers indexing the same SOP instances may fail with IntegrityError: retry.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Row,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError

from ..dicom.dicom_json import decoded_length, to_dicom_json
from ..dicom.image_set import merged_instance_attributes
from ..dicom.transfer_syntax import HTJ2K_LOSSLESS_RPCL
from .schema import (
    DEFAULT_ISSUER,
    NO_PATIENT_ID,
    conflict,
    frame,
    imageset,
    instance,
    issuer,
    normalize_person_name,
    patient,
    series,
    study,
)

"""What AHI stores when an instance has no StoredTransferSyntaxUID."""
DUPLICATE_SERIES = "DUPLICATE_SERIES"
"""conflict.conflict_type of an image set holding a series another image set holds."""

_MAX_INDEXED_BINARY = 64  # bytes; larger binary values stay in the store
_CHUNK = 500  # bound parameters per IN (...) list
_INT32 = 2**31

_DA = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_TM = re.compile(r"([0-9]{2})([0-9]{2})?([0-9]{2})?(?:\.([0-9]{1,6}))?")
_DT = re.compile(
    r"([0-9]{4})([0-9]{2})?([0-9]{2})?([0-9]{2})?([0-9]{2})?([0-9]{2})?"
    r"(?:\.([0-9]{1,6}))?(?:[+-][0-9]{4})?"
)


@dataclass(frozen=True, slots=True)
class IndexedImageSet:
    """What one image set contributes to the index after index_image_set()."""

    study_instance_uid: str
    series_instance_uids: tuple[str, ...]
    instance_count: int  # instances this image set holds (not those another image set holds)
    frame_count: int
    is_primary: bool


def index_image_set(
    connection: Connection,
    *,
    datastore_id: str,
    image_set_id: str,
    version: int,
    metadata: Mapping[str, Any],
) -> IndexedImageSet | None:
    """Upsert everything one image-set metadata document describes, replacing the instances
    and frames the index held for that image set, and recompute the counts it affects.
    Returns None, changing nothing, when the index already holds a newer version of the image
    set (a slower writer must not roll it back). ValueError if the document names no Study
    Instance UID."""
    document = _Document.parse(metadata)
    # Writers of one study take turns (the row lock lasts until commit), so the counts each
    # recomputes include the rows the others wrote. A new study is locked by its insert.
    _lock(connection, study, study.c.studyinstanceuid == document.study_uid)
    indexed_version = _claim_image_set(
        connection, {"imagesetid": image_set_id, "datastoreid": datastore_id}
    )
    if indexed_version > version:
        return None
    issuer_pkey = _upsert(connection, issuer, document.issuer_key, {})[0]
    patient_pkey, _, changed = _upsert(
        connection, patient, {**document.patient_key, "issuer_pkey": issuer_pkey}, document.patient
    )
    study_pkey, old_study, study_changed = _upsert(
        connection,
        study,
        {"studyinstanceuid": document.study_uid},
        {"patient_pkey": patient_pkey, **document.study},
    )
    changed |= study_changed
    patients = {patient_pkey} | ({old_study.patient_pkey} if old_study else set())
    studies = {study_pkey}
    series_pkeys: dict[str, int] = {}
    for one in document.series:
        pkey, old_series, series_changed = _upsert(
            connection,
            series,
            {"seriesinstanceuid": one.uid},
            {"study_pkey": study_pkey, **one.row},
        )
        series_pkeys[one.uid] = pkey
        changed |= series_changed
        if old_series:
            studies.add(old_series.study_pkey)

    key = {"imagesetid": image_set_id, "datastoreid": datastore_id}
    others = _other_holders(connection, list(series_pkeys.values()), key)
    is_primary = not any(other.isprimary for other in others)
    first_series = next(iter(series_pkeys.values()), None)
    imageset_pkey, _, imageset_changed = _upsert(
        connection,
        imageset,
        key,
        {"series_pkey": first_series, "version": version, "isprimary": is_primary},
    )
    changed |= imageset_changed
    changed |= _sync_conflicts(connection, imageset_pkey, [] if is_primary else others)

    existing = {
        row.sopinstanceuid: row
        for row in connection.execute(
            select(instance).where(instance.c.imageset_pkey == imageset_pkey)
        )
    }
    held = _held_instances(connection, document, existing)
    changed |= _write_instances(connection, imageset_pkey, held, series_pkeys, existing)
    frame_count, frames_changed = _sync_frames(connection, imageset_pkey, held)
    stale = [row.instance_pkey for uid, row in existing.items() if uid not in held]
    _delete_in(connection, instance.c.instance_pkey, stale)
    changed |= frames_changed or bool(stale)

    touched = set(series_pkeys.values()) | {row.series_pkey for row in existing.values()}
    _refresh(connection, touched, studies=studies, patients=patients)
    if changed:
        now = _utcnow()
        connection.execute(
            update(imageset).where(imageset.c.imageset_pkey == imageset_pkey).values(updated_at=now)
        )
        connection.execute(
            update(study).where(study.c.study_pkey == study_pkey).values(updated_at=now)
        )
    return IndexedImageSet(
        study_instance_uid=document.study_uid,
        series_instance_uids=tuple(series_pkeys),
        instance_count=len(held),
        frame_count=frame_count,
        is_primary=is_primary,
    )


def remove_image_set(
    connection: Connection, *, datastore_id: str, image_set_id: str
) -> list[tuple[str, str]]:
    """Delete an image set's rows, then the series, studies and patients left empty, and
    recompute counts. If it was primary, the next image set of each of its series is promoted;
    returns those as (datastore id, image set id): re-index them to pick up the instances they
    share with the removed one. Unknown image sets are ignored."""
    row = connection.execute(
        select(imageset).where(
            imageset.c.imagesetid == image_set_id, imageset.c.datastoreid == datastore_id
        )
    ).first()
    if row is None:
        return []
    pkey = row.imageset_pkey
    series_pkeys = set(
        connection.scalars(
            union(
                select(instance.c.series_pkey).where(instance.c.imageset_pkey == pkey),
                select(conflict.c.series_pkey).where(conflict.c.imageset_pkey == pkey),
            )
        )
    )
    if row.series_pkey is not None:
        series_pkeys.add(row.series_pkey)
    studies = set(
        connection.scalars(
            select(series.c.study_pkey).where(series.c.series_pkey.in_(series_pkeys))
        )
    )
    _lock(connection, study, study.c.study_pkey.in_(studies))
    for table in (frame, instance, conflict, imageset):
        connection.execute(delete(table).where(table.c.imageset_pkey == pkey))
    promoted = _promote(connection, series_pkeys) if row.isprimary else []
    _refresh(connection, series_pkeys)
    connection.execute(
        update(study).where(study.c.study_pkey.in_(studies)).values(updated_at=_utcnow())
    )
    return promoted


def parse_date(value: Any) -> date | None:
    """DA 'YYYYMMDD' → date; None when absent or malformed."""
    match = _DA.fullmatch(_text(value) or "")
    if not match:
        return None
    try:
        return date(*map(int, match.groups()))
    except ValueError:
        return None


def parse_time(value: Any) -> time | None:
    """TM 'HH[MM[SS[.ffffff]]]' (colons of old ACR-NEMA times ignored) → time; None if bad."""
    match = _TM.fullmatch((_text(value) or "").replace(":", ""))
    if not match:
        return None
    hour, minute, second, fraction = match.groups()
    try:
        return time(int(hour), int(minute or 0), int(second or 0), _microseconds(fraction))
    except ValueError:
        return None


def parse_datetime(value: Any) -> datetime | None:
    """DT 'YYYY[MM[DD[HH[MM[SS[.ffffff]]]]]][&ZZXX]' → naive datetime in the value's own time
    (the offset is dropped: DA and TM columns carry none either); None if bad."""
    match = _DT.fullmatch(_text(value) or "")
    if not match:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            _microseconds(fraction),
        )
    except ValueError:
        return None


# --- reading the document --------------------------------------------------------------------


def _microseconds(fraction: str | None) -> int:
    return int((fraction or "0").ljust(6, "0"))


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    value = _first(value)
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).replace("\x00", "").strip()
    return text or None


def _joined(value: Any) -> str | None:
    """Every value, backslash-separated as in DICOM."""
    if isinstance(value, list):
        value = "\\".join("" if item is None else str(item) for item in value)
    return _text(value)


def _real(value: Any) -> float | None:
    value = _first(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        try:
            number = float(_text(value) or "")
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _real(value)
    if number is None or not number.is_integer() or not -_INT32 <= number < _INT32:
        return None
    return int(number)


_Fields = tuple[tuple[str, str, Callable[[Any], Any]], ...]

_PATIENT: _Fields = (
    ("patientname", "PatientName", _text),
    ("patientbirthdate", "PatientBirthDate", parse_date),
    ("patientsex", "PatientSex", _text),
    ("patientcomments", "PatientComments", _text),
)
_STUDY: _Fields = (
    ("accessionnumber", "AccessionNumber", _text),
    ("studyid", "StudyID", _text),
    ("studydate", "StudyDate", parse_date),
    ("studytime", "StudyTime", parse_time),
    ("studydescription", "StudyDescription", _text),
    ("referringphysicianname", "ReferringPhysicianName", _text),
)
_SERIES: _Fields = (
    ("modality", "Modality", _text),
    ("seriesnumber", "SeriesNumber", _integer),
    ("seriesdescription", "SeriesDescription", _text),
    ("institutionname", "InstitutionName", _text),
    ("bodypartexamined", "BodyPartExamined", _text),
    ("stationname", "StationName", _text),
    ("manufacturer", "Manufacturer", _text),
    ("protocolname", "ProtocolName", _text),
    ("laterality", "Laterality", _text),
    ("seriesdate", "SeriesDate", parse_date),
    ("seriestime", "SeriesTime", parse_time),
    ("performedprocedurestepstartdate", "PerformedProcedureStepStartDate", parse_date),
    ("performedprocedurestepstarttime", "PerformedProcedureStepStartTime", parse_time),
)
_INSTANCE: _Fields = (
    ("sopclassuid", "SOPClassUID", _text),
    ("imagetype", "ImageType", _joined),
    ("instancenumber", "InstanceNumber", _integer),
    ("acquisitiondate", "AcquisitionDate", parse_date),
    ("acquisitiontime", "AcquisitionTime", parse_time),
    ("contentdate", "ContentDate", parse_date),
    ("contenttime", "ContentTime", parse_time),
    ("photometricinterpretation", "PhotometricInterpretation", _text),
    ("numberofframes", "NumberOfFrames", _integer),
    ("rows", "Rows", _integer),
    ("columns", "Columns", _integer),
    ("bitsallocated", "BitsAllocated", _integer),
    ("bitsstored", "BitsStored", _integer),
    ("highbit", "HighBit", _integer),
    ("rescaleslope", "RescaleSlope", _real),
    ("rescaleintercept", "RescaleIntercept", _real),
    ("pixelrepresentation", "PixelRepresentation", _integer),
    ("windowcenter", "WindowCenter", _joined),
    ("windowwidth", "WindowWidth", _joined),
    ("observationtime", "ObservationDateTime", parse_datetime),
    ("contentdescription", "ContentDescription", _text),
)


@cache
def _lengths(table: Table) -> dict[str, int]:
    return {
        column.name: column.type.length
        for column in table.c
        if isinstance(column.type, String) and column.type.length
    }


def _fit(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Cut strings to their column's size: overlong values are malformed DICOM, which
    PostgreSQL and strict MySQL would reject. Keys (UIDs) never reach here."""
    for name, limit in _lengths(table).items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name] = value[:limit]
    return row


def _columns(fields: _Fields, attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: parse(attributes.get(keyword)) for name, keyword, parse in fields}


def _attributes_json(attributes: Mapping[str, Any], vrs: Mapping[str, str] | None) -> str:
    return orjson.dumps(_without_bulk_data(to_dicom_json(attributes, vrs))).decode()


def _without_bulk_data(dataset: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for tag, element in dataset.items():
        inline = element.get("InlineBinary")
        if inline is not None and decoded_length(inline) > _MAX_INDEXED_BINARY:
            continue
        if element["vr"] == "SQ" and "Value" in element:
            element = {"vr": "SQ", "Value": [_without_bulk_data(item) for item in element["Value"]]}
        out[tag] = element
    return out


@dataclass(slots=True)
class _Instance:
    uid: str
    series_uid: str
    row: dict[str, Any]
    frame_ids: list[str]


@dataclass(slots=True)
class _Series:
    uid: str
    row: dict[str, Any]
    instances: list[_Instance]
    reference: Mapping[str, Any]  # the first instance's merged attributes


@dataclass(slots=True)
class _Document:
    issuer_key: dict[str, Any]
    patient_key: dict[str, Any]
    patient: dict[str, Any]
    study_uid: str
    study: dict[str, Any]
    series: list[_Series]

    @classmethod
    def parse(cls, metadata: Mapping[str, Any]) -> _Document:
        """Column values of every level. Patient, study and series columns come from the first
        instance's merged attributes, since a level only holds what all its instances share."""
        patient_level = metadata.get("Patient") or {}
        study_level = metadata.get("Study") or {}
        upper = {**(patient_level.get("DICOM") or {}), **(study_level.get("DICOM") or {})}
        upper_vrs = {**(patient_level.get("DICOMVRs") or {}), **(study_level.get("DICOMVRs") or {})}
        all_series = [
            _parse_series(metadata, uid, level, upper)
            for uid, level in (study_level.get("Series") or {}).items()
        ]
        reference = all_series[0].reference if all_series else upper
        study_uid = _text(reference.get("StudyInstanceUID"))
        if not study_uid:
            raise ValueError("image set metadata has no StudyInstanceUID")
        patient_row = _columns(_PATIENT, reference)
        patient_row["patientname_norm"] = normalize_person_name(patient_row["patientname"])
        patient_row["attributes"] = _attributes_json(
            patient_level.get("DICOM") or {}, patient_level.get("DICOMVRs")
        )
        study_row = _columns(_STUDY, reference)
        study_row["referringphysicianname_norm"] = normalize_person_name(
            study_row["referringphysicianname"]
        )
        study_row["attributes"] = _attributes_json(upper, upper_vrs)
        issuer_id = _text(reference.get("IssuerOfPatientID")) or DEFAULT_ISSUER
        patient_id = _text(reference.get("PatientID")) or NO_PATIENT_ID
        return cls(
            issuer_key=_fit(issuer, {"issuerofpatientid": issuer_id}),
            patient_key=_fit(patient, {"patientid": patient_id}),
            patient=_fit(patient, patient_row),
            study_uid=study_uid,
            study=_fit(study, study_row),
            series=all_series,
        )


def _parse_series(
    metadata: Mapping[str, Any], uid: str, level: Mapping[str, Any], upper: Mapping[str, Any]
) -> _Series:
    instances = []
    reference: Mapping[str, Any] | None = None
    for sop_uid, document in (level.get("Instances") or {}).items():
        attributes, _ = merged_instance_attributes(metadata, uid, sop_uid)
        if reference is None:
            reference = attributes
        row = _columns(_INSTANCE, attributes)
        row["storedtransfersyntaxuid"] = (
            _text(document.get("StoredTransferSyntaxUID"))
            or HTJ2K_LOSSLESS_RPCL  # AHI: absent means HTJ2K RPCL
        )
        row["attributes"] = _attributes_json(document.get("DICOM") or {}, document.get("DICOMVRs"))
        frame_ids = [
            str(one["ID"]) for one in document.get("ImageFrames") or () if one and one.get("ID")
        ]
        instances.append(_Instance(sop_uid, uid, _fit(instance, row), frame_ids))
    if reference is None:
        reference = {**upper, **(level.get("DICOM") or {})}
    row = _columns(_SERIES, reference)
    row["attributes"] = _attributes_json(level.get("DICOM") or {}, level.get("DICOMVRs"))
    return _Series(uid, _fit(series, row), instances, reference)


# --- writing rows ------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _pkey_column(table: Table) -> Column:
    return table.c[f"{table.name}_pkey"]


def _upsert(
    connection: Connection, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> tuple[int, Row | None, bool]:
    """Insert or update the row with the unique ``key``: (its pkey, the row as it was or None
    if inserted, whether anything was written)."""
    pkey = _pkey_column(table)
    where = [table.c[name] == value for name, value in key.items()]
    row = connection.execute(select(table).where(*where)).first()
    if row is None:
        try:
            with connection.begin_nested():
                result = connection.execute(insert(table).values({**key, **values}))
            return result.inserted_primary_key[0], None, True
        except IntegrityError:
            # A concurrent writer inserted it first; a locking read sees its committed row.
            row = connection.execute(select(table).where(*where).with_for_update()).one()
    current = row._mapping
    changes = {name: value for name, value in values.items() if current[name] != value}
    if changes:
        connection.execute(update(table).where(pkey == current[pkey.name]).values(changes))
    return current[pkey.name], row, bool(changes)


def _claim_image_set(connection: Connection, key: Mapping[str, Any]) -> int:
    """Lock the image set's row until commit and return the version it records (0 if new).

    A missing row is inserted as a placeholder first, so two writers of a new image set also
    take turns: the second waits on the first's insert and then reads the version it wrote.
    """
    where = [imageset.c[name] == value for name, value in key.items()]
    locked = select(imageset.c.version).where(*where).with_for_update()
    version = connection.scalar(locked)
    if version is not None:
        return version
    try:
        with connection.begin_nested():
            connection.execute(insert(imageset).values({**key, "version": 0, "isprimary": False}))
        return 0
    except IntegrityError:
        return connection.scalar(locked)


def _lock(connection: Connection, table: Table, condition: ColumnElement[bool]) -> None:
    connection.execute(select(_pkey_column(table)).where(condition).with_for_update()).all()


def _update_changed(
    connection: Connection, table: Table, pkey: int, values: Mapping[str, Any]
) -> None:
    pkey_column = _pkey_column(table)
    current = (
        connection.execute(select(*(table.c[name] for name in values)).where(pkey_column == pkey))
        .one()
        ._mapping
    )
    changes = {name: value for name, value in values.items() if current[name] != value}
    if changes:
        connection.execute(update(table).where(pkey_column == pkey).values(changes))


def _delete_in(connection: Connection, column: Column, values: Sequence[Any]) -> None:
    for start in range(0, len(values), _CHUNK):
        connection.execute(delete(column.table).where(column.in_(values[start : start + _CHUNK])))


def _other_holders(
    connection: Connection, series_pkeys: list[int], key: Mapping[str, str]
) -> list[Row]:
    """(series_pkey, imageset_pkey, isprimary) of the other image sets holding these series."""
    if not series_pkeys:
        return []
    holders = union(
        select(instance.c.series_pkey, instance.c.imageset_pkey).where(
            instance.c.series_pkey.in_(series_pkeys)
        ),
        select(imageset.c.series_pkey, imageset.c.imageset_pkey).where(
            imageset.c.series_pkey.in_(series_pkeys)
        ),
    ).subquery()
    query = (
        select(holders.c.series_pkey, imageset.c.imageset_pkey, imageset.c.isprimary)
        .join(imageset, imageset.c.imageset_pkey == holders.c.imageset_pkey)
        .where(
            (imageset.c.imagesetid != key["imagesetid"])
            | (imageset.c.datastoreid != key["datastoreid"])
        )
    )
    return list(connection.execute(query))


def _sync_conflicts(connection: Connection, imageset_pkey: int, others: list[Row]) -> bool:
    """One conflict row per series this non-primary image set shares; its priority is the
    number of image sets that held the series before."""
    wanted = Counter(other.series_pkey for other in others)
    existing = set(
        connection.scalars(
            select(conflict.c.series_pkey).where(conflict.c.imageset_pkey == imageset_pkey)
        )
    )
    stale = existing - wanted.keys()
    if stale:
        connection.execute(
            delete(conflict).where(
                conflict.c.imageset_pkey == imageset_pkey,
                conflict.c.series_pkey.in_(sorted(stale)),
            )
        )
    new = [
        {
            "series_pkey": series_pkey,
            "imageset_pkey": imageset_pkey,
            "priority": priority,
            "conflict_type": DUPLICATE_SERIES,
        }
        for series_pkey, priority in wanted.items()
        if series_pkey not in existing
    ]
    if new:
        connection.execute(insert(conflict), new)
    return bool(stale or new)


def _promote(connection: Connection, series_pkeys: set[int]) -> list[tuple[str, str]]:
    """Make the earliest conflicting image set of each series its primary."""
    promoted = []
    for series_pkey in sorted(series_pkeys):
        successor = connection.execute(
            select(imageset.c.imageset_pkey, imageset.c.datastoreid, imageset.c.imagesetid)
            .join(conflict, conflict.c.imageset_pkey == imageset.c.imageset_pkey)
            .where(conflict.c.series_pkey == series_pkey)
            .order_by(conflict.c.priority, conflict.c.conflict_pkey)
            .limit(1)
        ).first()
        if successor is None:
            continue
        connection.execute(
            update(imageset)
            .where(imageset.c.imageset_pkey == successor.imageset_pkey)
            .values(isprimary=True)
        )
        connection.execute(
            delete(conflict).where(conflict.c.imageset_pkey == successor.imageset_pkey)
        )
        promoted.append((successor.datastoreid, successor.imagesetid))
    return promoted


def _held_instances(
    connection: Connection, document: _Document, existing: Mapping[str, Row]
) -> dict[str, _Instance]:
    """The document's instances by SOP Instance UID, less those another image set holds."""
    wanted = {one.uid: one for each in document.series for one in each.instances}
    new = [uid for uid in wanted if uid not in existing]
    taken: set[str] = set()
    for start in range(0, len(new), _CHUNK):
        taken.update(
            connection.scalars(
                select(instance.c.sopinstanceuid).where(
                    instance.c.sopinstanceuid.in_(new[start : start + _CHUNK])
                )
            )
        )
    return {uid: one for uid, one in wanted.items() if uid not in taken}


def _write_instances(
    connection: Connection,
    imageset_pkey: int,
    held: Mapping[str, _Instance],
    series_pkeys: Mapping[str, int],
    existing: Mapping[str, Row],
) -> bool:
    inserts, updates = [], []
    for uid, one in held.items():
        row = {
            "series_pkey": series_pkeys[one.series_uid],
            "imageset_pkey": imageset_pkey,
            "sopinstanceuid": uid,
            **one.row,
        }
        current = existing.get(uid)
        if current is None:
            inserts.append(row)
        elif any(current._mapping[name] != value for name, value in row.items()):
            updates.append({"b_pkey": current.instance_pkey, **row})
    if inserts:
        connection.execute(insert(instance), inserts)
    if updates:
        connection.execute(
            update(instance).where(instance.c.instance_pkey == bindparam("b_pkey")), updates
        )
    return bool(inserts or updates)


def _sync_frames(
    connection: Connection, imageset_pkey: int, held: Mapping[str, _Instance]
) -> tuple[int, bool]:
    """Make the image set's frame rows match its held instances: (frame count, changed)."""
    instance_pkeys = dict(
        connection.execute(
            select(instance.c.sopinstanceuid, instance.c.instance_pkey).where(
                instance.c.imageset_pkey == imageset_pkey
            )
        ).all()
    )
    wanted: dict[str, tuple[int, int]] = {}
    for uid, one in held.items():
        for number, frame_id in enumerate(one.frame_ids, start=1):
            wanted.setdefault(frame_id, (instance_pkeys[uid], number))
    existing = {
        row.frameid: row
        for row in connection.execute(
            select(
                frame.c.frame_pkey, frame.c.frameid, frame.c.instance_pkey, frame.c.framenumber
            ).where(frame.c.imageset_pkey == imageset_pkey)
        )
    }
    stale = [row.frame_pkey for frame_id, row in existing.items() if frame_id not in wanted]
    moved = [
        {"b_pkey": row.frame_pkey, "instance_pkey": instance_pkey, "framenumber": number}
        for frame_id, (instance_pkey, number) in wanted.items()
        if (row := existing.get(frame_id)) is not None
        and (row.instance_pkey, row.framenumber) != (instance_pkey, number)
    ]
    new = [
        {
            "instance_pkey": instance_pkey,
            "imageset_pkey": imageset_pkey,
            "framenumber": number,
            "frameid": frame_id,
        }
        for frame_id, (instance_pkey, number) in wanted.items()
        if frame_id not in existing
    ]
    _delete_in(connection, frame.c.frame_pkey, stale)
    if moved:
        connection.execute(update(frame).where(frame.c.frame_pkey == bindparam("b_pkey")), moved)
    if new:
        connection.execute(insert(frame), new)
    return len(wanted), bool(stale or moved or new)


def _refresh(
    connection: Connection,
    series_pkeys: set[int],
    *,
    studies: AbstractSet[int] = frozenset(),
    patients: AbstractSet[int] = frozenset(),
) -> None:
    """Recompute counts and delete the series, studies and patients nothing holds any more.
    The studies and patients of ``series_pkeys`` are included: pass the former parents of rows
    that moved to another parent."""
    study_pkeys = set(studies) | set(
        connection.scalars(
            select(series.c.study_pkey).where(series.c.series_pkey.in_(series_pkeys))
        )
    )
    patient_pkeys = set(patients) | set(
        connection.scalars(select(study.c.patient_pkey).where(study.c.study_pkey.in_(study_pkeys)))
    )
    for pkey in series_pkeys:
        count = connection.scalar(
            select(func.count()).select_from(instance).where(instance.c.series_pkey == pkey)
        )
        referenced = connection.scalar(
            select(func.count()).select_from(imageset).where(imageset.c.series_pkey == pkey)
        )
        if count or referenced:
            _update_changed(connection, series, pkey, {"numberofseriesrelatedinstances": count})
        else:
            connection.execute(delete(conflict).where(conflict.c.series_pkey == pkey))
            connection.execute(delete(series).where(series.c.series_pkey == pkey))
    for pkey in study_pkeys:
        rows = connection.execute(
            select(series.c.modality, series.c.numberofseriesrelatedinstances).where(
                series.c.study_pkey == pkey
            )
        ).all()
        if not rows:
            connection.execute(delete(study).where(study.c.study_pkey == pkey))
            continue
        sop_classes = connection.scalars(
            select(instance.c.sopclassuid)
            .join(series, series.c.series_pkey == instance.c.series_pkey)
            .where(series.c.study_pkey == pkey)
            .distinct()
        )
        values = {
            "numberofstudyrelatedseries": len(rows),
            "numberofstudyrelatedinstances": sum(
                row.numberofseriesrelatedinstances for row in rows
            ),
            "modalitiesinstudy": _distinct_joined(row.modality for row in rows),
            "sopclassesinstudy": _distinct_joined(sop_classes),
        }
        _update_changed(connection, study, pkey, _fit(study, values))
    for pkey in patient_pkeys:
        if (
            connection.scalar(
                select(study.c.study_pkey).where(study.c.patient_pkey == pkey).limit(1)
            )
            is None
        ):
            connection.execute(delete(patient).where(patient.c.patient_pkey == pkey))


def _distinct_joined(values: Iterable[str | None]) -> str | None:
    return "\\".join(sorted({value for value in values if value})) or None
