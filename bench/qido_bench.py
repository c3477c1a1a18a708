"""QIDO-RS latency over HTTP on a large synthetic index: SQLite, PostgreSQL, MariaDB, and
MariaDB holding the companion metadata-index layout (served read-only, docs/ahi.md).

Builds an index of --studies studies (one patient each, two series of --instances instances,
plus one study with a series of 500 instances) by bulk-inserting synthetic rows straight into
the schema tables (for the metadata-index layout, its own tables as tests/metadata_index_db.py
defines them, with the columns it has), starts the real server (one worker) on it and times
sequential searches with a keep-alive client: median and p95 per query, in milliseconds. Goals:
every search under 20 ms median, the 500 instances of a series under 50 ms.

    .venv/bin/python bench/qido_bench.py [--studies 10000] [--instances 25] [--repeat 60]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--no-postgres]
        [--mariadb mysql+pymysql://root@127.0.0.1:3306/test] [--no-mariadb]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from datetime import time as clock
from pathlib import Path

import httpx
import orjson
from sqlalchemy import MetaData, String, create_engine, insert, text
from sqlalchemy.engine import Connection, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dicomweb_proxy.dicom.dicom_json import to_dicom_json
from dicomweb_proxy.index import schema
from dicomweb_proxy.index.database import create_index_engine, upgrade_schema
from tests import metadata_index_db
from tests.live_server import live_server

FAMILY = (
    "Smith",
    "Müller",
    "García",
    "Nuñez",
    "Øvrebø",
    "Öztürk",
    "Yamada",
    "Suzuki",
    "Kowalski",
    "Novák",
    "Rossi",
    "Dubois",
    "Jensen",
    "Virtanen",
    "Silva",
    "Fernández",
    "Schmidt",
    "Fischer",
    "Weber",
    "Nagy",
    "Horváth",
    "Ivanov",
    "Kim",
    "Chen",
    "Nguyen",
    "Singh",
    "Patel",
    "Cohen",
    "O'Brien",
    "Kelly",
    "Brown",
    "Taylor",
)
GIVEN = (
    "Anna",
    "Jürgen",
    "José",
    "Åse",
    "Ayşe",
    "Tarou",
    "Maria",
    "John",
    "Elena",
    "Luca",
    "Sofia",
    "Noah",
    "Olga",
    "Mei",
    "Hana",
    "Lars",
    "Claire",
    "Hans",
    "Zofia",
    "Priya",
    "Sean",
    "Aoife",
)
STUDY_KINDS = (("CT", "SR"), ("CT", "CT"), ("MR", "MR"), ("US", "SR"), ("CR", "CR"), ("DX", "PR"))
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DATES = (date(2015, 1, 1), 3650)  # first day, days spanned


def uid(*parts: int) -> str:
    return "1.2.826.0.1.3680043.10.1234." + ".".join(map(str, parts))


# --- building the index ----------------------------------------------------------------------


def build(connection: Connection, studies: int, instances: int, tables: MetaData) -> dict:
    """Insert the synthetic rows into *tables* (ours or the metadata-index layout's); return
    UIDs the queries use."""
    rng = random.Random(7)
    rows = {table: [] for table in ("patient", "study", "series", "imageset", "instance")}
    connection.execute(
        insert(tables.tables["issuer"]), [{"issuer_pkey": 1, "issuerofpatientid": "BENCH"}]
    )
    series_pkey = instance_pkey = 0
    big = {}
    for number in range(1, studies + 2):
        family, given = rng.choice(FAMILY), rng.choice(GIVEN)
        name = f"{family}^{given}"
        birth = date(1930, 1, 1) + timedelta(days=rng.randrange(30000))
        day = DATES[0] + timedelta(days=rng.randrange(DATES[1]))
        when = clock(rng.randrange(7, 20), rng.randrange(60), rng.randrange(60))
        kinds = STUDY_KINDS[number % len(STUDY_KINDS)]
        study_uid = uid(number)
        patient_attributes = {
            "PatientName": name,
            "PatientID": f"PID{number:07d}",
            "PatientBirthDate": birth.strftime("%Y%m%d"),
            "PatientSex": "MF"[number % 2],
        }
        study_attributes = {
            **patient_attributes,
            "StudyInstanceUID": study_uid,
            "StudyDate": day.strftime("%Y%m%d"),
            "StudyTime": when.strftime("%H%M%S"),
            "AccessionNumber": f"ACC{number:07d}",
            "StudyID": str(number),
            "StudyDescription": f"{kinds[0]} examination",
            "ReferringPhysicianName": f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}",
        }
        rows["patient"].append(
            {
                "patient_pkey": number,
                "issuer_pkey": 1,
                "patientid": f"PID{number:07d}",
                "patientname": name,
                "patientname_norm": schema.normalize_person_name(name),
                "patientbirthdate": birth,
                "patientsex": "MF"[number % 2],
                "attributes": _json(patient_attributes),
            }
        )
        counts = [500] if number > studies else [instances] * len(kinds)
        rows["study"].append(
            {
                "study_pkey": number,
                "patient_pkey": number,
                "studyinstanceuid": study_uid,
                "accessionnumber": f"ACC{number:07d}",
                "studyid": str(number),
                "studydate": day,
                "studytime": when,
                "studydescription": f"{kinds[0]} examination",
                "referringphysicianname": study_attributes["ReferringPhysicianName"],
                "referringphysicianname_norm": schema.normalize_person_name(
                    study_attributes["ReferringPhysicianName"]
                ),
                "numberofstudyrelatedseries": len(counts),
                "numberofstudyrelatedinstances": sum(counts),
                "modalitiesinstudy": "\\".join(sorted(set(kinds[: len(counts)]))),
                "sopclassesinstudy": CT_IMAGE,
                "attributes": _json(study_attributes),
            }
        )
        for index, count in enumerate(counts, start=1):
            series_pkey += 1
            series_uid = uid(number, index)
            modality = kinds[index - 1]
            series_attributes = {
                "SeriesInstanceUID": series_uid,
                "Modality": modality,
                "SeriesNumber": str(index),
                "SeriesDescription": f"{modality} series {index}",
                "SeriesDate": day.strftime("%Y%m%d"),
                "BodyPartExamined": "CHEST",
                "Manufacturer": "Bench Imaging",
                "InstitutionName": "Bench Hospital",
            }
            rows["series"].append(
                {
                    "series_pkey": series_pkey,
                    "study_pkey": number,
                    "seriesinstanceuid": series_uid,
                    "modality": modality,
                    "seriesnumber": index,
                    "seriesdescription": series_attributes["SeriesDescription"],
                    "bodypartexamined": "CHEST",
                    "manufacturer": "Bench Imaging",
                    "institutionname": "Bench Hospital",
                    "seriesdate": day,
                    "numberofseriesrelatedinstances": count,
                    "attributes": _json(series_attributes),
                }
            )
            rows["imageset"].append(
                {
                    "imageset_pkey": series_pkey,
                    "series_pkey": series_pkey,
                    "imagesetid": f"{series_pkey:032x}",
                    "datastoreid": "local",
                    "version": 1,
                    "isprimary": True,
                }
            )
            for instance_number in range(1, count + 1):
                instance_pkey += 1
                sop_uid = uid(number, index, instance_number)
                rows["instance"].append(
                    {
                        "instance_pkey": instance_pkey,
                        "series_pkey": series_pkey,
                        "imageset_pkey": series_pkey,
                        "sopinstanceuid": sop_uid,
                        "sopclassuid": CT_IMAGE,
                        "instancenumber": instance_number,
                        "rows": 512,
                        "columns": 512,
                        "bitsallocated": 16,
                        "photometricinterpretation": "MONOCHROME2",
                        "attributes": _instance_json(sop_uid, instance_number),
                    }
                )
            if number > studies:
                big = {"study": study_uid, "series": series_uid}
        if len(rows["instance"]) >= 20000:
            _flush(connection, rows, tables)
    _flush(connection, rows, tables)
    return big


def _flush(connection: Connection, rows: dict[str, list], tables: MetaData) -> None:
    """Insert the rows, keeping the columns the table has (integers as text where it keeps
    them so: the metadata-index layout's seriesnumber)."""
    for name in ("patient", "study", "series", "imageset", "instance"):
        if rows[name]:
            table = tables.tables[name]
            kept = [
                {
                    key: str(value) if isinstance(table.c[key].type, String) else value
                    for key, value in row.items()
                    if key in table.c
                }
                for row in rows[name]
            ]
            connection.execute(insert(table), kept)
            rows[name].clear()


def _json(attributes: dict) -> str:
    return orjson.dumps(to_dicom_json(attributes)).decode()


_INSTANCE_TEMPLATE = _json(
    {
        "SOPClassUID": CT_IMAGE,
        "SOPInstanceUID": "@UID@",
        "InstanceNumber": "@NUMBER@",
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "ImagePositionPatient": ["-250", "-250", "@NUMBER@"],
        "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"],
        "SliceThickness": "2.5",
        "PixelSpacing": ["0.976562", "0.976562"],
        "Rows": 512,
        "Columns": 512,
        "BitsAllocated": 16,
        "BitsStored": 12,
        "HighBit": 11,
        "PixelRepresentation": 0,
        "PhotometricInterpretation": "MONOCHROME2",
        "RescaleIntercept": "-1024",
        "RescaleSlope": "1",
        "WindowCenter": "40",
        "WindowWidth": "400",
    }
).replace('"@NUMBER@"', "@NUMBER@")


def _instance_json(sop_uid: str, number: int) -> str:
    return _INSTANCE_TEMPLATE.replace("@UID@", sop_uid).replace("@NUMBER@", str(number))


# --- measuring ---------------------------------------------------------------------------------


def queries(big: dict, studies: int) -> list[tuple[str, list[str]]]:
    """(name, URL paths to cycle through) of each measured search."""
    numbers = random.Random(3).sample(range(1, studies + 1), 20)
    months = [f"2019{month:02d}01-2019{month:02d}28" for month in range(1, 13)]
    return [
        ("all studies (limit 100)", ["/studies?limit=100"]),
        (
            "PatientName prefix 'Mü*'",
            [f"/studies?limit=100&PatientName={p}*" for p in ("Mü", "Nov", "Sch", "Kel", "Ya")],
        ),
        (
            "PatientName '*middle*'",
            [f"/studies?limit=100&PatientName=*{p}*" for p in ("ller", "ana", "osé", "ens")],
        ),
        ("StudyDate range (a month)", [f"/studies?limit=100&StudyDate={m}" for m in months]),
        (
            "ModalitiesInStudy",
            [f"/studies?limit=100&ModalitiesInStudy={m}" for m in ("MR", "US", "CR", "DX")],
        ),
        ("AccessionNumber exact", [f"/studies?AccessionNumber=ACC{n:07d}" for n in numbers]),
        ("series of a study", [f"/studies/{uid(n)}/series" for n in numbers]),
        (
            "instances of a series (500)",
            [f"/studies/{big['study']}/series/{big['series']}/instances"],
        ),
    ]


def measure(base: str, plan: list[tuple[str, list[str]]], repeat: int) -> list[tuple]:
    results = []
    with httpx.Client(timeout=30) as client:
        for name, paths in plan:
            for path in paths * 2:  # warm up
                client.get(base + path).raise_for_status()
            times, sizes = [], []
            for index in range(repeat):
                started = time.perf_counter()
                response = client.get(base + paths[index % len(paths)])
                times.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                sizes.append(len(response.json()))
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            results.append((name, statistics.median(times), p95, statistics.median(sizes)))
    return results


_SCRATCH = {
    "postgresql": (
        "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0",
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)",
    ),
    # The server's default collation, as a metadata-index database has it.
    "mysql": ("CREATE DATABASE {name} CHARACTER SET utf8mb4", "DROP DATABASE IF EXISTS {name}"),
}


