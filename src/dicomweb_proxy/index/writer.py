"""Write AHI image-set metadata documents (SchemaVersion 1.1) into the SQL index.

Both functions run inside the caller's transaction (``database.begin_write``) and only write
rows that differ, so re-indexing an unchanged document writes nothing. A SOP instance belongs to
the first image set that indexed it: when several image sets hold one series, the first stays
primary, the others get ``conflict`` rows and keep only the instances nobody else holds.
Concurrent writers indexing the same SOP instances may fail with IntegrityError: retry.
Which attribute feeds which column, and how, is ``dicom/image_set_rows.py``'s; this module adds
the search columns and writes the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

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

from ..dicom.image_set_rows import ImageSetRows, InstanceRow
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

DUPLICATE_SERIES = "DUPLICATE_SERIES"
"""conflict.conflict_type of an image set holding a series another image set holds."""

_CHUNK = 500  # bound parameters per IN (...) list


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
    document = ImageSetRows.parse(metadata)
    _prepare(document)
    # Writers of one study take turns (the row lock lasts until commit), so the counts each
    # recomputes include the rows the others wrote. A new study is locked by its insert.
    _lock(connection, study, study.c.studyinstanceuid == document.study_uid)
    indexed_version = _claim_image_set(
        connection, {"imagesetid": image_set_id, "datastoreid": datastore_id}
    )
    if indexed_version > version:
        return None
    issuer_key = _fit(issuer, {"issuerofpatientid": document.issuer_id or DEFAULT_ISSUER})
    issuer_pkey = _upsert(connection, issuer, issuer_key, {})[0]
    patient_key = _fit(patient, {"patientid": document.patient_id or NO_PATIENT_ID})
    patient_pkey, _, changed = _upsert(
        connection, patient, {**patient_key, "issuer_pkey": issuer_pkey}, document.patient
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


def _prepare(rows: ImageSetRows) -> None:
    """Add the ``*_norm`` search columns (folded from the full names) and fit every row to its
    table."""
    rows.patient["patientname_norm"] = normalize_person_name(rows.patient["patientname"])
    rows.study["referringphysicianname_norm"] = normalize_person_name(
        rows.study["referringphysicianname"]
    )
    _fit(patient, rows.patient)
    _fit(study, rows.study)
    for one in rows.series:
        _fit(series, one.row)
        for each in one.instances:
            _fit(instance, each.row)


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
    connection: Connection, document: ImageSetRows, existing: Mapping[str, Row]
) -> dict[str, InstanceRow]:
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
    held: Mapping[str, InstanceRow],
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
    connection: Connection, imageset_pkey: int, held: Mapping[str, InstanceRow]
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
