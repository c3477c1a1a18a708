"""AHI image-set events (EventBridge through SQS) keep the index equal to the datastore."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from dicomweb_proxy.cli import main
from dicomweb_proxy.index.database import create_index_engine
from dicomweb_proxy.ingest import ahi_events
from dicomweb_proxy.ingest.ahi_events import handle_events
from dicomweb_proxy.ingest.ahi_sync import sync_index
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.stores.ahi import AhiStore

from .ahi_fixtures import DATASTORE, REGION, AhiSource, index_snapshot


def event(detail_type: str, image_set_id: str, datastore_id: str = DATASTORE) -> dict[str, Any]:
    """An AHI event as EventBridge delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.medical-imaging",
        "account": "000000000000",
        "time": "2025-01-01T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "imagingVersion": "1.0",
            "datastoreId": datastore_id,
            "imageSetId": image_set_id,
            "imageSetState": "ACTIVE",
        },
    }


def sqs_batch(*events: Any) -> dict[str, Any]:
    """What an SQS trigger hands the Lambda function."""
    return {
        "Records": [
            {"messageId": f"m{number}", "body": body if isinstance(body, str) else json.dumps(body)}
            for number, body in enumerate(events)
        ]
    }


@pytest.fixture(scope="session")
def new_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("event-series")
    return generate_ct_series(folder, n_studies=1, slices=4, size=64, seed=12)


def outcomes(results) -> list[str]:
    return [result.outcome for result in results]


def test_events_follow_creates_updates_copies_and_deletes(
    ahi_source: AhiSource, ahi_store: AhiStore, proxy_index: Engine, new_series: list[Path]
):
    sync_index(ahi_store, proxy_index)
    ahi_source.import_files(new_series[:2])
    created = {s.image_set_id for s in ahi_source.store.list_image_sets()} - set(
        index_snapshot_ids(proxy_index)
    )
    (image_set_id,) = created
    batch = sqs_batch(event("Image Set Created", image_set_id))
    assert outcomes(handle_events(batch, ahi_store, proxy_index)) == ["indexed"]
    assert outcomes(handle_events(batch, ahi_store, proxy_index)) == ["unchanged"]  # redelivery
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)

    ahi_source.import_files(new_series[2:])
    assert outcomes(
        handle_events(event("Image Set Updated", image_set_id), ahi_store, proxy_index)
    ) == ["indexed"]
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)

    def describe(metadata):
        metadata["Study"]["DICOM"]["StudyDescription"] = "Copied into"
        return metadata

    ahi_source.update_metadata(image_set_id, describe)
    copied = handle_events([event("Image Set Copied", image_set_id)], ahi_store, proxy_index)
    assert outcomes(copied) == ["indexed"]
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)

    ahi_source.delete(image_set_id)
    late = sqs_batch(
        event("Image Set Deleted", image_set_id),
        event("Image Set Updated", image_set_id),  # out of order: must not bring it back
    )
    assert outcomes(handle_events(late, ahi_store, proxy_index)) == ["removed", "unchanged"]
    assert index_snapshot(proxy_index) == index_snapshot(ahi_source.index)


def index_snapshot_ids(engine: Engine) -> list[str]:
    return [dict(row)["imagesetid"] for row in index_snapshot(engine)["imageset"]]


def test_other_events_are_ignored(ahi_source: AhiSource, ahi_store: AhiStore, proxy_index: Engine):
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    batch = sqs_batch(
        event("Image Set Updating", image_set_id),
        event("Image Set Created", image_set_id, datastore_id="f" * 32),
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
        "not json",
        {**event("Image Set Created", image_set_id), "detail": {"datastoreId": DATASTORE}},
    )
    results = handle_events(batch, ahi_store, proxy_index)
    assert all(outcome.startswith("ignored") for outcome in outcomes(results)), outcomes(results)
    assert index_snapshot_ids(proxy_index) == []