@contextmanager
def scratch_database(url: str, name: str) -> Iterator[str]:
    """A new, empty database *name* on the PostgreSQL or MariaDB server of *url*."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    create, drop = _SCRATCH[admin.dialect.name]
    quoted = admin.dialect.identifier_preparer.quote(name)
    with admin.connect() as connection:
        connection.execute(text(drop.format(name=quoted)))
        connection.execute(text(create.format(name=quoted)))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(drop.format(name=quoted)))
        admin.dispose()


def run(
    label: str, url: str, data_dir: Path, args: argparse.Namespace, *, metadata_index: bool = False
) -> list[tuple]:
    engine = create_index_engine(url)
    if metadata_index:
        tables = metadata_index_db.metadata
        tables.create_all(engine)
    else:
        tables = schema.metadata
        upgrade_schema(engine)
    started = time.perf_counter()
    with engine.begin() as connection:
        big = build(connection, args.studies, args.instances, tables)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    elif engine.dialect.name == "mysql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE TABLE patient, study, series, imageset, instance"))
    else:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    engine.dispose()
    print(f"{label}: built in {time.perf_counter() - started:.1f} s", flush=True)
    with live_server(data_dir, database_url=url) as base:
        results = measure(base, queries(big, args.studies), args.repeat)
    # Other work on the machine shows in the figures: say how busy it was.
    print(f"{label}: load average after measuring {os.getloadavg()[0]:.1f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--instances", type=int, default=25, help="per series (2 per study)")
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306/test")
    parser.add_argument("--no-mariadb", action="store_true")
    args = parser.parse_args()
    total = args.studies * 2 * args.instances + 500
    print(f"{args.studies + 1} studies, {2 * args.studies + 1} series, {total} instances")
    work = Path(tempfile.mkdtemp(prefix="qido-bench-"))
    tables = {}
    try:
        sqlite_dir = work / "sqlite"
        sqlite_dir.mkdir()
        url = f"sqlite:///{sqlite_dir / 'index.sqlite'}"
        tables["SQLite"] = run("SQLite", url, sqlite_dir, args)
        servers = [("PostgreSQL", args.postgres, False)] if not args.no_postgres else []
        if not args.no_mariadb:
            servers += [("MariaDB", args.mariadb, False), ("metadata-index", args.mariadb, True)]
        for label, server, metadata_index in servers:
            folder = work / label
            folder.mkdir()
            with scratch_database(server, "dwp_qido_bench") as url:
                tables[label] = run(label, url, folder, args, metadata_index=metadata_index)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = list(tables)
    print(f"\n| query | results | {' | '.join(f'{n} median | {n} p95' for n in names)} |")
    print("|---|---:|" + "---:|---:|" * len(names))
    for index, (query, *_rest) in enumerate(next(iter(tables.values()))):
        cells = " | ".join(f"{tables[n][index][1]:.1f} | {tables[n][index][2]:.1f}" for n in names)
        print(f"| {query} | {tables[names[0]][index][3]:.0f} | {cells} |")
    print("\n(milliseconds, sequential requests over one keep-alive connection, 1 server worker)")


if __name__ == "__main__":
    main()
