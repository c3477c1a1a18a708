"""The AWS HealthImaging store: the store protocol over AHI's ``medical-imaging`` API (boto3).

Each call retries throttling, 5xx answers and dropped connections (body reads included) with
exponential backoff and full jitter inside a time budget, then gives up with StoreUnavailable,
which the HTTP layer answers 503 with Retry-After. The budget depends on who waits: a client's
request gets a few seconds (a thread held longer only queues the next requests behind it), index
maintenance the long default, prefetch one try. botocore's own retries are off so that the
budget, the retried body reads and the Retry-After hint are ours. Credentials come from the
standard AWS chain (environment, profile, container or instance role).
"""

from __future__ import annotations

import gzip
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .base import (
    FrameNotFound,
    ImageSetNotFound,
    ImageSetSummary,
    ReadOnlyStore,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: HTTP connections kept per client unless the caller says (services.open_store: one per store,
#: prefetch and health-check thread).
MAX_CONNECTIONS = 64
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
SEARCH_PAGE_SIZE = 50  # the API's maximum
_ID = re.compile(r"[0-9a-z]{32}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_THROTTLED = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "ServiceUnavailableException"}
)
_DENIED = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "UnauthorizedException",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long one store call may keep trying: at most *attempts* tries within *budget*
    seconds, sleeping a random time up to ``base_delay * 2**n`` (capped) between them."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0
    budget: float = 30.0

    def ceiling(self, retry: int) -> float:
        return min(self.max_delay, self.base_delay * 2**retry)

    def delay(self, retry: int) -> float:
        return random.uniform(0, self.ceiling(retry))


#: Index maintenance (sync, image-set events): no client waits, so the whole 30 s may be used.
MAINTENANCE_RETRY = RetryPolicy()
#: Prefetch is a guess: when AHI throttles, its rate is left to requests.
ONE_TRY = RetryPolicy(attempts=1)
#: Health checks: two quick tries, within the readiness probe's timeout.
CHECK_RETRY = RetryPolicy(attempts=2, budget=1.0)


def create_client(
    region: str,
    endpoint_url: str = "",
    *,
    max_connections: int = MAX_CONNECTIONS,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
) -> Any:
    """A thread-safe ``medical-imaging`` client. With *endpoint_url* (an emulator, a proxy) the
    ``runtime-`` host prefix is not added, or requests would go to ``runtime-<host>``."""
    config = Config(
        region_name=region,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_connections,
        retries={"mode": "standard", "total_max_attempts": 1},
        inject_host_prefix=not endpoint_url,
        user_agent_extra="dicomweb-proxy",
    )
    return boto3.session.Session().client(
        "medical-imaging", endpoint_url=endpoint_url or None, config=config
    )


class AhiStore:
    """Image sets of one AHI datastore, read through *client* (see :func:`create_client`), each
    call retried as *retry* says (default: :data:`MAINTENANCE_RETRY`)."""

    def __init__(self, client: Any, datastore_id: str, *, retry: RetryPolicy | None = None) -> None:
        self.datastore_id = datastore_id
        self.staging_dir = None  # read-only for writers: AHI image sets come from AHI imports
        self.local_reads = False
        self.retry = retry or MAINTENANCE_RETRY
        self._client = client

    def with_retry(self, retry: RetryPolicy) -> AhiStore:
        """This datastore through the same client, retried as *retry* says."""
        return AhiStore(self._client, self.datastore_id, retry=retry)

    def get_image_set_metadata(
        self, image_set_id: str, version: int | None = None
    ) -> dict[str, Any]:
        _check_id(image_set_id, ImageSetNotFound(image_set_id))
        arguments = self._key(image_set_id)
        if version is not None:
            arguments["versionId"] = str(version)
        blob = self._call(
            "GetImageSetMetadata",
            lambda: _read(self._client.get_image_set_metadata(**arguments)["imageSetMetadataBlob"]),
            lambda: ImageSetNotFound(image_set_id),
        )
        # boto3 hands the gzip body back undecoded; accept a decoded one too.
        return orjson.loads(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)

    def get_image_set(self, image_set_id: str) -> ImageSetSummary:
        _check_id(image_set_id, ImageSetNotFound(image_set_id))
        response = self._call(
            "GetImageSet",
            lambda: self._client.get_image_set(**self._key(image_set_id)),
            lambda: ImageSetNotFound(image_set_id),
        )
        if response.get("imageSetState") == "DELETED":
            raise ImageSetNotFound(image_set_id)
        return _summary(image_set_id, response["versionId"], response)

    def get_image_frame(self, image_set_id: str, frame_id: str) -> bytes:
        _check_id(image_set_id, FrameNotFound(image_set_id, frame_id))
        _check_id(frame_id, FrameNotFound(image_set_id, frame_id))
        return self._call(
            "GetImageFrame",
            lambda: _read(
                self._client.get_image_frame(
                    **self._key(image_set_id), imageFrameInformation={"imageFrameId": frame_id}
                )["imageFrameBlob"]
            ),
            lambda: FrameNotFound(image_set_id, frame_id),
        )

    def list_image_sets(self) -> Iterator[ImageSetSummary]:
        """Every image set, oldest first: sorted by creation time, which updates do not change,
        so a walk through the pages misses nothing that existed when it started."""
        criteria = {
            "filters": [
                {
                    "operator": "BETWEEN",
                    "values": [
                        {"createdAt": _EPOCH},
                        {"createdAt": datetime.now(UTC) + timedelta(days=1)},
                    ],
                }
            ],
            "sort": {"sortField": "createdAt", "sortOrder": "ASC"},
        }
        token: str | None = None
        while True:
            request = partial(
                self._client.search_image_sets,
                datastoreId=self.datastore_id,
                searchCriteria=criteria,
                maxResults=SEARCH_PAGE_SIZE,
                **({"nextToken": token} if token else {}),
            )
            page = self._call("SearchImageSets", request, self._missing_datastore)
            for item in page.get("imageSetsMetadataSummaries", []):
                yield _summary(item["imageSetId"], item.get("version", 1), item)
            token = page.get("nextToken")
            if not token:
                return

    def put_image_set(
        self,
        image_set_id: str,
        metadata: dict[str, Any],
        frames: Mapping[str, bytes],
        *,
        expected_version: int | None = None,
    ) -> ImageSetSummary:
        raise ReadOnlyStore(
            "AHI image sets are written by AHI import jobs (StartDICOMImportJob), not by "
            "dicomweb-proxy: import into AHI, then run 'dicomweb-proxy index sync'"
        )

    def delete_image_set(self, image_set_id: str) -> None:
        _check_id(image_set_id, ImageSetNotFound(image_set_id))
        self._call(
            "DeleteImageSet",
            lambda: self._client.delete_image_set(**self._key(image_set_id)),
            lambda: ImageSetNotFound(image_set_id),
        )

    def check(self) -> None:
        """The datastore exists and is ACTIVE; health checks get two quick tries."""
        response = self._call(
            "GetDatastore",
            lambda: self._client.get_datastore(datastoreId=self.datastore_id),
            self._missing_datastore,
            retry=CHECK_RETRY,
        )
        status = response["datastoreProperties"]["datastoreStatus"]
        if status != "ACTIVE":
            raise StoreError(f"AHI datastore {self.datastore_id} is {status}")

    def _key(self, image_set_id: str) -> dict[str, str]:
        return {"datastoreId": self.datastore_id, "imageSetId": image_set_id}

    def _missing_datastore(self) -> StoreError:
        return StoreError(f"AHI datastore {self.datastore_id} not found")

    def _call(
        self,
        operation: str,
        request: Callable[[], T],
        not_found: Callable[[], StoreError],
        *,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Run *request*, retrying transient failures; map AHI errors to store errors."""
        retry = retry or self.retry
        deadline = time.monotonic() + retry.budget
        where = f"AHI {operation} (datastore {self.datastore_id})"
        for attempt in range(1, retry.attempts + 1):
            try:
                return request()
            except ClientError as error:
                failure = _transient_failure(error, where, not_found)
            except NoCredentialsError:
                raise StoreAccessDenied(
                    f"{where}: no AWS credentials found (environment, profile or role)"
                ) from None
            except (BotoConnectionError, HTTPClientError, IncompleteReadError) as error:
                failure = f"{error.__class__.__name__}: {error}"
            delay = retry.delay(attempt - 1)
            if attempt == retry.attempts or time.monotonic() + delay > deadline:
                raise StoreUnavailable(
                    f"{where} failed {attempt} times, last with {failure}",
                    retry_after=math.ceil(retry.ceiling(attempt)),
                )
            log.debug("%s: %s; retry %d in %.2f s", where, failure, attempt, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")


def _transient_failure(error: ClientError, where: str, not_found: Callable[[], StoreError]) -> str:
    """Describe a failure worth retrying, or raise the store error it stands for."""
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "ResourceNotFoundException" or status == 404:
        raise not_found() from None
    if code in _DENIED or status == 403:
        raise StoreAccessDenied(f"{where}: {code}: {message}") from None
    if code == "ConflictException":  # the image set is locked by an update or a copy
        raise StoreUnavailable(f"{where}: {code}: {message}", retry_after=1) from None
    if code in _THROTTLED or status == 429 or status >= 500:
        return f"{code or status}: {message}"
    raise StoreError(f"{where}: {code or status}: {message}") from None


def _read(body: Any) -> bytes:
    try:
        return body.read()
    finally:
        body.close()


def _check_id(value: str, error: StoreError) -> None:
    """AHI ids are 32 lower-case alphanumerics; anything else cannot name a resource."""
    if not _ID.fullmatch(value):
        raise error


def _summary(image_set_id: str, version: Any, fields: Mapping[str, Any]) -> ImageSetSummary:
    return ImageSetSummary(
        image_set_id=image_set_id,
        version=int(version),
        created_at=_utc(fields.get("createdAt")),
        updated_at=_utc(fields.get("updatedAt") or fields.get("createdAt")),
    )


def _utc(moment: datetime | None) -> datetime:
    return moment.astimezone(UTC) if moment else _EPOCH
