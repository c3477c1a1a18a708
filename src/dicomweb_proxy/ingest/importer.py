"""Import DICOM Part 10 files into an image-set store and the SQL index.

Files are parsed and their frames encoded in a process pool (one worker per core); the parent
process groups the instances per series, writes each series' image set (a new version when the
series already exists) and indexes it. A crash at any point leaves the previous image set version
visible: the store commits a version with one rename, and the index follows the store.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path

import pydicom
from sqlalchemy import Engine, select

from ..dicom.image_set import build_metadata, iter_instances
from ..index import schema
from ..index.database import run_write
from ..index.writer import index_image_set
from ..stores.base import ImageSetNotFound, ImageSetStore, VersionConflict
from .parse import ParsedFile, ParseFailure, parse_file

#: Pending instances of one series written as one image-set version.
BATCH_INSTANCES = 256
#: Frame bytes held in memory before every pending series is written.
BATCH_BYTES = 256 * 1024 * 1024
#: Files each worker may have parsed ahead of the writer.
IN_FLIGHT_PER_WORKER = 4
_IGNORED_NAMES = frozenset({"DICOMDIR"})


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    failures: list[ParseFailure] = field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        rate = self.imported / self.seconds if self.seconds else 0.0
        megabytes = self.bytes_read / 1e6
        return (
            f"imported {self.imported}, already present {self.duplicates}, "
            f"failed {len(self.failures)} in {self.seconds:.1f} s "
            f"({rate:.1f} instances/s, {megabytes / self.seconds if self.seconds else 0:.1f} MB/s)"
        )


def image_set_id_for(study_uid: str, series_uid: str) -> str:
    """The local store keeps one image set per series, named after it."""
    return hashlib.md5(f"{study_uid}\0{series_uid}".encode(), usedforsecurity=False).hexdigest()


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Every file under *paths* (recursively), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                Path(root) / name
                for root, _, names in sorted(os.walk(path))
                for name in sorted(names)
                if name not in _IGNORED_NAMES and not name.startswith(".")
            )
        else:
            found.append(path)
    return found


class Importer:
    """Writes parsed files into *store* and *engine*'s index, one series at a time."""

    def __init__(
        self,
        store: ImageSetStore,
        engine: Engine,
        *,
        keep_original: bool = False,
        workers: int | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.keep_original = keep_original
        self.workers = workers or os.cpu_count() or 1

    def run(
        self, files: Iterable[Path], *, progress: Callable[[int], None] | None = None
    ) -> ImportReport:
        """Import *files* (see :func:`find_files`); *progress* is called once per file."""
        started = time.perf_counter()
        report = ImportReport()
        known = self._indexed_sop_uids()
        staging = self._run_staging_dir()
        pending: dict[str, list[ParsedFile]] = {}
        pending_bytes = 0
        try:
            for result in self._parse_all([str(f) for f in files], known, staging):
                if progress:
                    progress(1)
                if isinstance(result, ParseFailure):
                    report.failures.append(result)
                    continue
                report.bytes_read += result.size
                if isinstance(result, AlreadyIndexed):
                    report.duplicates += 1
                    continue
                key = image_set_id_for(result.entry.study_uid, result.entry.series_uid)
                batch = pending.setdefault(key, [])
                batch.append(result)
                pending_bytes += result.frame_bytes
                if len(batch) >= BATCH_INSTANCES:
                    pending_bytes -= self._flush(key, pending.pop(key), report)
                elif pending_bytes > BATCH_BYTES:
                    for image_set_id in list(pending):
                        self._flush(image_set_id, pending.pop(image_set_id), report)
                    pending_bytes = 0
            for image_set_id in list(pending):
                self._flush(image_set_id, pending.pop(image_set_id), report)
        finally:
            if staging is not None:
                # Empty after a complete run; after a failure it holds the frames of unwritten
                # instances, which nothing references.
                shutil.rmtree(staging, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        return report

    def _run_staging_dir(self) -> Path | None:
        """A folder of this run's own in the store's staging area (removed when the run ends)."""
        if self.store.staging_dir is None:
            return None
        folder = self.store.staging_dir / f"import-{uuid.uuid4().hex}"
        folder.mkdir()
        return folder

    def _indexed_sop_uids(self) -> frozenset[str]:
        """SOP Instance UIDs already indexed, so workers skip encoding their frames."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(schema.instance.c.sopinstanceuid))
            return frozenset(row[0] for row in rows)

    def _parse_all(
        self, files: list[str], known: frozenset[str], staging: Path | None
    ) -> Iterator[ParsedFile | ParseFailure | AlreadyIndexed]:
        # Workers write frames straight to the store's staging folder when it has one, so frame
        # bytes never travel through this process.
        parse_one = partial(parse_file, keep_original=self.keep_original, staging_dir=staging)
        if self.workers == 1 or len(files) < 4:
            for path in files:
                yield _parse_unless_known(path, parse_one, known)
            return
        parse = partial(_parse_unless_known, parse=parse_one)
        context = multiprocessing.get_context("fork")
        # Workers get the known UIDs once, not with every task; at most IN_FLIGHT_PER_WORKER
        # files per worker are parsed ahead, so parsed frames never pile up in this process.
        with context.Pool(self.workers, initializer=_remember_known, initargs=(known,)) as pool:
            remaining = iter(files)
            in_flight = deque(
                pool.apply_async(parse, (path,))
                for path in islice(remaining, self.workers * IN_FLIGHT_PER_WORKER)
            )
            while in_flight:
                result = in_flight.popleft().get()
                path = next(remaining, None)
                if path is not None:
                    in_flight.append(pool.apply_async(parse, (path,)))
                yield result

    def _flush(self, image_set_id: str, batch: list[ParsedFile], report: ImportReport) -> int:
        """Write *batch* as a new version of its image set; return the frame bytes released."""
        released = sum(parsed.frame_bytes for parsed in batch)
        while True:
            try:
                summary = self.store.get_image_set(image_set_id)
                metadata = self.store.get_image_set_metadata(image_set_id)
            except ImageSetNotFound:
                summary, metadata = None, None
            entries = list(iter_instances(metadata)) if metadata else []
            present = {entry.sop_uid for entry in entries}
            new: list[ParsedFile] = []
            duplicates: list[ParsedFile] = []
            for parsed in batch:
                (duplicates if parsed.entry.sop_uid in present else new).append(parsed)
                present.add(parsed.entry.sop_uid)
            if new:
                metadata = build_metadata(
                    self.store.datastore_id,
                    image_set_id,
                    entries + [parsed.entry for parsed in new],
                )
                frames = {fid: blob for parsed in new for fid, blob in parsed.frames.items()}
                try:
                    written = self.store.put_image_set(
                        image_set_id,
                        metadata,
                        frames,
                        expected_version=summary.version if summary else 0,
                    )
                except VersionConflict:
                    continue  # another importer wrote this series meanwhile: start from its version
                self._index(image_set_id, written.version, metadata)
                report.imported += len(new)
            elif summary is not None:
                self._index_if_behind(image_set_id, summary.version, metadata)
            # Only now: until the version is written, a "present" instance may still vanish.
            for parsed in duplicates:
                parsed.discard_staged_frames()
            report.duplicates += len(duplicates)
            return released

    def _index(self, image_set_id: str, version: int, metadata: dict) -> None:
        run_write(
            self.engine,
            lambda connection: index_image_set(
                connection,
                datastore_id=self.store.datastore_id,
                image_set_id=image_set_id,
                version=version,
                metadata=metadata,
            ),
        )

    def _index_if_behind(self, image_set_id: str, version: int, metadata: dict) -> None:
        """Re-index an image set whose store version the index has not seen (after a crash)."""
        imageset = schema.imageset
        with self.engine.connect() as connection:
            indexed = connection.execute(
                select(imageset.c.version).where(
                    imageset.c.imagesetid == image_set_id,
                    imageset.c.datastoreid == self.store.datastore_id,
                )
            ).scalar()
        if indexed != version:
            self._index(image_set_id, version, metadata)


@dataclass(frozen=True)
class AlreadyIndexed:
    path: str
    size: int


#: What a worker process was handed by :func:`_remember_known`.
_known_in_worker: frozenset[str] = frozenset()


def _remember_known(known: frozenset[str]) -> None:
    global _known_in_worker
    _known_in_worker = known


def _parse_unless_known(
    path: str,
    parse: Callable[[str], ParsedFile | ParseFailure],
    known: frozenset[str] | None = None,
) -> ParsedFile | ParseFailure | AlreadyIndexed:
    """Parse *path*, but skip encoding frames of an instance the index already holds."""
    known = _known_in_worker if known is None else known
    if known and _peek_sop_uid(path) in known:
        return AlreadyIndexed(path, os.path.getsize(path))
    return parse(path)


def _peek_sop_uid(path: str) -> str | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return str(ds.SOPInstanceUID)
    except Exception:
        return None


def progress_bar(total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A tqdm bar on a terminal, nothing otherwise; returns (advance, close)."""
    if not sys.stderr.isatty():
        return (lambda _n: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)
    return bar.update, bar.close