def test_lambda_handler_reports_failed_messages_for_redelivery(
    ahi_source: AhiSource, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("DICOMWEB_PROXY_STORE", "ahi")
    monkeypatch.setenv("DICOMWEB_PROXY_DATASTORE_ID", DATASTORE)
    monkeypatch.setenv("DICOMWEB_PROXY_DATA_DIR", str(tmp_path / "lambda"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_MEDICAL_IMAGING", ahi_source.url)
    ahi_events._lambda_datastores.cache_clear()
    ids = [s.image_set_id for s in ahi_source.store.list_image_sets()][:3]
    ahi_source.faults(
        errors=[{"error": "AccessDeniedException", "operations": ["GetImageSetMetadata"]}]
    )
    batch = sqs_batch(*(event("Image Set Created", image_set_id) for image_set_id in ids))
    try:
        answer = ahi_events.handler(batch, None)
        assert answer == {"batchItemFailures": [{"itemIdentifier": f"m{n}"} for n in range(3)]}
        ahi_source.faults()
        assert ahi_events.handler(batch, None) == {"batchItemFailures": []}
        with pytest.raises(RuntimeError, match="AccessDenied"):
            ahi_source.faults(errors=[{"error": "AccessDeniedException"}])
            ahi_events.handler(event("Image Set Updated", "a" * 32), None)
    finally:
        for services in ahi_events._lambda_datastores().values():
            services.close()
        ahi_events._lambda_datastores.cache_clear()
    engine = create_index_engine(f"sqlite:///{tmp_path / 'lambda' / 'index.sqlite'}")
    assert sorted(index_snapshot_ids(engine)) == sorted(ids)
    engine.dispose()


def test_index_event_command(ahi_source: AhiSource, tmp_path: Path, capsys):
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    events_file = tmp_path / "events.json"
    events_file.write_text(json.dumps(event("Image Set Created", image_set_id)))
    args = ["index", "event", str(events_file), "--data-dir", str(tmp_path / "proxy")]
    args += ["--store", "ahi", "--datastore-id", DATASTORE, "--ahi-endpoint-url", ahi_source.url]
    assert main(args) == 0
    assert capsys.readouterr().out == f"image set {image_set_id}: indexed\n"
    assert main([*args[:2], str(tmp_path / "missing.json"), *args[3:]]) == 1


def test_lambda_handler_routes_each_event_to_the_datastore_it_names(
    ahi_source: AhiSource, tmp_path: Path, monkeypatch, caplog
):
    """Two datastores configured: an event of the second goes to its index, not ignored by
    the default one; an event of a datastore not configured is ignored."""
    second = "f" * 32
    monkeypatch.setenv("DICOMWEB_PROXY_STORE", "ahi")
    monkeypatch.setenv("DICOMWEB_PROXY_DATASTORE_ID", DATASTORE)
    monkeypatch.setenv("DICOMWEB_PROXY_DATA_DIR", str(tmp_path / "lambda"))
    monkeypatch.setenv(
        "DICOMWEB_PROXY_DATASTORES", json.dumps({"second": {"datastore_id": second}})
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_MEDICAL_IMAGING", ahi_source.url)
    ahi_events._lambda_datastores.cache_clear()
    image_set_id = next(ahi_source.store.list_image_sets()).image_set_id
    batch = sqs_batch(
        event("Image Set Created", image_set_id),
        event("Image Set Deleted", image_set_id, datastore_id=second),
        event("Image Set Created", image_set_id, datastore_id="e" * 32),
    )
    caplog.set_level("INFO", logger="dicomweb_proxy.ingest.ahi_events")
    try:
        assert ahi_events.handler(batch, None) == {"batchItemFailures": []}
    finally:
        for services in ahi_events._lambda_datastores().values():
            services.close()
        ahi_events._lambda_datastores.cache_clear()
    outcomes = [record.getMessage().split(": ", 1)[1] for record in caplog.records]
    assert outcomes[0] == "indexed"
    assert not outcomes[1].startswith("ignored")  # the second datastore's index handled it
    assert outcomes[2] == f"ignored: datastore {'e' * 32}"
    engine = create_index_engine(f"sqlite:///{tmp_path / 'lambda' / 'index.sqlite'}")
    assert index_snapshot_ids(engine) == [image_set_id]
    engine.dispose()
