"""Fixtures for the AHI suites (tests/test_ahi_*.py): a datastore served by the AHI emulator.
A suite imports the ``*_fixture`` functions it needs; they are registered under these names.

``aws_env``
    Fake AWS credentials and region in the environment (boto3 signs every request), and no
    AWS settings of the machine.
``ahi_source``
    A function-scoped :class:`AhiSource`: the sample studies imported with the real importer
    into a local store under datastore id :data:`DATASTORE` (its own SQLite index beside it,
    the "expected" index), served by the emulator at ``source.url``.
``ahi_store``
    An :class:`~dicomweb_proxy.stores.ahi.AhiStore` on that emulator with quick retries.

:func:`ahi_server` runs the real ``serve --store ahi`` on an emulated datastore.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, MetaData, select

from ahi_emulator import running_emulator
from dicomweb_proxy.cli import main
from dicomweb_proxy.index.database import create_index_engine, run_write, upgrade_schema
from dicomweb_proxy.index.writer import index_image_set, remove_image_set
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.samples import generate_sample_studies
from dicomweb_proxy.stores.ahi import AhiStore, RetryPolicy, create_client
from dicomweb_proxy.stores.local import LocalStore

from .live_server import live_server

DATASTORE = "0123456789abcdef0123456789abcdef"
REGION = "us-east-1"
AHI_FLAGS = ("--store", "ahi", "--datastore-id", DATASTORE, "--aws-region", REGION)
QUICK_RETRY = RetryPolicy(attempts=6, base_delay=0.005, max_delay=0.05, budget=10.0)
_VOLATILE = ("updated_at", "created_at")


@dataclass
class AhiSource:
    """The emulator's side: its data folder, local store, expected index and endpoint."""

    data_dir: Path
    store: LocalStore
    index: Engine
    url: str

    def faults(self, **faults: Any) -> None:
        """Replace the emulator's faults: faults(errors=[...], latency={...})."""
        httpx.post(f"{self.url}/_emulator/faults", json=faults).raise_for_status()

    def calls(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/_emulator/calls").json()

    def import_files(self, files: list[Path]) -> None:
        Importer(self.store, self.index, workers=1).run(files)

    def update_metadata(self, image_set_id: str, change) -> int:
        """Write a new version with *change(metadata)* applied (as UpdateImageSetMetadata
        does) and index it in the expected index; return the new version."""
        metadata = change(self.store.get_image_set_metadata(image_set_id))
        version = self.store.put_image_set(image_set_id, metadata, {}).version
        run_write(
            self.index,
            lambda connection: index_image_set(
                connection,
                datastore_id=DATASTORE,
                image_set_id=image_set_id,
                version=version,
                metadata=metadata,
            ),
        )
        return version

    def delete(self, image_set_id: str) -> None:
        self.store.delete_image_set(image_set_id)
        self.forget(image_set_id)

    def forget(self, image_set_id: str) -> None:
        """Drop an image set from the expected index (after it was deleted through AHI)."""
        run_write(
            self.index,
            lambda connection: remove_image_set(
                connection, datastore_id=DATASTORE, image_set_id=image_set_id
            ),
        )


@contextmanager
def ahi_server(
    source: AhiSource, data_dir: Path, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """``index sync`` then ``serve --store ahi`` (data folder *data_dir*, environment *env*
    added) on *source*'s datastore; yields the server's DICOMweb base URL."""
    flags = [*AHI_FLAGS, "--ahi-endpoint-url", source.url]
    assert main(["index", "sync", "--data-dir", str(data_dir), *flags]) == 0
    with live_server(data_dir, *flags, env=env) as base:
        yield base


@pytest.fixture(name="aws_env")
def aws_env_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_MEDICAL_IMAGING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(name="ahi_sample_files", scope="session")
def ahi_sample_files_fixture(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_sample_studies(tmp_path_factory.mktemp("ahi-samples"))


@pytest.fixture(name="ahi_source")
def ahi_source_fixture(
    tmp_path: Path, ahi_sample_files: list[Path], aws_env: None
) -> Iterator[AhiSource]:
    data_dir = tmp_path / "emulated"
    store = LocalStore(data_dir / "store", DATASTORE, durable=False)
    index = create_index_engine(f"sqlite:///{data_dir / 'index.sqlite'}")
    upgrade_schema(index)
    Importer(store, index, workers=1).run(ahi_sample_files)
    try:
        with running_emulator(data_dir) as url:
            yield AhiSource(data_dir, store, index, url)
    finally:
        index.dispose()


@pytest.fixture(name="ahi_store")
def ahi_store_fixture(ahi_source: AhiSource) -> AhiStore:
    return AhiStore(create_client(REGION, ahi_source.url), DATASTORE, retry=QUICK_RETRY)


@pytest.fixture(name="proxy_index")
def proxy_index_fixture(tmp_path: Path) -> Iterator[Engine]:
    """The proxy's own (SQLite) index, which sync and the event handler keep equal to AHI."""
    engine = create_index_engine(f"sqlite:///{tmp_path / 'proxy-index.sqlite'}")
    upgrade_schema(engine)
    yield engine
    engine.dispose()


def index_snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every index row without surrogate keys and timestamps, foreign keys replaced by the
    natural keys they point at: equal snapshots mean equal indexes."""
    tables = MetaData()
    tables.reflect(engine)
    natural = {
        "issuer": "issuerofpatientid",
        "patient": "patientid",
        "study": "studyinstanceuid",
        "series": "seriesinstanceuid",
        "instance": "sopinstanceuid",
        "imageset": "imagesetid",
    }
    snapshot = {}
    with engine.connect() as connection:
        keys = {
            name: dict(connection.execute(select(table.c[f"{name}_pkey"], table.c[column])).all())
            for name, column in natural.items()
            if (table := tables.tables.get(name)) is not None
        }
        for name in ("patient", "study", "series", "instance", "imageset", "frame", "conflict"):
            table = tables.tables[name]
            rows = []
            for row in connection.execute(select(table)).mappings():
                rows.append(
                    tuple(
                        (column, keys[column[: -len("_pkey")]].get(value))
                        if column.endswith("_pkey") and column[: -len("_pkey")] in keys
                        else (column, value)
                        for column, value in row.items()
                        if column != f"{name}_pkey" and column not in _VOLATILE
                    )
                )
            snapshot[name] = sorted(rows, key=repr)
    return snapshot
