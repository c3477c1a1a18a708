"""A database laid out and filled as the companion AHI "metadata-index" project (RDBMS mode) does.

The tables follow its published schema (lambda/db_init/schema/tables: issuer, patient, study,
series, imageset, instance, frame, conflict, with its column types: ``seriesnumber`` is text,
names are 64 characters, the database's own collation); :func:`index_like_metadata_index` fills
them from image-set metadata the way its AHItoRDBMS function does: each table's columns from the
attributes of one level's block whose keyword, lower-cased, is the column name, every column
written (NULL when the block lacks the attribute); integers by ``int()``, dates by ``%Y%m%d`` and
times by ``%H%M%S`` (anything else, such as fractional seconds, becomes NULL), other values by
``str()``, so an attribute present but empty is the text 'None'; a missing Patient ID is 'NO_PID'
and a missing issuer 'DEFAULT_DOMAIN'; the image set of each series recorded once (its series
never updated), a second image set of a series in ``conflict``; instances point at the last image
set that held them; counts recomputed. Every statement commits on its own, as there: a value
longer than its column (strict SQL mode) fails the image set at that row, leaving what was
written before it (a study without its series).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from dicomweb_proxy.stores.base import ImageSetStore

metadata = MetaData()
NO_ISSUER = "DEFAULT_DOMAIN"
_MISSING = object()


def _pkey(table: str) -> Column:
    return Column(f"{table}_pkey", BigInteger, primary_key=True, autoincrement=True)


issuer = Table(
    "issuer",
    metadata,
    _pkey("issuer"),
    Column("issuerofpatientid", String(64), nullable=False, unique=True),
    Column("description", String(1024)),
)
patient = Table(
    "patient",
    metadata,
    _pkey("patient"),
    Column("issuer_pkey", BigInteger, ForeignKey("issuer.issuer_pkey"), nullable=False),
    Column("patientid", String(64)),
    Column("patientname", String(64), index=True),
    Column("patientbirthdate", Date),
    Column("patientsex", String(16)),
    Column("patientcomments", Text),
    UniqueConstraint("patientid", "issuer_pkey"),
)
study = Table(
    "study",
    metadata,
    _pkey("study"),
    Column("patient_pkey", BigInteger, ForeignKey("patient.patient_pkey"), nullable=False),
    Column("studyinstanceuid", String(64), nullable=False, unique=True),
    Column("accessionnumber", String(16), index=True),
    Column("studyid", String(16)),
    Column("studydate", Date),
    Column("studytime", Time),
    Column("studydescription", String(64)),
    Column("referringphysicianname", String(64)),
    Column("numberofstudyrelatedseries", Integer),
    Column("numberofstudyrelatedinstances", Integer),
)
series = Table(
    "series",
    metadata,
    _pkey("series"),
    Column("study_pkey", BigInteger, ForeignKey("study.study_pkey"), nullable=False, index=True),
    Column("seriesinstanceuid", String(64), nullable=False, unique=True),
    Column("modality", String(16)),
    Column("seriesnumber", String(12)),
    Column("seriesdescription", String(64)),
    Column("institutionname", String(64)),
    Column("bodypartexamined", String(16)),
    Column("stationname", String(16)),
    Column("manufacturer", String(64)),
    Column("protocolname", String(64)),
    Column("laterality", String(16)),
    Column("numberofseriesrelatedinstances", Integer),
)
imageset = Table(
    "imageset",
    metadata,
    _pkey("imageset"),
    Column("series_pkey", BigInteger, nullable=False),
    Column("imagesetid", String(32), nullable=False, index=True),
    Column("datastoreid", String(32), nullable=False, index=True),
    UniqueConstraint("imagesetid", "datastoreid"),
)
instance = Table(
    "instance",
    metadata,
    _pkey("instance"),
    Column("series_pkey", BigInteger, ForeignKey("series.series_pkey"), nullable=False),
    Column("sopinstanceuid", String(64), nullable=False, unique=True),
    Column("sopclassuid", String(64), nullable=False),
    Column("imagetype", String(64)),
    Column("instancenumber", Integer),
    Column("acquisitiondate", Date),
    Column("acquisitiontime", Time),
    Column("contentdate", Date),
    Column("contenttime", Time),
    Column("photometricinterpretation", String(16)),
    Column("numberofframes", Integer),
    Column("rows", Integer),
    Column("columns", Integer),
    Column("bitsallocated", Integer),
    Column("bitsstored", Integer),
    Column("highbit", Integer),
    Column("rescaleslope", String(16)),
    Column("rescaleintercept", String(16)),
    Column("pixelrepresentation", Integer),
    Column("windowcenter", String(16)),
    Column("windowwidth", String(16)),
    Column("observationtime", DateTime),
    Column("contentdescription", String(64)),
    Column("imageset_pkey", BigInteger, nullable=False),
)
frame = Table(
    "frame",
    metadata,
    _pkey("frame"),
    Column("instance_pkey", BigInteger, ForeignKey("instance.instance_pkey"), nullable=False),
    Column("imageset_pkey", BigInteger, nullable=False, index=True),
    Column("framenumber", Integer, nullable=False),
    Column("frameid", String(32), nullable=False, unique=True),
)
conflict = Table(
    "conflict",
    metadata,
    _pkey("conflict"),
    Column("series_pkey", BigInteger, nullable=False),
    Column("imageset_pkey", BigInteger, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("conflict_type", String(32)),
)


def index_like_metadata_index(engine: Engine, store: ImageSetStore) -> list[str]:
    """Create the tables and index every image set of *store*; the ids of those that failed."""
    metadata.create_all(engine)
    failed = []
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        for summary in store.list_image_sets():
            document = store.get_image_set_metadata(summary.image_set_id)
            try:
                _index_image_set(connection, document)
            except DBAPIError:
                failed.append(summary.image_set_id)
    return failed


def _index_image_set(connection: Connection, document: dict[str, Any]) -> None:
    patient_tags = document["Patient"]["DICOM"]
    issuer_pkey = _upsert(
        connection,
        issuer,
        {
            "issuerofpatientid": _values(issuer, patient_tags)["issuerofpatientid"]
            or "DEFAULT_DOMAIN"
        },
        {},
    )
    patient_values = _values(patient, patient_tags)
    if patient_values["patientid"] is None:
        patient_values["patientid"] = "NO_PID"
    patient_pkey = _upsert(
        connection,
        patient,
        {"patientid": patient_values.pop("patientid"), "issuer_pkey": issuer_pkey},
        patient_values,
    )
    study_tags = document["Study"]["DICOM"]
    study_pkey = _upsert(
        connection,
        study,
        {"studyinstanceuid": study_tags["StudyInstanceUID"]},
        {**_values(study, study_tags), "patient_pkey": patient_pkey},
    )
    for series_uid, series_block in document["Study"]["Series"].items():
        series_pkey = _upsert(
            connection,
            series,
            {"seriesinstanceuid": series_uid},
            {**_values(series, series_block["DICOM"]), "study_pkey": study_pkey},
        )
        imageset_key = {
            "imagesetid": document["ImageSetID"],
            "datastoreid": document["DatastoreID"],
        }
        imageset_pkey = connection.scalar(
            select(imageset.c.imageset_pkey).where(
                *(imageset.c[name] == value for name, value in imageset_key.items())
            )
        ) or _upsert(connection, imageset, imageset_key, {"series_pkey": series_pkey})
        holders = connection.scalars(
            select(imageset.c.imageset_pkey).where(imageset.c.series_pkey == series_pkey)
        ).all()
        if len(holders) > 1:
            recorded = set(
                connection.scalars(
                    select(conflict.c.imageset_pkey).where(conflict.c.series_pkey == series_pkey)
                )
            )
            for holder in holders:
                if holder not in recorded:
                    connection.execute(
                        insert(conflict).values(
                            series_pkey=series_pkey, imageset_pkey=holder, priority=1
                        )
                    )
        for sop_uid, block in series_block["Instances"].items():
            _upsert(
                connection,
                instance,
                {"sopinstanceuid": sop_uid},
                {
                    **_values(instance, block["DICOM"]),
                    "series_pkey": series_pkey,
                    "imageset_pkey": imageset_pkey,
                },
            )
        connection.execute(
            update(series)
            .where(series.c.series_pkey == series_pkey)
            .values(
                numberofseriesrelatedinstances=select(func.count(instance.c.instance_pkey))
                .where(instance.c.series_pkey == series_pkey)
                .scalar_subquery()
            )
        )
    counts = select(
        func.count(series.c.series_pkey), func.sum(series.c.numberofseriesrelatedinstances)
    ).where(series.c.study_pkey == study_pkey)
    number_of_series, number_of_instances = connection.execute(counts).one()
    connection.execute(
        update(study)
        .where(study.c.study_pkey == study_pkey)
        .values(
            numberofstudyrelatedseries=number_of_series,
            numberofstudyrelatedinstances=number_of_instances,
        )
    )


def _upsert(
    connection: Connection, table: Table, key: dict[str, Any], values: dict[str, Any]
) -> int:
    pkey = table.c[f"{table.name}_pkey"]
    values = {name: value for name, value in values.items() if name not in key}
    condition = [table.c[name] == value for name, value in key.items()]
    found = connection.scalar(select(pkey).where(*condition))
    if found is None:
        return connection.execute(insert(table).values(**key, **values)).inserted_primary_key[0]
    if values:
        connection.execute(update(table).where(pkey == found).values(**values))
    return found


def _values(table: Table, tags: dict[str, Any]) -> dict[str, Any]:
    """Every column of the table (but keys) from the block's attribute whose lower-cased keyword
    names it, NULL when there is none."""
    by_column = {keyword.lower(): value for keyword, value in tags.items()}
    return {
        column.name: _converted(column, by_column[column.name])
        if column.name in by_column
        else None
        for column in table.c
        if not column.primary_key and not column.foreign_keys
    }


def _converted(column: Column, value: Any) -> Any:
    if value is _MISSING:
        return None
    try:
        if isinstance(column.type, Integer):
            return int(value)
        if isinstance(column.type, Date):
            return datetime.strptime(str(value), "%Y%m%d").date()
        if isinstance(column.type, Time):
            return datetime.strptime(str(value), "%H%M%S").time()
        if isinstance(column.type, DateTime):
            return None
    except (TypeError, ValueError):
        return None
    return str(value)
