"""The image-set store protocol: what the HTTP layer and the importer know of a store.

Two implementations: the local folder store (``local.py``) and AWS HealthImaging. Methods are
blocking; the HTTP layer calls them from worker threads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


class StoreError(Exception):
    """Base of the errors a store raises; the HTTP layer maps each to a status code."""


class ImageSetNotFound(StoreError):
    def __init__(self, image_set_id: str) -> None:
        super().__init__(f"image set {image_set_id} not found")
        self.image_set_id = image_set_id


class FrameNotFound(StoreError):
    def __init__(self, image_set_id: str, frame_id: str) -> None:
        super().__init__(f"frame {frame_id} not found in image set {image_set_id}")


class VersionConflict(StoreError):
    """The image set changed since the version the writer started from."""


class StoreAccessDenied(StoreError):
    """The store refused our credentials (e.g. an IAM policy lacks an AHI action): a deployment
    problem no client can fix, so it is logged loudly and answered 502."""


class StoreUnavailable(StoreError):
    """The store is overloaded or briefly unreachable, still so after retries: clients should
    come back after *retry_after* seconds (503 with Retry-After)."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class ReadOnlyStore(StoreError):
    """The store does not take writes from this service (AHI image sets come from import jobs)."""


@dataclass(frozen=True)
class ImageSetSummary:
    image_set_id: str
    version: int
    created_at: datetime
    updated_at: datetime


class ImageSetStore(Protocol):
    """An AHI-like datastore: image sets of metadata and frame blobs."""

    datastore_id: str
    #: A folder where writers may put frame files to hand to put_image_set (moved, not copied,
    #: so encoding processes need not send frame bytes to the writer); None: pass bytes.
    staging_dir: Path | None
    #: Whether frame reads are reads of local files (the page cache, usually): cheaper done
    #: at once than handed to a thread, as nginx reads its files. False for remote stores.
    local_reads: bool

    def get_image_set_metadata(
        self, image_set_id: str, version: int | None = None
    ) -> dict[str, Any]:
        """The SchemaVersion 1.1 document of the image set's *version* (None: the current one);
        ImageSetNotFound when the store has no such version. A version's document never
        changes."""
        ...

    def get_image_set(self, image_set_id: str) -> ImageSetSummary: ...

    def get_image_frame(self, image_set_id: str, frame_id: str) -> bytes:
        """The stored bytes of one frame, encoded as the instance's StoredTransferSyntaxUID."""
        ...

    def list_image_sets(self) -> Iterator[ImageSetSummary]: ...

    def put_image_set(
        self,
        image_set_id: str,
        metadata: dict[str, Any],
        frames: Mapping[str, bytes | Path],
        *,
        expected_version: int | None = None,
    ) -> ImageSetSummary:
        """Write a new version of an image set: *frames* are the new frame blobs by id, as bytes
        or as files in :attr:`staging_dir`.

        Frames of the previous version that *metadata* still lists are kept. With
        *expected_version*, raise :class:`VersionConflict` if the current version differs
        (0 means the image set must not exist yet).
        """
        ...

    def delete_image_set(self, image_set_id: str) -> None: ...

    def check(self) -> None:
        """Raise a StoreError when the store does not answer (health checks)."""
        ...
