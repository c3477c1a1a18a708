"""The sample studies imported once per database per test session, for suites that read them.

Fixtures (conftest.py makes them available to every test module):

``sample_files``
    The generated sample studies (5 patients with non-ASCII names, 65 instances) and pydicom's
    bundled test files, written once per session.
``imported_samples``
    :class:`ImportedSamples`: a data dir holding the store and an index database into which
    ``sample_files`` were imported with the real importer. Parametrized like ``index_url``
    (``[sqlite]``, ``[postgres]``, ``[mariadb]``, same marks and skip/fail policy), session
    scoped: each database is imported into once. Read-only: do not change what it holds.
``samples_server``
    The DICOMweb base URL of the real server (``dicomweb-proxy serve``) on ``imported_samples``,
    started once per database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.samples import generate_sample_studies
from dicomweb_proxy.services import open_services

from .live_server import live_server
from .pydicom_files import bundled_files


@dataclass(frozen=True)
class ImportedSamples:
    data_dir: Path
    database_url: str
    files: list[Path]  # the sample files the importer accepted (some bundled ones lack UIDs)


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_sample_studies(tmp_path_factory.mktemp("sample-files")) + bundled_files()


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def imported_samples(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sample_files: list[Path],
    sample_databases: Any,  # conftest.py
) -> ImportedSamples:
    data_dir = tmp_path_factory.mktemp(f"samples-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'index.sqlite'}"
    else:
        url = sample_databases.url(request.param).render_as_string(hide_password=False)
    services = open_services(load_settings({"data_dir": data_dir, "database_url": url}, environ={}))
    try:
        report = Importer(services.store, services.index).run(sample_files)
    finally:
        services.close()
    failed = {Path(failure.path) for failure in report.failures}
    return ImportedSamples(data_dir, url, [path for path in sample_files if path not in failed])


@pytest.fixture(scope="session")
def samples_server(imported_samples: ImportedSamples) -> Iterator[str]:
    with live_server(imported_samples.data_dir, database_url=imported_samples.database_url) as base:
        yield base


def url(ds: Any, level: str = "instance") -> str:
    """The path of *ds*'s study, series or instance below the DICOMweb base URL."""
    path = f"/studies/{ds.StudyInstanceUID}"
    if level in ("series", "instance"):
        path += f"/series/{ds.SeriesInstanceUID}"
    if level == "instance":
        path += f"/instances/{ds.SOPInstanceUID}"
    return path
