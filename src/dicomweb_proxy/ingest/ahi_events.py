"""AHI image-set events → index updates: the SQS-triggered Lambda handler and ``index event``.

AHI publishes image-set changes on EventBridge: source ``aws.medical-imaging``, detail-type
``Image Set Created`` (``Updated``, ``Copied``, ``Deleted``, ...) and a detail naming
``datastoreId`` and ``imageSetId``. An EventBridge rule sends them to an SQS queue whose
messages trigger :func:`handler`. An event only says which image set changed: the handler
reconciles that image set with what AHI holds now (:func:`ahi_sync.reconcile`), so events may
come late, twice or out of order. Failed messages are reported as ``batchItemFailures`` (enable
ReportBatchItemFailures on the trigger) so SQS redelivers only those.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ..config import ENV_PREFIX, ConfigError, load_settings
from ..services import Services, open_datastores
from ..stores.base import ImageSetStore, StoreError
from .ahi_sync import reconcile

log = logging.getLogger(__name__)

SOURCE = "aws.medical-imaging"
LAMBDA_DATA_DIR = "/tmp/dicomweb-proxy"
#: Detail types that end a change; the in-between ones (Updating, Copying, ...) are skipped.
HANDLED = frozenset(
    {"Image Set Created", "Image Set Updated", "Image Set Copied", "Image Set Deleted"}
)


@dataclass(frozen=True)
class EventResult:
    message_id: str | None  # the SQS message, when the event came in one
    image_set_id: str | None
    outcome: str  # indexed, removed, unchanged, "ignored: why" or "failed: why"

    @property
    def failed(self) -> bool:
        return self.outcome.startswith("failed")


def handle_events(document: Any, store: ImageSetStore, engine: Engine) -> list[EventResult]:
    """Apply every event in *document*: an SQS batch (``Records``), one EventBridge event, or
    a list of either."""
    return [_handle(message_id, event, store, engine) for message_id, event in _events(document)]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry point. Settings come from the environment: DICOMWEB_PROXY_STORE=ahi,
    DICOMWEB_PROXY_DATASTORE_ID, DB_SECRET_ARN (or DICOMWEB_PROXY_DATABASE_URL); the region
    from AWS_DEFAULT_REGION, which Lambda sets. With several datastores configured
    (DICOMWEB_PROXY_DATASTORES, docs/datastores.md) each event goes to the one it names."""
    datastores = _lambda_datastores()
    results = [
        _handle(message_id, item, *_target(datastores, item)) for message_id, item in _events(event)
    ]
    for result in results:
        log.info("image set %s: %s", result.image_set_id, result.outcome)
    unnamed = [result for result in results if result.failed and result.message_id is None]
    if unnamed:  # not from SQS: fail the invocation so Lambda retries it
        raise RuntimeError("; ".join(result.outcome for result in unnamed))
    return {
        "batchItemFailures": [
            {"itemIdentifier": result.message_id} for result in results if result.failed
        ]
    }


@cache
def _lambda_datastores() -> dict[str, Services]:
    """Opened on the first invocation and kept while Lambda keeps the container warm. The data
    folder defaults to /tmp, the only place Lambda can write."""
    logging.getLogger("dicomweb_proxy").setLevel(logging.INFO)
    data_dir = os.environ.get(ENV_PREFIX + "DATA_DIR") or LAMBDA_DATA_DIR
    datastores = open_datastores(load_settings({"data_dir": data_dir}), maintenance=True)
    writable = {}
    for name, services in datastores.items():
        if services.reader.layout.writable:
            writable[name] = services
        else:  # kept by its own indexer: its events are ignored here
            services.close()
    if not writable:
        raise ConfigError(
            "cannot apply image-set events: every configured datastore's index holds the"
            " metadata-index layout, which its own indexer keeps"
        )
    return writable


def _target(datastores: dict[str, Services], event: Any) -> tuple[ImageSetStore, Engine]:
    """The store and index of the datastore the event names; the default one's (which ignores
    it, naming the datastore) when none is configured."""
    detail = event.get("detail") if isinstance(event, dict) else None
    named = detail.get("datastoreId") if isinstance(detail, dict) else None
    # (A datastore on a read-only index is not among them: its events are ignored, by name.)
    chosen = next(
        (s for s in datastores.values() if s.store.datastore_id == named),
        next(iter(datastores.values())),
    )
    return chosen.store, chosen.index


def _events(document: Any) -> Iterator[tuple[str | None, Any]]:
    if isinstance(document, list):
        for item in document:
            yield from _events(item)
    elif isinstance(document, dict) and "Records" in document:
        for record in document["Records"]:
            try:
                yield record.get("messageId"), orjson.loads(record.get("body") or "null")
            except orjson.JSONDecodeError:
                yield record.get("messageId"), None
    else:
        yield None, document


def _handle(
    message_id: str | None, event: Any, store: ImageSetStore, engine: Engine
) -> EventResult:
    if not isinstance(event, dict) or event.get("source") != SOURCE:
        return EventResult(message_id, None, "ignored: not an AWS HealthImaging event")
    detail = event.get("detail") or {}
    image_set_id = detail.get("imageSetId")
    if event.get("detail-type") not in HANDLED:
        return EventResult(message_id, image_set_id, f"ignored: {event.get('detail-type')}")
    if not image_set_id:
        return EventResult(message_id, None, "ignored: the event names no imageSetId")
    if detail.get("datastoreId") != store.datastore_id:
        return EventResult(
            message_id, image_set_id, f"ignored: datastore {detail.get('datastoreId')}"
        )
    try:
        outcome = reconcile(store, engine, image_set_id)
    except (StoreError, DBAPIError) as error:  # transient: let SQS deliver it again
        return EventResult(message_id, image_set_id, f"failed: {error}")
    return EventResult(message_id, image_set_id, outcome.value)
