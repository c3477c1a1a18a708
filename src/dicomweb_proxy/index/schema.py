"""Tables of the SQL metadata index (SQLAlchemy Core).

Table and column names follow the companion AHI "metadata-index" layout so existing SQL against it
keeps working; added columns serve full DICOMweb search. The migrations in ``migrations/versions``
create exactly these tables: change both together.

Conventions:
- ``attributes`` holds that level's DICOM JSON (PS3.18 Annex F, binary values over 64 bytes
  dropped) so QIDO can answer ``includefield=all`` without reading the store.
- ``*_norm`` columns hold :func:`normalize_person_name` of the PN beside them, for
  case-insensitive and fuzzy name matching.
- Times carry microseconds; stored date/times are naive (DICOM local time; ``updated_at`` UTC).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

DEFAULT_ISSUER = "DEFAULT_DOMAIN"
"""issuer.issuerofpatientid recorded when a patient has no Issuer of Patient ID."""
NO_PATIENT_ID = "NO_PID"
"""patient.patientid recorded when a patient has no Patient ID."""

UID = 64
SHORT = 64  # CS, SH, LO and AE values fit in 64 characters
PERSON_NAME = 400  # PN: 3 groups x 5 components x 64 characters, plus delimiters (324)

_MYSQL = ("mysql", "mariadb")

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    }
)


def _pkey() -> TypeEngine:
    # SQLite only auto-increments INTEGER PRIMARY KEY (the rowid), not BIGINT.
    return BigInteger().with_variant(Integer(), "sqlite")


def _string(length: int) -> TypeEngine:
    # A binary collation on MySQL/MariaDB: DICOM matching is exact and case-sensitive, and
    # unique keys must not fold 'abc' and 'ABC' together.
    return String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"), *_MYSQL)


def _text() -> TypeEngine:
    # MySQL TEXT stops at 64 KiB, too small for some instances' DICOM JSON.
    return Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)


def _time() -> TypeEngine:
    return Time().with_variant(mysql.TIME(fsp=6), *_MYSQL)


def _datetime() -> TypeEngine:
    return DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def _prefix_index(table: str, column: str) -> Index:
    # varchar_pattern_ops lets PostgreSQL serve LIKE 'DOE%' from the index under any collation.
    return Index(f"ix_{table}_{column}", column, postgresql_ops={column: "varchar_pattern_ops"})


_MYSQL_TABLE = {
    f"{dialect}_{option}": value
    for dialect in _MYSQL
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"))
}


def normalize_person_name(value: str | None, *, upper: bool = True) -> str | None:
    """Upper-cased PN with '^' and whitespace runs folded to one space in each group, empty
    trailing groups dropped: 'Doe^John^^^=山田^太郎' -> 'DOE JOHN=山田 太郎'. Accents are kept.
    Without *upper* the case is kept (for the database to upper-case, as it does the column)."""
    if not value:
        return None
    groups = [" ".join(group.replace("^", " ").split()) for group in value.split("=")]
    if upper:
        groups = [group.upper() for group in groups]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups) or None


issuer = Table(
    "issuer",
    metadata,
    Column("issuer_pkey", _pkey(), primary_key=True),
    Column("issuerofpatientid", _string(SHORT), nullable=False, unique=True),
    Column("description", String(256)),
    **_MYSQL_TABLE,
)

patient = Table(
    "patient",
    metadata,
    Column("patient_pkey", _pkey(), primary_key=True),
    Column("issuer_pkey", _pkey(), ForeignKey("issuer.issuer_pkey"), nullable=False, index=True),
    # Searches by patientid use the unique key below, which leads with it.
    Column("patientid", _string(SHORT), nullable=False),
    Column("patientname", _string(PERSON_NAME), index=True),
    Column("patientname_norm", _string(PERSON_NAME)),
    Column("patientbirthdate", Date()),
    Column("patientsex", _string(SHORT)),
    Column("patientcomments", _text()),
    Column("attributes", _text()),
    UniqueConstraint("patientid", "issuer_pkey"),
    _prefix_index("patient", "patientname_norm"),
    **_MYSQL_TABLE,
)

study = Table(
    "study",
    metadata,
    Column("study_pkey", _pkey(), primary_key=True),
    Column("patient_pkey", _pkey(), ForeignKey("patient.patient_pkey"), nullable=False, index=True),
    Column("studyinstanceuid", _string(UID), nullable=False, unique=True),
    Column("accessionnumber", _string(SHORT), index=True),
    Column("studyid", _string(SHORT), index=True),
    Column("studydate", Date()),
    Column("studytime", _time()),
    Column("studydescription", _string(SHORT)),
    Column("referringphysicianname", _string(PERSON_NAME), index=True),
    Column("referringphysicianname_norm", _string(PERSON_NAME)),
    Column("numberofstudyrelatedseries", Integer(), nullable=False, server_default="0"),
    Column("numberofstudyrelatedinstances", Integer(), nullable=False, server_default="0"),
    Column("modalitiesinstudy", _string(256)),
    Column("sopclassesinstudy", _text()),
    Column("attributes", _text()),
    Column("updated_at", _datetime()),
    # Leads with studydate for date-range search; ends with the UID for a deterministic page order.
    Index("ix_study_studydate_studyinstanceuid", "studydate", "studyinstanceuid"),
    # The default QIDO-RS order: a page of studies is read in order, not sorted (0002).
    Index(
        "ix_study_studydate_studytime_studyinstanceuid",
        "studydate",
        "studytime",
        "studyinstanceuid",
    ),
    _prefix_index("study", "referringphysicianname_norm"),
    **_MYSQL_TABLE,
)

series = Table(
    "series",
    metadata,
    Column("series_pkey", _pkey(), primary_key=True),
    Column("study_pkey", _pkey(), ForeignKey("study.study_pkey"), nullable=False, index=True),
    Column("seriesinstanceuid", _string(UID), nullable=False, unique=True),
    Column("modality", _string(SHORT), index=True),
    Column("seriesnumber", Integer(), index=True),
    Column("seriesdescription", _string(SHORT)),
    Column("institutionname", _string(SHORT)),
    Column("bodypartexamined", _string(SHORT)),
    Column("stationname", _string(SHORT)),
    Column("manufacturer", _string(SHORT)),
    Column("protocolname", _string(SHORT)),
    Column("laterality", _string(SHORT)),
    Column("numberofseriesrelatedinstances", Integer(), nullable=False, server_default="0"),
    Column("seriesdate", Date()),
    Column("seriestime", _time()),
    Column("performedprocedurestepstartdate", Date()),
    Column("performedprocedurestepstarttime", _time()),
    Column("attributes", _text()),
    **_MYSQL_TABLE,
)

imageset = Table(
    "imageset",
    metadata,
    Column("imageset_pkey", _pkey(), primary_key=True),
    Column("series_pkey", _pkey(), ForeignKey("series.series_pkey"), index=True),
    Column("imagesetid", _string(UID), nullable=False),
    Column("datastoreid", _string(UID), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("isprimary", Boolean(), nullable=False),
    Column("updated_at", _datetime()),
    UniqueConstraint("imagesetid", "datastoreid"),
    **_MYSQL_TABLE,
)

instance = Table(
    "instance",
    metadata,
    Column("instance_pkey", _pkey(), primary_key=True),
    Column("series_pkey", _pkey(), ForeignKey("series.series_pkey"), nullable=False, index=True),
    Column(
        "imageset_pkey", _pkey(), ForeignKey("imageset.imageset_pkey"), nullable=False, index=True
    ),
    Column("sopinstanceuid", _string(UID), nullable=False, unique=True),
    Column("sopclassuid", _string(UID), index=True),
    Column("imagetype", _string(256)),
    Column("instancenumber", Integer(), index=True),
    Column("acquisitiondate", Date()),
    Column("acquisitiontime", _time()),
    Column("contentdate", Date()),
    Column("contenttime", _time()),
    Column("photometricinterpretation", _string(SHORT)),
    Column("numberofframes", Integer()),
    Column("rows", Integer()),
    Column("columns", Integer()),
    Column("bitsallocated", Integer()),
    Column("bitsstored", Integer()),
    Column("highbit", Integer()),
    Column("rescaleslope", Double()),
    Column("rescaleintercept", Double()),
    Column("pixelrepresentation", Integer()),
    Column("windowcenter", _string(256)),
    Column("windowwidth", _string(256)),
    Column("observationtime", _datetime()),
    Column("contentdescription", _string(SHORT)),
    Column("storedtransfersyntaxuid", _string(UID)),
    Column("attributes", _text()),
    **_MYSQL_TABLE,
)

frame = Table(
    "frame",
    metadata,
    Column("frame_pkey", _pkey(), primary_key=True),
    Column(
        "instance_pkey", _pkey(), ForeignKey("instance.instance_pkey"), nullable=False, index=True
    ),
    Column("imageset_pkey", _pkey(), ForeignKey("imageset.imageset_pkey"), nullable=False),
    Column("framenumber", Integer(), nullable=False),
    Column("frameid", _string(UID), nullable=False),
    UniqueConstraint("imageset_pkey", "frameid"),
    **_MYSQL_TABLE,
)

conflict = Table(
    "conflict",
    metadata,
    Column("conflict_pkey", _pkey(), primary_key=True),
    Column("series_pkey", _pkey(), ForeignKey("series.series_pkey"), nullable=False, index=True),
    Column(
        "imageset_pkey", _pkey(), ForeignKey("imageset.imageset_pkey"), nullable=False, index=True
    ),
    Column("priority", Integer(), nullable=False),
    Column("conflict_type", String(32)),
    **_MYSQL_TABLE,
)
