"""The companion metadata-index database, served read-only (MariaDB).

The sample studies are imported into a local store (and our own SQLite index); a MariaDB
database is laid out and filled from that store as the companion project's indexer does
(tests/metadata_index_db.py), and a user that may only SELECT reads it. One server reads our
index, one the metadata-index database, both the same store: QIDO results are checked against
the source files, and WADO answers must be the same from both servers.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from sqlalchemy import Connection, Engine, create_engine, insert, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.dicom.query import Level, parse_search
from dicomweb_proxy.index.layout import METADATA_INDEX, detect_layout
from dicomweb_proxy.index.reader import IndexReader
from dicomweb_proxy.ingest import ahi_events
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.retrieve.records import NotFound
from dicomweb_proxy.retrieve.resolver import Resolver
from dicomweb_proxy.services import open_datastores, open_services
from dicomweb_proxy.stores.base import ImageSetSummary
from dicomweb_proxy.stores.local import LocalStore

from . import metadata_index_db
from .conftest import _SERVERS, _run_as_admin, _unavailable
from .live_server import live_server
from .metadata_index_db import index_like_metadata_index
from .qido_expected import read_sources
from .test_qido_search import CASES, _check_search

pytestmark = pytest.mark.mariadb

#: Matching keys the metadata-index layout has no column for: ignored, named in a Warning.
UNANSWERABLE = {
    "SeriesDate": "20240101",
    "SeriesTime": "1015",
    "PerformedProcedureStepStartDate": "-20240101",
}


_HOSTS = ("%%", "localhost")  # the reader's hosts ('%' doubled: the driver formats statements)


@dataclass(frozen=True)
class MetadataIndex:
    data_dir: Path
    admin_url: URL
    reader_url: str  # a user that may only SELECT
    files: list[Path]  # the source files of what it indexed
    left_out: set[str]  # series whose image sets its indexer could not write


@pytest.fixture(scope="module")
def metadata_index(
    tmp_path_factory: pytest.TempPathFactory, sample_files: list[Path]
) -> Iterator[MetadataIndex]:
    server = _SERVERS["mariadb"]
    name, user, password = f"dwp_mi_{secrets.token_hex(4)}", f"dwp_ro_{secrets.token_hex(4)}", "ro"
    try:
        _run_as_admin(server, server.create, name)
    except OperationalError as error:
        _unavailable(f"MariaDB not reachable ({error.orig})")
    admin_url = server.url.set(database=name)
    data_dir = tmp_path_factory.mktemp("metadata-index")
    services = open_services(load_settings({"data_dir": data_dir}, environ={}))
    try:
        report = Importer(services.store, services.index).run(sample_files)
    finally:
        services.close()
    failed = {Path(failure.path) for failure in report.failures}
    admin = create_engine(admin_url, poolclass=NullPool)
    try:
        store = LocalStore(data_dir / "store", "local")
        # As its indexer does, image sets with a value longer than its column are left out
        # (some of pydicom's files): the sources are the files of the others.
        left_out = {
            series_uid
            for image_set_id in index_like_metadata_index(admin, store)
            for series_uid in store.get_image_set_metadata(image_set_id)["Study"]["Series"]
        }
        assert len(left_out) <= 3
        with admin.begin() as connection:
            for host in _HOSTS:
                connection.exec_driver_sql(
                    f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"
                )
                connection.exec_driver_sql(f"GRANT SELECT ON `{name}`.* TO '{user}'@'{host}'")
        reader = admin_url.set(username=user, password=password)
        yield MetadataIndex(
            data_dir,
            admin_url,
            reader.render_as_string(hide_password=False),
            [path for path in sample_files if path not in failed and _series(path) not in left_out],
            left_out,
        )
    finally:
        with admin.begin() as connection:
            for host in _HOSTS:
                connection.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'{host}'")
        admin.dispose()
        _run_as_admin(server, server.drop, name)


@pytest.fixture(scope="module")
def metadata_index_server(metadata_index: MetadataIndex) -> Iterator[str]:
    with live_server(metadata_index.data_dir, database_url=metadata_index.reader_url) as base:
        yield base


@pytest.fixture(scope="module")
def our_index_server(metadata_index: MetadataIndex) -> Iterator[str]:
    """The same store served from our own index (the SQLite file the import wrote)."""
    with live_server(metadata_index.data_dir) as base:
        yield base


def test_the_layout_is_detected_and_left_unchanged(metadata_index, metadata_index_server):
    engine = create_engine(metadata_index.reader_url, poolclass=NullPool)
    try:
        layout = detect_layout(engine)
        assert layout.name == METADATA_INDEX
        assert not layout.writable
        assert "series.seriesnumber" in layout.text_numbers
        # The server started (and upgraded nothing): no table of ours appeared.
        assert "alembic_version" not in inspect(engine).get_table_names()
        with pytest.raises(DBAPIError, match="command denied"), engine.begin() as c:
            c.execute(text("DELETE FROM study"))
    finally:
        engine.dispose()
    health = httpx.get(f"{metadata_index_server}/health")
    assert health.status_code == 200
    assert health.json()["index"] == "ok"


@pytest.mark.parametrize("command", [["import", "{file}"], ["index", "sync"], ["db", "upgrade"]])
def test_writers_refuse_the_read_only_layout(metadata_index, command):
    arguments = [part.format(file=metadata_index.files[0]) for part in command]
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "dicomweb_proxy", *arguments),
            *("--data-dir", str(metadata_index.data_dir)),
            *("--database-url", metadata_index.reader_url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if command[0] == "db":
        assert completed.returncode == 0, completed.stderr
        assert "metadata-index layout, read only" in completed.stdout
        assert ":ro@" not in completed.stdout  # no password in what is printed
        return
    assert completed.returncode == 2
    assert "holds the metadata-index layout, which this server only reads" in completed.stderr


#: Its indexer keeps times only when they have no fraction ('%H%M%S'): a time range alone
#: misses studies whose time had one (with a date range an unknown time matches on its ends).
LOST_BY_ITS_INDEXER = ({"StudyTime"},)
_ANSWERABLE = [
    case
    for case in CASES
    if not any(key in UNANSWERABLE for key in dict(case[1]))
    and set(dict(case[1])) not in LOST_BY_ITS_INDEXER
]


@pytest.mark.parametrize(
    ("path", "parameters", "predicate", "below"),
    _ANSWERABLE,
    ids=[f"{path} {parameters}" for path, parameters, _, _ in _ANSWERABLE],
)
def test_search_finds_what_the_source_files_hold(
    metadata_index, metadata_index_server, path, parameters, predicate, below
):
    sources = read_sources(tuple(metadata_index.files))
    _check_search(metadata_index_server, sources, path, parameters, predicate, below)


@pytest.mark.parametrize(("key", "value"), UNANSWERABLE.items())
def test_keys_without_a_column_are_ignored_and_named(metadata_index_server, key, value):
    everything = httpx.get(f"{metadata_index_server}/series")
    response = httpx.get(f"{metadata_index_server}/series", params={key: value})
    assert response.status_code == 200, response.text
    series = [dataset["0020000E"] for dataset in response.json()]
    assert series == [dataset["0020000E"] for dataset in everything.json()]
    assert response.headers["warning"] == (
        f'299 {metadata_index_server}: "The following parameters are not supported: {key}"'
    )
    pair = {"SeriesDate": "20240101-20240102", "SeriesTime": "10-12"}  # one interval, no column
    both = httpx.get(f"{metadata_index_server}/series", params=pair)
    assert both.headers["warning"].endswith('supported: SeriesDate, SeriesTime"')


def test_studies_carry_computed_attributes(metadata_index_server, our_index_server):
    """ModalitiesInStudy and the counts: collected from the series, equal to our index's."""
    fields = ("0020000D", "00080061", "00201206", "00201208", "00100010", "00100020")
    answers = [
        {
            study["0020000D"]["Value"][0]: {tag: study.get(tag) for tag in fields}
            for study in httpx.get(f"{server}/studies").json()
        }
        for server in (metadata_index_server, our_index_server)
    ]
    # Studies whose patient has no ID share one patient row there ('NO_PID', or 'None' for an
    # empty ID; its name is the last one written): compare the others. Studies of left-out
    # image sets are missing there.
    assert answers[0].keys() <= answers[1].keys()
    identified = {
        uid for uid, found in answers[1].items() if "Value" in found["00100020"]
    } & answers[0].keys()
    assert {uid: answers[0][uid] for uid in identified} == {
        uid: answers[1][uid] for uid in identified
    }
    assert len(identified) >= 5


