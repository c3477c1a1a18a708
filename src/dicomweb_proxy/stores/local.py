"""The local image-set store: an AHI datastore kept in a folder (layout in docs/architecture.md).

Every file is written under ``tmp/`` and renamed into place; ``imageset.json`` is renamed last and
names the metadata file of the current version, so readers never see a half-written image set.
Frames staged by a writer are synced to disk by ``put_image_set`` (all of a version at once)
before they are renamed into place.
Writers of the same image set are serialised with a lock file, across processes.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..cache import SizedLRU
from .base import (
    FrameNotFound,
    ImageSetNotFound,
    ImageSetSummary,
    StoreError,
    VersionConflict,
)

POINTER = "imageset.json"
#: Threads syncing the staged frames of one image-set version.
_SYNC_THREADS = 16
#: Parsed metadata documents kept per process (their files never change: names carry versions).
_METADATA_CACHE_BYTES = 128 * 1024 * 1024


class LocalStore:
    """Image sets under ``<root>/<datastore_id>/``."""

    def __init__(self, root: Path, datastore_id: str, *, durable: bool = True) -> None:
        self.datastore_id = datastore_id
        self.root = Path(root) / datastore_id
        self.durable = durable
        self._image_sets = self.root / "imagesets"
        self._tmp = self.root / "tmp"
        self._image_sets.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self.staging_dir: Path | None = self._tmp
        self.local_reads = True
        self._metadata_cache: SizedLRU[Path, tuple[dict[str, Any], int]] = SizedLRU(
            _METADATA_CACHE_BYTES, size_of=lambda entry: entry[1]
        )

    def _dir(self, image_set_id: str) -> Path:
        if len(image_set_id) != 32 or not all(c in "0123456789abcdef" for c in image_set_id):
            raise ImageSetNotFound(image_set_id)
        return self._image_sets / image_set_id[:2] / image_set_id

    def _pointer(self, image_set_id: str) -> dict[str, Any]:
        try:
            return orjson.loads((self._dir(image_set_id) / POINTER).read_bytes())
        except FileNotFoundError:
            raise ImageSetNotFound(image_set_id) from None

    def get_image_set(self, image_set_id: str) -> ImageSetSummary:
        return _summary(self._pointer(image_set_id))

    def get_image_set_metadata(
        self, image_set_id: str, version: int | None = None
    ) -> dict[str, Any]:
        """The metadata document of *version* (None: the current one); shared between callers,
        so never mutate it."""
        path = self._metadata_path(image_set_id, version)
        cached = self._metadata_cache.get(path)
        if cached is not None:
            return cached[0]
        document = gzip.decompress(path.read_bytes())
        # Parsed JSON takes several times its text in memory: count it so.
        return self._metadata_cache.put(path, (orjson.loads(document), len(document) * 4))[0]

    def get_image_set_metadata_gzip(self, image_set_id: str, version: int | None = None) -> bytes:
        """The stored gzip bytes of a metadata document, as AHI serves them."""
        return self._metadata_path(image_set_id, version).read_bytes()

    def _metadata_path(self, image_set_id: str, version: int | None) -> Path:
        """Every version's document is kept (put_image_set never removes one) until the image
        set is deleted."""
        pointer = self._pointer(image_set_id)
        if version is None or version == pointer["versionId"]:
            return self._dir(image_set_id) / pointer["metadata"]
        path = self._dir(image_set_id) / f"metadata-v{version}.json.gz"
        if not 0 < version < pointer["versionId"] or not path.is_file():
            raise ImageSetNotFound(f"{image_set_id} version {version}")
        return path

    def frame_path(self, image_set_id: str, frame_id: str) -> Path:
        """Where a frame blob lives, for callers that stream files without reading them whole."""
        if len(frame_id) != 32 or not frame_id.isalnum():
            raise FrameNotFound(image_set_id, frame_id)
        return self._dir(image_set_id) / "frames" / frame_id

    def get_image_frame(self, image_set_id: str, frame_id: str) -> bytes:
        try:
            return self.frame_path(image_set_id, frame_id).read_bytes()
        except FileNotFoundError:
            raise FrameNotFound(image_set_id, frame_id) from None

    def list_image_sets(self) -> Iterator[ImageSetSummary]:
        for pointer in sorted(self._image_sets.glob(f"*/*/{POINTER}")):
            try:
                yield _summary(orjson.loads(pointer.read_bytes()))
            except FileNotFoundError:
                continue  # deleted while listing

    def put_image_set(
        self,
        image_set_id: str,
        metadata: dict[str, Any],
        frames: Mapping[str, bytes | Path],
        *,
        expected_version: int | None = None,
    ) -> ImageSetSummary:
        directory = self._dir(image_set_id)
        (directory / "frames").mkdir(parents=True, exist_ok=True)
        # Frames given as bytes are staged like the others, and all are synced at once before
        # the lock is taken: a version's frames cost about one journal commit, not one each.
        own: dict[str, Path] = {}
        try:
            for frame_id, data in frames.items():
                if not isinstance(data, Path):
                    name = f"{frame_id}.{uuid.uuid4().hex}"
                    own[frame_id] = write_staged_file(self._tmp, name, data, durable=False)
            staged = {**frames, **own}
            if self.durable:
                sync_files(list(staged.values()))
            with self._locked(directory):
                return self._commit(directory, image_set_id, metadata, staged, expected_version)
        finally:
            for path in own.values():
                path.unlink(missing_ok=True)  # left only when the commit failed

    def _commit(
        self,
        directory: Path,
        image_set_id: str,
        metadata: dict[str, Any],
        frames: Mapping[str, Path],
        expected_version: int | None,
    ) -> ImageSetSummary:
        """Move synced staged *frames* into place, then write the version's metadata and, last,
        the pointer naming it; the caller holds the image set's lock."""
        try:
            previous = self._pointer(image_set_id)
        except ImageSetNotFound:
            previous = None
        version = previous["versionId"] if previous else 0
        if expected_version is not None and expected_version != version:
            raise VersionConflict(
                f"image set {image_set_id} is at version {version}, not {expected_version}"
            )
        for frame_id, path in frames.items():
            os.replace(path, self.frame_path(image_set_id, frame_id))
        now = datetime.now(UTC).isoformat()
        metadata_name = f"metadata-v{version + 1}.json.gz"
        self._write(directory / metadata_name, gzip.compress(orjson.dumps(metadata), 6))
        pointer = {
            "imageSetId": image_set_id,
            "versionId": version + 1,
            "createdAt": previous["createdAt"] if previous else now,
            "updatedAt": now,
            "metadata": metadata_name,
        }
        self._write(directory / POINTER, orjson.dumps(pointer))
        return _summary(pointer)

    def delete_image_set(self, image_set_id: str) -> None:
        directory = self._dir(image_set_id)
        with self._locked(directory):
            if not (directory / POINTER).exists():
                raise ImageSetNotFound(image_set_id)
            graveyard = self._tmp / f"deleted-{image_set_id}-{uuid.uuid4().hex}"
            (directory / POINTER).unlink()
            os.replace(directory, graveyard)
        shutil.rmtree(graveyard, ignore_errors=True)

    def check(self) -> None:
        if not self._image_sets.is_dir() or not os.access(self._tmp, os.W_OK):
            raise StoreError(f"local store at {self.root} is not readable and writable")

    @contextmanager
    def _locked(self, directory: Path) -> Iterator[None]:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, path: Path, data: bytes) -> None:
        """Write *data* to *path* atomically: to a temporary file first, then rename."""
        temporary = write_staged_file(
            self._tmp, f"{path.name}.{uuid.uuid4().hex}", data, self.durable
        )
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def write_staged_file(staging_dir: Path, name: str, data: bytes, durable: bool = True) -> Path:
    """Write a complete file under *staging_dir* (synced to disk when *durable*) and return it;
    a failed write leaves nothing behind."""
    path = staging_dir / name
    try:
        with open(path, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def sync_files(paths: list[Path]) -> None:
    """fsync every file of *paths*, several at once: concurrent fsyncs share the file system's
    journal commits, so a batch costs a fraction of syncing each file as it is written."""
    if len(paths) < 2:
        for path in paths:
            _sync(path)
        return
    with ThreadPoolExecutor(min(_SYNC_THREADS, len(paths))) as pool:
        for _ in pool.map(_sync, paths):
            pass


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _summary(pointer: dict[str, Any]) -> ImageSetSummary:
    return ImageSetSummary(
        image_set_id=pointer["imageSetId"],
        version=pointer["versionId"],
        created_at=datetime.fromisoformat(pointer["createdAt"]),
        updated_at=datetime.fromisoformat(pointer["updatedAt"]),
    )
