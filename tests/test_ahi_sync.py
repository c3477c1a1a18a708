"""``index sync``: the index follows the AHI datastore through creates, updates and deletes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from dicomweb_proxy.cli import main
from dicomweb_proxy.index.database import create_index_engine
from dicomweb_proxy.index.schema import patient
from dicomweb_proxy.ingest.ahi_sync import indexed_versions, reconcile, sync_index
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.stores import ahi
from dicomweb_proxy.stores.ahi import AhiStore

from .ahi_fixtures import DATASTORE, REGION, AhiSource, index_snapshot


@pytest.fixture(scope="session")
def new_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six instances of one series that is not among the samples."""
    folder = tmp_path_factory.mktemp("new-series")
    return generate_ct_series(folder, n_studies=1, slices=6, size=64, seed=11)


def test_sync_indexes_creates_updates_and_deletes(
    ahi_source: AhiSource, ahi_store: AhiStore, proxy_index: Engine, new_series: list[Path]
):
    report = sync_index(ahi_store, proxy_index)
    assert (report.indexed, report.removed, report.unchanged, report.failures) == (9, 0, 0, [])
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)

    again = sync_index(ahi_store, proxy_index)
    assert (again.indexed, again.unchanged) == (0, 9)

    ahi_source.import_files(new_series[:3])  # a new image set
    assert sync_index(ahi_store, proxy_index).indexed == 1
    ahi_source.import_files(new_series[3:])  # its version 2
    assert sync_index(ahi_store, proxy_index).indexed == 1
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)

    renamed = next(ahi_source.store.list_image_sets()).image_set_id

    def rename(metadata):
        metadata["Patient"]["DICOM"]["PatientName"] = "Renamed^Patient"
        return metadata

    ahi_source.update_metadata(renamed, rename)
    deleted = [s.image_set_id for s in ahi_source.store.list_image_sets()][-2:]
    for image_set_id in deleted:
        ahi_store.delete_image_set(image_set_id)  # DeleteImageSet through the emulator
        ahi_source.forget(image_set_id)
    report = sync_index(ahi_store, proxy_index)
    assert (report.indexed, report.removed, report.unchanged) == (1, 2, 7)
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)
    assert "Renamed^Patient" in repr(index_snapshot(proxy_index)["patient"])
    assert indexed_versions(proxy_index, DATASTORE) == {
        s.image_set_id: s.version for s in ahi_source.store.list_image_sets()
    }


def test_sync_walks_every_page_and_rides_out_throttling(
    ahi_source: AhiSource, ahi_store: AhiStore, proxy_index: Engine, monkeypatch
):
    monkeypatch.setattr(ahi, "SEARCH_PAGE_SIZE", 4)
    ahi_source.faults(
        errors=[
            {"error": "ThrottlingException", "count": 3, "operations": ["SearchImageSets"]},
            {"error": "InternalServerException", "fraction": 0.2},
        ],
        latency={"GetImageSetMetadata": 0.02},
    )
    report = sync_index(ahi_store, proxy_index)
    assert (report.indexed, report.failures) == (9, [])
    assert ahi_source.calls()["SearchImageSets"] >= 3 + 3
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)


def test_sync_reports_image_sets_it_cannot_read(
    ahi_source: AhiSource, ahi_store: AhiStore, proxy_index: Engine
):
    ahi_source.faults(
        errors=[{"error": "AccessDeniedException", "operations": ["GetImageSetMetadata"]}]
    )
    report = sync_index(ahi_store, proxy_index)
    assert report.indexed == 0
    assert len(report.failures) == 9
    assert "AccessDeniedException" in report.failures[0][1]
    ahi_source.faults()
    assert sync_index(ahi_store, proxy_index).indexed == 9


def test_index_sync_command(ahi_source: AhiSource, tmp_path: Path, capsys):
    args = [
        "index",
        "sync",
        "--data-dir",
        str(tmp_path / "proxy"),
        "--store",
        "ahi",
        "--datastore",
        DATASTORE,
        "--aws-region",
        REGION,
        "--ahi-endpoint-url",
        ahi_source.url,
    ]
    assert main(args) == 0
    assert f"datastore {DATASTORE}: indexed 9, removed 0, unchanged 0" in capsys.readouterr().out
    assert main(args) == 0
    assert "indexed 0, removed 0, unchanged 9, failed 0" in capsys.readouterr().out
    engine = create_index_engine(f"sqlite:///{tmp_path / 'proxy' / 'index.sqlite'}")
    try:
        assert index_snapshot(engine) == index_snapshot(ahi_source.index)
    finally:
        engine.dispose()


def test_an_image_set_is_indexed_with_the_document_of_its_version(
    ahi_source: AhiSource, ahi_store: AhiStore, proxy_index: Engine
):
    """A listing is older than the update that follows it: the version listed is indexed
    with that version's document, which retrieves read by version too."""
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    listed = ahi_store.get_image_set(image_set_id)

    def rename(metadata: dict) -> dict:
        patient = {**metadata["Patient"]["DICOM"], "PatientName": "Changed^Name"}
        return {**metadata, "Patient": {"DICOM": patient}}

    ahi_source.update_metadata(image_set_id, rename)
    assert reconcile(ahi_store, proxy_index, image_set_id, summary=listed).value == "indexed"
    with proxy_index.connect() as connection:
        names = connection.scalars(select(patient.c.patientname)).all()
    assert "Changed^Name" not in names
    assert indexed_versions(proxy_index, DATASTORE, [image_set_id]) == {
        image_set_id: listed.version
    }