def _series_uids(server: str) -> list[tuple[str, str]]:
    found = httpx.get(f"{server}/series", params={"includefield": "0020000D"}).json()
    return sorted((s["0020000D"]["Value"][0], s["0020000E"]["Value"][0]) for s in found)


def test_retrieves_equal_those_from_our_index(
    metadata_index, metadata_index_server, our_index_server
):
    ours = [
        uids for uids in _series_uids(our_index_server) if uids[1] not in metadata_index.left_out
    ]
    assert _series_uids(metadata_index_server) == ours
    clients = [DICOMwebClient(url) for url in (metadata_index_server, our_index_server)]
    for study_uid, series_uid in ours:
        metadata = [
            _without_urls(client.retrieve_series_metadata(study_uid, series_uid))
            for client in clients
        ]
        assert metadata[0] == metadata[1]
        first = metadata[1][0]
        sop_uid = first["00080018"]["Value"][0]
        instances = [client.retrieve_instance(study_uid, series_uid, sop_uid) for client in clients]
        assert instances[0] == instances[1]
        if "7FE00010" in first:
            frames = [
                client.retrieve_instance_frames(
                    study_uid,
                    series_uid,
                    sop_uid,
                    [1],
                    media_types=(("application/octet-stream", "*"),),
                )
                for client in clients
            ]
            assert frames[0] == frames[1]


