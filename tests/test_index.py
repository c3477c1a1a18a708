"""The SQL index: migrations and the image-set writer, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import date, datetime, time
from typing import Any

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from dicomweb_proxy.dicom.transfer_syntax import HTJ2K_LOSSLESS_RPCL
from dicomweb_proxy.index import schema
from dicomweb_proxy.index.database import (
    begin_write,
    create_index_engine,
    head_revision,
    run_write,
    schema_revision,
    upgrade_schema,
)
from dicomweb_proxy.index.reader import IndexReader
from dicomweb_proxy.index.writer import (
    IndexedImageSet,
    index_image_set,
    remove_image_set,
)

DATASTORE = "169224ef14db49839f628fb887d50291"
IMAGE_SET_A = "a" * 32
IMAGE_SET_B = "b" * 32
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
STUDY = "1.2.826.0.1.3680043.10.1"
SAMPLE_STUDY = "1.3.6.1.4.1.25403.166563008443.732.20120418082458.1"
SAMPLE_SERIES = "1.3.6.1.4.1.25403.166563008443.732.20120418082458.2"
SAMPLE_MULTI_FRAME = "1.3.6.1.4.1.25403.166563008443.732.20120418082508.1"
TABLES = {"issuer", "patient", "study", "series", "imageset", "instance", "frame", "conflict"}


# --- documents and queries -------------------------------------------------------------------


def _instance(sop_uid: str, number: int, *, frames: int = 1, sop_class: str = CT, **dicom: Any):
    return sop_uid, {
        "DICOM": {
            "SOPInstanceUID": sop_uid,
            "SOPClassUID": sop_class,
            "InstanceNumber": str(number),
            "PixelData": None,
            **dicom,
        },
        "DICOMVRs": {},
        "ImageFrames": [{"ID": _frame_id(sop_uid, n)} for n in range(frames)],
    }


def _frame_id(sop_uid: str, number: int) -> str:
    return hashlib.md5(f"{sop_uid}/{number}".encode()).hexdigest()


def _series(uid: str, instances: list, **dicom: Any) -> tuple[str, dict]:
    return uid, {"DICOM": {"SeriesInstanceUID": uid, **dicom}, "Instances": dict(instances)}


def _document(series: list, *, patient: dict | None = None, study: dict | None = None) -> dict:
    return {
        "SchemaVersion": "1.1",
        "Patient": {"DICOM": {"PatientID": "P1", "PatientName": "Doe^John", **(patient or {})}},
        "Study": {
            "DICOM": {"StudyInstanceUID": STUDY, "StudyDate": "20240102", **(study or {})},
            "Series": dict(series),
        },
    }


def _ct_series(uid: str = f"{STUDY}.1", count: int = 3, **dicom: Any) -> tuple[str, dict]:
    instances = [_instance(f"{uid}.{n}", n) for n in range(1, count + 1)]
    return _series(uid, instances, Modality="CT", **dicom)


def _index(
    engine: Engine, metadata: dict, image_set_id: str = IMAGE_SET_A, version: int = 1
) -> IndexedImageSet:
    return run_write(
        engine,
        lambda connection: index_image_set(
            connection,
            datastore_id=DATASTORE,
            image_set_id=image_set_id,
            version=version,
            metadata=metadata,
        ),
    )


def _remove(engine: Engine, image_set_id: str = IMAGE_SET_A) -> list[tuple[str, str]]:
    with begin_write(engine) as connection:
        return remove_image_set(connection, datastore_id=DATASTORE, image_set_id=image_set_id)


def _rows(engine: Engine, table_name: str, order_by: str | None = None) -> list[Any]:
    table = schema.metadata.tables[table_name]
    order = table.c[order_by] if order_by else table.primary_key.columns[0]
    with engine.connect() as connection:
        return list(connection.execute(select(table).order_by(order)))


def _dump(engine: Engine) -> dict[str, list[tuple]]:
    return {name: [tuple(row) for row in _rows(engine, name)] for name in sorted(TABLES)}


def _counts(engine: Engine) -> dict[str, int]:
    return {name: len(rows) for name, rows in _dump(engine).items()}


# --- schema and migrations -------------------------------------------------------------------


def test_upgrade_is_idempotent_and_reports_the_revision(index_url):
    engine = create_index_engine(index_url)
    try:
        assert schema_revision(engine) is None
        upgrade_schema(engine)
        upgrade_schema(engine)
        assert schema_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= TABLES
        IndexReader(engine).check()
    finally:
        engine.dispose()


def test_concurrent_upgrades_are_serialized(index_url):
    engines = [create_index_engine(index_url) for _ in range(3)]
    errors: list[BaseException] = []

    def upgrade(engine: Engine) -> None:
        try:
            upgrade_schema(engine)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=upgrade, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert schema_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            engine.dispose()


def test_migration_creates_exactly_the_schema_module(index_engine):
    with index_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, schema.metadata) == []


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_unsupported_database_is_refused():
    with pytest.raises(ValueError, match="unsupported"):
        create_index_engine("oracle://scott@localhost/xe")


# --- indexing the real AHI sample ------------------------------------------------------------


def test_index_the_ahi_sample(index_engine, ahi_sample):
    result = _index(index_engine, ahi_sample)
    assert result == IndexedImageSet(SAMPLE_STUDY, (SAMPLE_SERIES,), 9, 22, True)

    assert [row.issuerofpatientid for row in _rows(index_engine, "issuer")] == ["DEFAULT_DOMAIN"]
    (patient,) = _rows(index_engine, "patient")
    assert (patient.patientid, patient.patientname, patient.patientname_norm) == (
        "NO_PID",
        "US Echo",
        "US ECHO",
    )
    assert patient.patientbirthdate is None
    assert orjson.loads(patient.attributes)["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "US Echo"}],
    }

    (study,) = _rows(index_engine, "study")
    assert study.studyinstanceuid == SAMPLE_STUDY
    assert (study.studydate, study.studytime) == (date(2012, 4, 18), time(15, 26, 43))
    assert study.studydescription == "US Dopler"
    assert (study.numberofstudyrelatedseries, study.numberofstudyrelatedinstances) == (1, 9)
    assert study.modalitiesinstudy == "US"
    assert study.sopclassesinstudy == "1.2.840.10008.5.1.4.1.1.3.1\\1.2.840.10008.5.1.4.1.1.6.1"
    study_json = orjson.loads(study.attributes)
    assert study_json["00100010"]["Value"] == [{"Alphabetic": "US Echo"}]
    assert study_json["00080020"] == {"vr": "DA", "Value": ["20120418"]}
    assert study.updated_at is not None

    (series,) = _rows(index_engine, "series")
    assert (series.modality, series.manufacturer, series.seriesdate) == (
        "US",
        "ACUSON",
        date(2012, 4, 18),
    )
    assert series.seriesnumber is None
    assert series.numberofseriesrelatedinstances == 9
    assert orjson.loads(series.attributes)["00181020"] == {"vr": "LO", "Value": ["1.06"]}

    (imageset,) = _rows(index_engine, "imageset")
    assert (imageset.imagesetid, imageset.datastoreid, imageset.version) == (
        IMAGE_SET_A,
        DATASTORE,
        1,
    )
    assert imageset.isprimary is True
    assert imageset.series_pkey == series.series_pkey

    instances = {row.sopinstanceuid: row for row in _rows(index_engine, "instance")}
    assert len(instances) == 9
    multi = instances[SAMPLE_MULTI_FRAME]
    assert (multi.numberofframes, multi.rows, multi.columns, multi.instancenumber) == (
        14,
        240,
        320,
        3,
    )
    assert multi.imagetype == "ORIGINAL\\PRIMARY\\\\0011"
    assert (multi.contentdate, multi.contenttime) == (date(2012, 4, 18), time(15, 28, 25))
    assert multi.acquisitiontime is None
    assert multi.photometricinterpretation == "RGB"
    assert multi.storedtransfersyntaxuid == HTJ2K_LOSSLESS_RPCL
    instance_json = orjson.loads(multi.attributes)
    assert instance_json["7FDF1001"] == {"vr": "UN", "InlineBinary": "BwA="}
    assert "7FE00010" not in instance_json
    assert "00100010" not in instance_json  # upper levels stay in their own rows

    frames = [
        row for row in _rows(index_engine, "frame") if row.instance_pkey == multi.instance_pkey
    ]
    assert sorted(row.framenumber for row in frames) == list(range(1, 15))
    assert len(_rows(index_engine, "frame")) == 22


def test_reindexing_the_same_document_writes_nothing(index_engine, ahi_sample):
    _index(index_engine, ahi_sample)
    before = _dump(index_engine)
    _index(index_engine, ahi_sample)
    assert _dump(index_engine) == before


def test_reindexing_without_an_instance_deletes_it_and_its_frames(index_engine, ahi_sample):
    _index(index_engine, ahi_sample)
    del ahi_sample["Study"]["Series"][SAMPLE_SERIES]["Instances"][SAMPLE_MULTI_FRAME]
    result = _index(index_engine, ahi_sample, version=2)
    assert (result.instance_count, result.frame_count) == (8, 8)
    assert SAMPLE_MULTI_FRAME not in {row.sopinstanceuid for row in _rows(index_engine, "instance")}
    assert len(_rows(index_engine, "frame")) == 8
    (study,) = _rows(index_engine, "study")
    assert (study.numberofstudyrelatedseries, study.numberofstudyrelatedinstances) == (1, 8)
    assert study.sopclassesinstudy == "1.2.840.10008.5.1.4.1.1.6.1"
    assert _rows(index_engine, "series")[0].numberofseriesrelatedinstances == 8
    assert _rows(index_engine, "imageset")[0].version == 2


def test_remove_image_set_leaves_nothing_behind(index_engine, ahi_sample):
    _index(index_engine, ahi_sample)
    assert _remove(index_engine) == []
    assert _counts(index_engine) == {name: 0 for name in TABLES} | {"issuer": 1}
    assert _remove(index_engine) == []  # unknown image sets are ignored


# --- hand-built documents --------------------------------------------------------------------


def test_several_series_dates_times_and_counts(index_engine):
    ct = _ct_series(
        f"{STUDY}.1",
        3,
        SeriesNumber="3",
        SeriesTime="0930",
        PerformedProcedureStepStartDate="20240102",
        PerformedProcedureStepStartTime="093000.5",
    )
    mr_instances = [
        _instance(
            f"{STUDY}.2.{n}",
            n,
            sop_class=MR,
            frames=2,
            RescaleSlope="0.5",
            RescaleIntercept="-1024",
            WindowCenter=["40", "400"],
            WindowWidth=["350", "1500"],
            ObservationDateTime="20240102101112.25+0100",
            AcquisitionTime="10:11:12",
            ContentTime="101112.123456",
        )
        for n in (1, 2)
    ]
    mr = _series(f"{STUDY}.2", mr_instances, Modality="MR")
    document = _document(
        [ct, mr],
        patient={"PatientBirthDate": "19800230", "PatientSex": "M"},
        study={"StudyTime": "101112.123", "StudyDate": "2024-01-02", "AccessionNumber": "A1"},
    )
    result = _index(index_engine, document)
    assert result.series_instance_uids == (f"{STUDY}.1", f"{STUDY}.2")
    assert (result.instance_count, result.frame_count) == (5, 7)

    (patient,) = _rows(index_engine, "patient")
    assert (patient.patientbirthdate, patient.patientsex) == (None, "M")
    (study,) = _rows(index_engine, "study")
    assert (study.studydate, study.studytime) == (None, time(10, 11, 12, 123000))
    assert study.accessionnumber == "A1"
    assert (study.numberofstudyrelatedseries, study.numberofstudyrelatedinstances) == (2, 5)
    assert (study.modalitiesinstudy, study.sopclassesinstudy) == ("CT\\MR", f"{CT}\\{MR}")

    ct_row, mr_row = _rows(index_engine, "series", "seriesinstanceuid")
    assert (ct_row.seriesnumber, ct_row.seriestime) == (3, time(9, 30))
    assert ct_row.performedprocedurestepstartdate == date(2024, 1, 2)
    assert ct_row.performedprocedurestepstarttime == time(9, 30, 0, 500000)
    assert (ct_row.numberofseriesrelatedinstances, mr_row.numberofseriesrelatedinstances) == (3, 2)
    assert _rows(index_engine, "imageset")[0].series_pkey == ct_row.series_pkey

    mr_instance = _rows(index_engine, "instance", "sopinstanceuid")[-1]
    assert mr_instance.series_pkey == mr_row.series_pkey
    assert (mr_instance.rescaleslope, mr_instance.rescaleintercept) == (0.5, -1024.0)
    assert (mr_instance.windowcenter, mr_instance.windowwidth) == ("40\\400", "350\\1500")
    assert mr_instance.observationtime == datetime(2024, 1, 2, 10, 11, 12, 250000)
    assert mr_instance.acquisitiontime == time(10, 11, 12)
    assert mr_instance.contenttime == time(10, 11, 12, 123456)


def test_non_ascii_person_names_round_trip(index_engine):
    name = "Müller^Jürgen=山田^太郎=やまだ^たろう"
    document = _document(
        [_ct_series()],
        patient={"PatientName": name},
        study={"ReferringPhysicianName": "Ñúñez^José", "StudyDescription": "Thorax ✓ 胸部"},
    )
    _index(index_engine, document)
    (patient,) = _rows(index_engine, "patient")
    assert patient.patientname == name
    assert patient.patientname_norm == "MÜLLER JÜRGEN=山田 太郎=やまだ たろう"
    (study,) = _rows(index_engine, "study")
    assert (study.referringphysicianname, study.referringphysicianname_norm) == (
        "Ñúñez^José",
        "ÑÚÑEZ JOSÉ",
    )
    assert study.studydescription == "Thorax ✓ 胸部"
    assert orjson.loads(study.attributes)["00100010"]["Value"] == [
        {"Alphabetic": "Müller^Jürgen", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]
    before = _dump(index_engine)
    _index(index_engine, document)
    assert _dump(index_engine) == before


def test_sql_metacharacters_are_stored_verbatim(index_engine):
    hostile = "'; DROP TABLE study; --"
    document = _document(
        [_ct_series()],
        patient={"PatientID": "x'); DELETE FROM patient; --", "PatientName": "O'Brien^Dan"},
        study={"StudyDescription": hostile, "AccessionNumber": '"%_\\'},
    )
    _index(index_engine, document)
    assert set(inspect(index_engine).get_table_names()) >= TABLES
    (patient,) = _rows(index_engine, "patient")
    assert (patient.patientid, patient.patientname) == (
        "x'); DELETE FROM patient; --",
        "O'Brien^Dan",
    )
    (study,) = _rows(index_engine, "study")
    assert (study.studydescription, study.accessionnumber) == (hostile, '"%_\\')


def test_malformed_and_overlong_values_do_not_raise(index_engine):
    instance = _instance(
        f"{STUDY}.1.1",
        1,
        InstanceNumber="abc",
        Rows="x",
        NumberOfFrames="99999999999",
        RescaleSlope="NaN",
        ContentDate="20241301",
        ContentTime="25",
        ObservationDateTime="yesterday",
        ContentDescription="d" * 300,
    )
    series = _series(f"{STUDY}.1", [instance], Modality="CT", SeriesNumber="1.5")
    document = _document(
        [series], study={"AccessionNumber": "9" * 100, "StudyTime": "12:3", "StudyDate": None}
    )
    _index(index_engine, document)
    (row,) = _rows(index_engine, "instance")
    assert (row.instancenumber, row.rows, row.numberofframes, row.rescaleslope) == (None,) * 4
    assert (row.contentdate, row.contenttime, row.observationtime) == (None, None, None)
    assert row.contentdescription == "d" * 64
    (study,) = _rows(index_engine, "study")
    assert (study.accessionnumber, study.studytime, study.studydate) == ("9" * 64, None, None)
    assert _rows(index_engine, "series")[0].seriesnumber is None


def test_large_binary_values_stay_out_of_the_attributes_column(index_engine):
    small, large = base64.b64encode(b"x" * 64).decode(), base64.b64encode(b"x" * 65).decode()
    instance = _instance(
        f"{STUDY}.1.1",
        1,
        RedPaletteColorLookupTableData=large,
        GreenPaletteColorLookupTableData=small,
        IconImageSequence=[
            {"Rows": 8, "PixelData": None, "BluePaletteColorLookupTableData": large}
        ],
    )
    _index(index_engine, _document([_series(f"{STUDY}.1", [instance], Modality="CT")]))
    attributes = orjson.loads(_rows(index_engine, "instance")[0].attributes)
    assert "00281201" not in attributes
    assert attributes["00281202"] == {"vr": "OW", "InlineBinary": small}
    assert attributes["00880200"]["Value"] == [{"00280010": {"vr": "US", "Value": [8]}}]


def test_a_document_without_study_uid_is_refused(index_engine):
    document = _document([_ct_series()])
    document["Study"]["DICOM"]["StudyInstanceUID"] = None
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        _index(index_engine, document)


def test_a_changed_patient_id_moves_the_study(index_engine):
    _index(index_engine, _document([_ct_series()], patient={"PatientID": "OLD"}))
    _index(index_engine, _document([_ct_series()], patient={"PatientID": "NEW"}), version=2)
    (patient,) = _rows(index_engine, "patient")
    assert patient.patientid == "NEW"
    assert _rows(index_engine, "study")[0].patient_pkey == patient.patient_pkey


def test_patient_ids_are_case_sensitive(index_engine):
    _index(index_engine, _document([_ct_series()], patient={"PatientID": "abc"}))
    other = _document([_ct_series(f"{STUDY}.9.1")], patient={"PatientID": "ABC"})
    other["Study"]["DICOM"]["StudyInstanceUID"] = f"{STUDY}.9"
    _index(index_engine, other, IMAGE_SET_B)
    assert sorted(row.patientid for row in _rows(index_engine, "patient")) == ["ABC", "abc"]


def test_a_second_image_set_of_a_series_is_recorded_as_a_conflict(index_engine):
    series_uid = f"{STUDY}.1"
    _index(index_engine, _document([_ct_series(series_uid, 3)]))
    result = _index(index_engine, _document([_ct_series(series_uid, 4)]), IMAGE_SET_B)
    assert (result.is_primary, result.instance_count) == (False, 1)  # only the instance A lacks

    first, second = _rows(index_engine, "imageset")
    assert (first.isprimary, second.isprimary) == (True, False)
    (conflict,) = _rows(index_engine, "conflict")
    assert (conflict.imageset_pkey, conflict.priority, conflict.conflict_type) == (
        second.imageset_pkey,
        1,
        "DUPLICATE_SERIES",
    )
    instances = _rows(index_engine, "instance")
    assert len(instances) == 4
    assert [row.imageset_pkey for row in instances].count(second.imageset_pkey) == 1
    assert _rows(index_engine, "series")[0].numberofseriesrelatedinstances == 4

    before = _dump(index_engine)
    _index(index_engine, _document([_ct_series(series_uid, 4)]), IMAGE_SET_B)
    assert _dump(index_engine) == before

    assert _remove(index_engine, IMAGE_SET_A) == [(DATASTORE, IMAGE_SET_B)]
    (remaining,) = _rows(index_engine, "imageset")
    assert remaining.isprimary is True
    assert _rows(index_engine, "conflict") == []
    assert _rows(index_engine, "series")[0].numberofseriesrelatedinstances == 1
    assert _index(index_engine, _document([_ct_series(series_uid, 4)]), IMAGE_SET_B).is_primary
    assert len(_rows(index_engine, "instance")) == 4
    assert _rows(index_engine, "study")[0].numberofstudyrelatedinstances == 4


def test_concurrent_writers_of_one_study_keep_counts_exact(index_engine):
    image_sets = [f"{n:032x}" for n in range(1, 5)]
    documents = [_document([_ct_series(f"{STUDY}.{n}", n)]) for n in range(1, 5)]
    errors: list[BaseException] = []

    def index(document: dict, image_set_id: str) -> None:
        try:
            _index(index_engine, document, image_set_id)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [
        threading.Thread(target=index, args=pair)
        for pair in zip(documents, image_sets, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _counts(index_engine) == {
        "issuer": 1,
        "patient": 1,
        "study": 1,
        "series": 4,
        "imageset": 4,
        "instance": 10,
        "frame": 10,
        "conflict": 0,
    }
    (study,) = _rows(index_engine, "study")
    assert (study.numberofstudyrelatedseries, study.numberofstudyrelatedinstances) == (4, 10)


@pytest.mark.parametrize("new_series_uid", [f"{STUDY}.1", f"{STUDY}.7"], ids=["same", "new"])
def test_a_new_version_in_another_study_leaves_no_empty_rows(index_engine, new_series_uid):
    _index(index_engine, _document([_ct_series(f"{STUDY}.1", 2)], patient={"PatientID": "OLD"}))
    moved = _document([_ct_series(new_series_uid, 2)], patient={"PatientID": "NEW"})
    moved["Study"]["DICOM"]["StudyInstanceUID"] = f"{STUDY}.99"
    _index(index_engine, moved, version=2)
    assert [row.studyinstanceuid for row in _rows(index_engine, "study")] == [f"{STUDY}.99"]
    assert [row.seriesinstanceuid for row in _rows(index_engine, "series")] == [new_series_uid]
    assert [row.patientid for row in _rows(index_engine, "patient")] == ["NEW"]
    assert _rows(index_engine, "study")[0].numberofstudyrelatedinstances == 2


def test_an_older_version_never_replaces_a_newer_one(index_engine):
    _index(index_engine, _document([_ct_series(count=5)]), version=2)
    before = _dump(index_engine)
    assert _index(index_engine, _document([_ct_series(count=2)]), version=1) is None
    assert _dump(index_engine) == before
    assert len(_rows(index_engine, "instance")) == 5


def test_an_older_version_waits_for_a_newer_one_of_a_new_image_set(index_engine):
    """Two writers of a new image set (no study row to lock yet): the one with the older
    version waits for the newer one's transaction, then changes nothing."""
    newer = _document([_ct_series(count=5)])
    older = _document([_ct_series(count=2)])
    outcome: list[Any] = []
    with begin_write(index_engine) as connection:
        index_image_set(
            connection, datastore_id=DATASTORE, image_set_id=IMAGE_SET_A, version=2, metadata=newer
        )
        writer = threading.Thread(
            target=lambda: outcome.append(_index(index_engine, older, version=1))
        )
        writer.start()
        writer.join(timeout=1)  # it waits on this open transaction
    writer.join()
    assert outcome == [None]
    (row,) = _rows(index_engine, "imageset")
    assert row.version == 2
    assert len(_rows(index_engine, "instance")) == 5


def test_a_new_sqlite_index_opened_by_several_connections_at_once(tmp_path):
    """Switching a new file to WAL answered "database is locked" at once, without waiting,
    while another connection used it (about one round in eight failed before)."""
    errors: list[BaseException] = []

    def open_and_read(url: str) -> None:
        engine = create_index_engine(url)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            engine.dispose()

    for round_number in range(20):
        url = f"sqlite:///{tmp_path / f'index-{round_number}.sqlite'}"
        threads = [threading.Thread(target=open_and_read, args=(url,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
