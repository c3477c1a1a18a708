"""The sample studies imported once per database per test session, for suites that read them.

Fixtures (conftest.py makes them available to every test module):

``sample_files``
    The generated sample studies (5 patients with non-ASCII names, 65 instances) and pydicom's
    bundled test files, written once per session.
``imported_samples``
    :class:`ImportedSamples`: a data dir holding the store and an index database into which
    ``sample_files`` were imported with the real importer. Parametrized like ``index_url``
    (``[sqlite]``, ``[postgres]``, ``[mariadb]``, same marks and skip/fail policy), plus
    ``[ahi]``: a SQLite index and a store whose datastore the AHI emulator serves. Session
    scoped: each is imported into once. Read-only: do not change what it holds.
``samples_server``
    The DICOMweb base URL of the real server (``dicomweb-proxy serve``) on ``imported_samples``,
    started once per param; for ``[ahi]`` with ``--store ahi`` reading the datastore through
    boto3 from the emulator (in a thread of the test process).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ahi_emulator import running_emulator
from dicomweb_proxy.config import load_settings
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.samples import generate_sample_studies
from dicomweb_proxy.services import open_services

from .ahi_fixtures import DATASTORE as AHI_DATASTORE
from .ahi_fixtures import REGION as AHI_REGION
from .live_server import live_server
from .pydicom_files import bundled_files


@dataclass(frozen=True)
class ImportedSamples:
    data_dir: Path
    database_url: str
    files: list[Path]  # the sample files the importer accepted (some bundled ones lack UIDs)
    datastore_id: str = "local"  # of the store under data_dir
    served_by_ahi: bool = False  # samples_server reads the store through the AHI emulator


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_sample_studies(tmp_path_factory.mktemp("sample-files")) + bundled_files()


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("ahi"),
    ],
)
def imported_samples(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sample_files: list[Path],
    sample_databases: Any,  # conftest.py
) -> ImportedSamples:
    data_dir = tmp_path_factory.mktemp(f"samples-{request.param}")
    if request.param in ("sqlite", "ahi"):
        url = f"sqlite:///{data_dir / 'index.sqlite'}"
    else:
        url = sample_databases.url(request.param).render_as_string(hide_password=False)
    served_by_ahi = request.param == "ahi"
    datastore_id = AHI_DATASTORE if served_by_ahi else "local"
    flags = {"data_dir": data_dir, "database_url": url, "datastore_id": datastore_id}
    services = open_services(load_settings(flags, environ={}))
    try:
        report = Importer(services.store, services.index).run(sample_files)
    finally:
        services.close()
    failed = {Path(failure.path) for failure in report.failures}
    files = [path for path in sample_files if path not in failed]
    return ImportedSamples(data_dir, url, files, datastore_id, served_by_ahi)


@pytest.fixture(scope="session")
def samples_server(imported_samples: ImportedSamples) -> Iterator[str]:
    if not imported_samples.served_by_ahi:
        with live_server(
            imported_samples.data_dir, database_url=imported_samples.database_url
        ) as base:
            yield base
        return
    proxy_dir = imported_samples.data_dir / "proxy"  # the server's own: its frame cache
    proxy_dir.mkdir(exist_ok=True)
    with (
        running_emulator(imported_samples.data_dir) as endpoint,
        live_server(
            proxy_dir,
            *("--store", "ahi", "--datastore-id", AHI_DATASTORE, "--aws-region", AHI_REGION),
            *("--ahi-endpoint-url", endpoint),
            database_url=imported_samples.database_url,
            env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        ) as base,
    ):
        yield base


def url(ds: Any, level: str = "instance") -> str:
    """The path of *ds*'s study, series or instance below the DICOMweb base URL."""
    path = f"/studies/{ds.StudyInstanceUID}"
    if level in ("series", "instance"):
        path += f"/series/{ds.SeriesInstanceUID}"
    if level == "instance":
        path += f"/instances/{ds.SOPInstanceUID}"
    return path