def _without_urls(items: list[dict]) -> list[dict]:
    """The server's address (in BulkDataURIs) left out: the two servers differ in their port."""

    def strip(value):
        if isinstance(value, dict):
            return {
                key: item.split("/aetitle", 1)[1] if key == "BulkDataURI" else strip(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return [strip(item) for item in items]


def test_versions_come_from_the_store_and_are_kept_briefly(metadata_index):
    """The layout keeps no image-set versions; metadata bodies are cached by version, so the
    resolver asks the store (AHI: GetImageSet) and believes the answer for a few seconds."""
    engine = create_engine(metadata_index.reader_url, poolclass=NullPool)
    store = VersionCountingStore(LocalStore(metadata_index.data_dir / "store", "local"))
    try:
        resolver = Resolver(store, IndexReader(engine, detect_layout(engine)), version_ttl=60)
        study_uid, series_uid = _series_uids_of(metadata_index)
        plan = resolver.plan(study_uid, series_uid)
        image_set_id = plan.rows[0][0]
        assert plan.versions == {image_set_id: store.get_image_set(image_set_id).version}
        calls = store.version_reads
        assert resolver.plan(study_uid, series_uid).versions == plan.versions
        assert store.version_reads == calls
    finally:
        engine.dispose()


class VersionCountingStore:
    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.datastore_id = store.datastore_id
        self.version_reads = 0

    def get_image_set(self, image_set_id: str) -> ImageSetSummary:
        self.version_reads += 1
        return self.store.get_image_set(image_set_id)


def _series(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True, force=True).SeriesInstanceUID)


def _series_uids_of(metadata_index: MetadataIndex) -> tuple[str, str]:
    ds = pydicom.dcmread(metadata_index.files[0], stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


@pytest.mark.parametrize("level", [Level.STUDY, Level.SERIES, Level.INSTANCE])
def test_searches_can_be_kept_to_one_datastore(metadata_index, level):
    """A metadata-index database may list the image sets of several datastores."""
    engine = create_engine(metadata_index.reader_url, poolclass=NullPool)
    layout = detect_layout(engine)
    query = parse_search(level, [])
    try:
        everything = IndexReader(engine, layout).search(query)
        assert everything.total > 0
        assert IndexReader(engine, layout, scope="local").search(query) == everything
        assert IndexReader(engine, layout, scope="elsewhere").search(query).total == 0
    finally:
        engine.dispose()


def test_datastores_may_share_a_metadata_index_database(metadata_index, tmp_path):
    reader = {"database_url": metadata_index.reader_url}
    settings = load_settings(
        {"data_dir": tmp_path, **reader, "datastores": {"other": {**reader, "datastore_id": "x"}}},
        environ={},
    )
    opened = open_datastores(settings, upgrade=False)
    try:
        assert [services.reader.scope for services in opened.values()] == ["local", "x"]
    finally:
        for services in opened.values():
            services.close()


# --- rows written by hand: what its indexer writes that the samples do not show --------------

_CRAFTED_STUDIES = [
    # (patient id, name, study UID, accession, description, [(series UID, modality, number)])
    ("P1", "Müller^Jürgen", "1.1", "A1", "Kopf", [("1.1.1", "CT", "1"), ("1.1.2", "ct", "2")]),
    (
        "P2",
        "Muller^Hans",
        "1.2",
        "A2",
        "None",
        [("1.2.1", "MR", "None"), ("1.2.2", "MR", ""), ("1.2.3", "None", "3")],
    ),
    ("P3", "Doe^John^^^=山田^太郎", "1.3", "a1", None, [("1.3.1", "US", "10")]),
    ("P4", "Wang^XiaoDong=王^小東=", "1.4", None, None, [("1.4.1", "US", "1.0")]),
]
_LATIN1 = _CRAFTED_STUDIES[:2]


@pytest.fixture(scope="module", params=["utf8mb4", "latin1"])
def crafted(request: pytest.FixtureRequest) -> Iterator[tuple[str, Engine]]:
    """A metadata-index database in the character set of the param, the rows above in it (the
    ones latin1 can hold), one more study in another datastore."""
    server = _SERVERS["mariadb"]
    name = f"dwp_mi_{request.param}_{secrets.token_hex(4)}"
    try:
        _run_as_admin(server, f"CREATE DATABASE {{name}} CHARACTER SET {request.param}", name)
    except OperationalError as error:
        _unavailable(f"MariaDB not reachable ({error.orig})")
    engine = create_engine(server.url.set(database=name), poolclass=NullPool)
    try:
        metadata_index_db.metadata.create_all(engine)
        with engine.begin() as connection:
            _write_crafted(connection, _LATIN1 if request.param == "latin1" else _CRAFTED_STUDIES)
        yield request.param, engine
    finally:
        engine.dispose()
        _run_as_admin(server, server.drop, name)


def _write_crafted(connection: Connection, studies: list) -> None:
    tables = metadata_index_db
    connection.execute(
        insert(tables.issuer).values(issuer_pkey=1, issuerofpatientid="DEFAULT_DOMAIN")
    )
    others = [
        ("P9", "Other^Datastore", "9.9", "A9", None, [("9.9.1", "CT", "1")]),
        # Left when its first series failed (a value too long): no series, no counts.
        ("P8", "Half^Written", "8.8", "A8", None, []),
    ]
    for number, (patient_id, name, study_uid, accession, description, series_list) in enumerate(
        [*studies, *others], start=1
    ):
        connection.execute(
            insert(tables.patient).values(
                patient_pkey=number, issuer_pkey=1, patientid=patient_id, patientname=name
            )
        )
        connection.execute(
            insert(tables.study).values(
                study_pkey=number,
                patient_pkey=number,
                studyinstanceuid=study_uid,
                accessionnumber=accession,
                studydescription=description,
                numberofstudyrelatedseries=len(series_list) or None,
                numberofstudyrelatedinstances=len(series_list) or None,
            )
        )
        for series_uid, modality, series_number in series_list:
            series_pkey = connection.execute(
                insert(tables.series).values(
                    study_pkey=number,
                    seriesinstanceuid=series_uid,
                    modality=modality,
                    seriesnumber=series_number,
                    numberofseriesrelatedinstances=1,
                )
            ).inserted_primary_key[0]
            datastore = "elsewhere" if study_uid == "9.9" else "local"
            imageset_pkey = connection.execute(
                insert(tables.imageset).values(
                    series_pkey=series_pkey, imagesetid=f"{series_pkey:032x}", datastoreid=datastore
                )
            ).inserted_primary_key[0]
            connection.execute(
                insert(tables.instance).values(
                    series_pkey=series_pkey,
                    imageset_pkey=imageset_pkey,
                    sopinstanceuid=f"{series_uid}.1",
                    sopclassuid="1.2.840.10008.5.1.4.1.1.2",
                    rows=512,
                )
            )


def _found(engine: Engine, level: Level, parameters: dict[str, str], tag: str = "0020000D"):
    reader = IndexReader(engine, detect_layout(engine), scope="local")
    page = reader.search(parse_search(level, list(parameters.items())))
    return sorted(dataset[tag]["Value"][0] for dataset in page.datasets)


@pytest.mark.parametrize(
    ("parameters", "utf8mb4", "latin1"),
    [
        ({"PatientName": "*ü*"}, ["1.1"], ["1.1"]),
        ({"PatientName": "müller^jürgen"}, ["1.1"], ["1.1"]),
        ({"PatientName": "mul*"}, ["1.2"], ["1.2"]),
        ({"PatientName": "山田*"}, ["1.3"], []),
        ({"PatientName": "Doe^John"}, ["1.3"], []),
        ({"PatientName": "Doe^John=山田^太郎"}, ["1.3"], []),
        ({"PatientName": "Wang^XiaoDong=王^小東"}, ["1.4"], []),
        ({"PatientName": "王^小東"}, ["1.4"], []),
        ({"AccessionNumber": "A1"}, ["1.1"], ["1.1"]),
        ({"AccessionNumber": "a*"}, ["1.3"], []),
        ({"StudyDescription": "köpf"}, [], []),
        ({"ModalitiesInStudy": "ct"}, ["1.1"], ["1.1"]),
        ({"PatientID": "山"}, [], []),
        ({"ModalitiesInStudy": "None"}, [], []),  # its indexer's text for an empty value
        ({"StudyDescription": "None"}, [], []),
        # Not 9.9, another datastore's; not 8.8, without instances.
        ({}, ["1.1", "1.2", "1.3", "1.4"], ["1.1", "1.2"]),
        ({"PatientName": "Half*"}, [], []),
    ],
)
def test_matching_is_exact_whatever_the_collation(crafted, parameters, utf8mb4, latin1):
    charset, engine = crafted
    assert _found(engine, Level.STUDY, parameters) == (utf8mb4 if charset == "utf8mb4" else latin1)


def test_text_its_indexer_wrote_for_nothing_is_not_returned(crafted):
    _, engine = crafted
    reader = IndexReader(engine, detect_layout(engine), scope="local")
    studies = reader.search(parse_search(Level.STUDY, [("includefield", "all")])).datasets
    by_uid = {study["0020000D"]["Value"][0]: study for study in studies}
    assert by_uid["1.1"]["00081030"] == {"vr": "LO", "Value": ["Kopf"]}  # includefield=all
    assert "00081030" not in by_uid["1.2"]  # 'None': empty
    assert sorted(by_uid["1.1"]["00080061"]["Value"]) == ["CT", "ct"]
    assert by_uid["1.2"]["00080061"]["Value"] == ["MR"]  # not its 'None'
    series = reader.search(parse_search(Level.SERIES, [("StudyInstanceUID", "1.2")])).datasets
    numbers = [s.get("00200011") for s in series]  # 'None' and '' are no numbers
    assert numbers == [{"vr": "IS"}, {"vr": "IS"}, {"vr": "IS", "Value": [3]}]
    assert _found(engine, Level.SERIES, {"SeriesNumber": "0"}, "0020000E") == []
    assert _found(engine, Level.SERIES, {"SeriesNumber": "2"}, "0020000E") == ["1.1.2"]


def test_uids_no_index_holds_are_not_found_without_a_query(crafted):
    _, engine = crafted
    resolver = Resolver(
        LocalStore(Path("/nonexistent"), "local"), IndexReader(engine, detect_layout(engine))
    )
    with pytest.raises(NotFound):
        resolver.plan("山田")
    with pytest.raises(NotFound):
        resolver.plan("1." * 40)


def test_lambda_handler_ignores_the_events_of_a_read_only_datastore(
    metadata_index, tmp_path, monkeypatch, caplog
):
    """A metadata-index datastore beside one of ours: the handler indexes the events of ours
    and ignores the others (its own indexer has them), rather than failing them all."""
    image_set_id = next(LocalStore(metadata_index.data_dir / "store", "local").list_image_sets())
    monkeypatch.setenv("DICOMWEB_PROXY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(
        "DICOMWEB_PROXY_DATASTORES",
        json.dumps({"mi": {"database_url": metadata_index.reader_url, "datastore_id": "mi"}}),
    )
    store_dir = tmp_path / "store" / "local"
    shutil.copytree(metadata_index.data_dir / "store" / "local", store_dir)
    ahi_events._lambda_datastores.cache_clear()
    caplog.set_level("INFO", logger="dicomweb_proxy.ingest.ahi_events")
    batch = {
        "Records": [
            {"messageId": f"m{n}", "body": json.dumps(_event(datastore, image_set_id.image_set_id))}
            for n, datastore in enumerate(("local", "mi"))
        ]
    }
    try:
        assert ahi_events.handler(batch, None) == {"batchItemFailures": []}
    finally:
        for services in ahi_events._lambda_datastores().values():
            services.close()
        ahi_events._lambda_datastores.cache_clear()
    outcomes = [
        record.getMessage().split(": ", 1)[1]
        for record in caplog.records
        if record.name == ahi_events.log.name
    ]
    assert outcomes == ["indexed", "ignored: datastore mi"]


def _event(datastore_id: str, image_set_id: str) -> dict:
    return {
        "source": "aws.medical-imaging",
        "detail-type": "Image Set Created",
        "detail": {"datastoreId": datastore_id, "imageSetId": image_set_id},
    }
