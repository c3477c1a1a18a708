"""Initial index schema: the companion metadata-index tables plus DICOMweb search columns.

Written out in full rather than imported from schema.py, so this revision keeps creating the
same tables whatever schema.py becomes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_MYSQL = ("mysql", "mariadb")
_TABLE_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in _MYSQL
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"))
}


def _pkey() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _string(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"), *_MYSQL)


def _text() -> sa.types.TypeEngine:
    return sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)


def _time() -> sa.types.TypeEngine:
    return sa.Time().with_variant(mysql.TIME(fsp=6), *_MYSQL)


def _datetime() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def _primary(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column(f"{table}_pkey", _pkey(), primary_key=True, autoincrement=True),
        sa.PrimaryKeyConstraint(f"{table}_pkey", name=f"pk_{table}"),
    ]


def _reference(table: str, target: str, *, nullable: bool = False) -> list[sa.schema.SchemaItem]:
    column = f"{target}_pkey"
    return [
        sa.Column(column, _pkey(), nullable=nullable),
        sa.ForeignKeyConstraint([column], [f"{target}.{column}"], name=f"fk_{table}_{column}"),
    ]


def _index(table: str, *columns: str) -> None:
    op.create_index(f"ix_{table}_{'_'.join(columns)}", table, list(columns))


def _prefix_index(table: str, column: str) -> None:
    """An index PostgreSQL can use for LIKE 'PREFIX%' under any collation."""
    op.create_index(
        f"ix_{table}_{column}", table, [column], postgresql_ops={column: "varchar_pattern_ops"}
    )


def upgrade() -> None:
    op.create_table(
        "issuer",
        *_primary("issuer"),
        sa.Column("issuerofpatientid", _string(64), nullable=False),
        sa.Column("description", sa.String(256)),
        sa.UniqueConstraint("issuerofpatientid", name="uq_issuer_issuerofpatientid"),
        **_TABLE_OPTIONS,
    )

    op.create_table(
        "patient",
        *_primary("patient"),
        *_reference("patient", "issuer"),
        sa.Column("patientid", _string(64), nullable=False),
        sa.Column("patientname", _string(400)),
        sa.Column("patientname_norm", _string(400)),
        sa.Column("patientbirthdate", sa.Date()),
        sa.Column("patientsex", _string(64)),
        sa.Column("patientcomments", _text()),
        sa.Column("attributes", _text()),
        sa.UniqueConstraint("patientid", "issuer_pkey", name="uq_patient_patientid_issuer_pkey"),
        **_TABLE_OPTIONS,
    )
    _index("patient", "issuer_pkey")
    _index("patient", "patientname")
    _prefix_index("patient", "patientname_norm")

    op.create_table(
        "study",
        *_primary("study"),
        *_reference("study", "patient"),
        sa.Column("studyinstanceuid", _string(64), nullable=False),
        sa.Column("accessionnumber", _string(64)),
        sa.Column("studyid", _string(64)),
        sa.Column("studydate", sa.Date()),
        sa.Column("studytime", _time()),
        sa.Column("studydescription", _string(64)),
        sa.Column("referringphysicianname", _string(400)),
        sa.Column("referringphysicianname_norm", _string(400)),
        sa.Column("numberofstudyrelatedseries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "numberofstudyrelatedinstances", sa.Integer(), nullable=False, server_default="0"
        ),
        sa.Column("modalitiesinstudy", _string(256)),
        sa.Column("sopclassesinstudy", _text()),
        sa.Column("attributes", _text()),
        sa.Column("updated_at", _datetime()),
        sa.UniqueConstraint("studyinstanceuid", name="uq_study_studyinstanceuid"),
        **_TABLE_OPTIONS,
    )
    _index("study", "patient_pkey")
    _index("study", "accessionnumber")
    _index("study", "studyid")
    _index("study", "referringphysicianname")
    _prefix_index("study", "referringphysicianname_norm")
    _index("study", "studydate", "studyinstanceuid")

    op.create_table(
        "series",
        *_primary("series"),
        *_reference("series", "study"),
        sa.Column("seriesinstanceuid", _string(64), nullable=False),
        sa.Column("modality", _string(64)),
        sa.Column("seriesnumber", sa.Integer()),
        sa.Column("seriesdescription", _string(64)),
        sa.Column("institutionname", _string(64)),
        sa.Column("bodypartexamined", _string(64)),
        sa.Column("stationname", _string(64)),
        sa.Column("manufacturer", _string(64)),
        sa.Column("protocolname", _string(64)),
        sa.Column("laterality", _string(64)),
        sa.Column(
            "numberofseriesrelatedinstances", sa.Integer(), nullable=False, server_default="0"
        ),
        sa.Column("seriesdate", sa.Date()),
        sa.Column("seriestime", _time()),
        sa.Column("performedprocedurestepstartdate", sa.Date()),
        sa.Column("performedprocedurestepstarttime", _time()),
        sa.Column("attributes", _text()),
        sa.UniqueConstraint("seriesinstanceuid", name="uq_series_seriesinstanceuid"),
        **_TABLE_OPTIONS,
    )
    _index("series", "study_pkey")
    _index("series", "modality")
    _index("series", "seriesnumber")

    op.create_table(
        "imageset",
        *_primary("imageset"),
        *_reference("imageset", "series", nullable=True),
        sa.Column("imagesetid", _string(64), nullable=False),
        sa.Column("datastoreid", _string(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("isprimary", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _datetime()),
        sa.UniqueConstraint("imagesetid", "datastoreid", name="uq_imageset_imagesetid_datastoreid"),
        **_TABLE_OPTIONS,
    )
    _index("imageset", "series_pkey")

    op.create_table(
        "instance",
        *_primary("instance"),
        *_reference("instance", "series"),
        *_reference("instance", "imageset"),
        sa.Column("sopinstanceuid", _string(64), nullable=False),
        sa.Column("sopclassuid", _string(64)),
        sa.Column("imagetype", _string(256)),
        sa.Column("instancenumber", sa.Integer()),
        sa.Column("acquisitiondate", sa.Date()),
        sa.Column("acquisitiontime", _time()),
        sa.Column("contentdate", sa.Date()),
        sa.Column("contenttime", _time()),
        sa.Column("photometricinterpretation", _string(64)),
        sa.Column("numberofframes", sa.Integer()),
        sa.Column("rows", sa.Integer()),
        sa.Column("columns", sa.Integer()),
        sa.Column("bitsallocated", sa.Integer()),
        sa.Column("bitsstored", sa.Integer()),
        sa.Column("highbit", sa.Integer()),
        sa.Column("rescaleslope", sa.Double()),
        sa.Column("rescaleintercept", sa.Double()),
        sa.Column("pixelrepresentation", sa.Integer()),
        sa.Column("windowcenter", _string(256)),
        sa.Column("windowwidth", _string(256)),
        sa.Column("observationtime", _datetime()),
        sa.Column("contentdescription", _string(64)),
        sa.Column("storedtransfersyntaxuid", _string(64)),
        sa.Column("attributes", _text()),
        sa.UniqueConstraint("sopinstanceuid", name="uq_instance_sopinstanceuid"),
        **_TABLE_OPTIONS,
    )
    _index("instance", "series_pkey")
    _index("instance", "imageset_pkey")
    _index("instance", "sopclassuid")
    _index("instance", "instancenumber")

    op.create_table(
        "frame",
        *_primary("frame"),
        *_reference("frame", "instance"),
        *_reference("frame", "imageset"),
        sa.Column("framenumber", sa.Integer(), nullable=False),
        sa.Column("frameid", _string(64), nullable=False),
        sa.UniqueConstraint("imageset_pkey", "frameid", name="uq_frame_imageset_pkey_frameid"),
        **_TABLE_OPTIONS,
    )
    _index("frame", "instance_pkey")

    op.create_table(
        "conflict",
        *_primary("conflict"),
        *_reference("conflict", "series"),
        *_reference("conflict", "imageset"),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("conflict_type", sa.String(32)),
        **_TABLE_OPTIONS,
    )
    _index("conflict", "series_pkey")
    _index("conflict", "imageset_pkey")


def downgrade() -> None:
    tables = ("conflict", "frame", "instance", "imageset", "series", "study", "patient", "issuer")
    for table in tables:
        op.drop_table(table)
