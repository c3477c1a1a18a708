"""Import DICOM Part 10 files into an image-set store and the SQL index.

Files are parsed and their frames encoded in a process pool (one worker per core); the parent
process groups the instances per series, and hands each series, once its files have arrived, to
a worker that writes the series' image set (a new version when the series already exists) and
indexes it. A crash at any point leaves the previous image set version visible: the store
commits a version with one rename, and the index follows the store.
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
from multiprocessing.pool import AsyncResult
from pathlib import Path

import pydicom
from sqlalchemy import Engine, select

from ..dicom.image_set import build_metadata, iter_instances
from ..index import schema
from ..index.database import run_write
from ..index.writer import index_image_set
from ..stores.base import ImageSetNotFound, ImageSetStore, VersionConflict
from .parse import ParsedFile, ParseFailure, parse_file

#: Instances of one series written as one image-set version at most. Every version rewrites and
#: re-indexes the whole series, so a series arriving in one run is best written once.
BATCH_INSTANCES = 2048
#: Parsed instances waiting to be written, all series together, before every one is written.
PENDING_INSTANCES = 4096
#: Frame bytes this process holds (frames not staged as files) before every series is written.
BATCH_BYTES = 256 * 1024 * 1024
#: A series is written once this many files of other series arrived after its last one (and
#: eight times its usual gap, for files of several series interleaved).
IDLE_FILES = 32
#: Files a worker parses in one task, at most.
FILES_PER_TASK = 8
#: Tasks each worker may have parsed ahead of the writer.
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

    def add(self, written: Iterable[Written]) -> None:
        for one in written:
            self.imported += one.imported
            self.duplicates += one.duplicates

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
    """Imports files into *store* and *engine*'s index: parsed in worker processes, each series
    written as one new image-set version."""

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
        paths = [str(f) for f in files]
        known = self._indexed_sop_uids()
        staging = self._run_staging_dir()
        pending = _Pending()
        parse = partial(parse_file, keep_original=self.keep_original, staging_dir=staging)
        try:
            with self._workers(len(paths), parse, known) as workers:
                for result in workers.parse(paths):
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
                    for image_set_id, batch in pending.add(key, result):
                        workers.write(image_set_id, batch)
                    report.add(workers.written())
                for image_set_id, batch in pending.take_all():
                    workers.write(image_set_id, batch)
                report.add(workers.wait())
        finally:
            if staging is not None:
                # Empty after a complete run; after a failure it holds the frames of unwritten
                # instances, which nothing references.
                shutil.rmtree(staging, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        return report

    def _workers(
        self, files: int, parse: Callable[[str], ParsedFile | ParseFailure], known: frozenset[str]
    ) -> _InProcess | _WorkerPool:
        context = _Context(self.store, self.engine, known)
        if self.workers == 1 or files < 4:
            return _InProcess(context, parse)
        return _WorkerPool(context, parse, self.workers)

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


@dataclass(frozen=True)
class Written:
    """What writing one batch of a series did."""

    imported: int
    duplicates: int


def write_series(
    store: ImageSetStore, engine: Engine, image_set_id: str, batch: list[ParsedFile]
) -> Written:
    """Write *batch* (instances of one series) as a new version of its image set, then index it.

    Instances the image set holds already are left out (and their staged frames deleted). The
    store commits the version with one rename, and the index follows the store: a crash in
    between leaves the index one version behind, which the next import of those files repairs.
    """
    while True:
        try:
            summary = store.get_image_set(image_set_id)
            metadata = store.get_image_set_metadata(image_set_id)
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
                store.datastore_id, image_set_id, entries + [parsed.entry for parsed in new]
            )
            frames = {fid: blob for parsed in new for fid, blob in parsed.frames.items()}
            try:
                written = store.put_image_set(
                    image_set_id,
                    metadata,
                    frames,
                    expected_version=summary.version if summary else 0,
                )
            except VersionConflict:
                continue  # another importer wrote this series meanwhile: start from its version
            _index(store, engine, image_set_id, written.version, metadata)
        elif summary is not None and metadata is not None:
            _index_if_behind(store, engine, image_set_id, summary.version, metadata)
        # Only now: until the version is written, a "present" instance may still vanish.
        for parsed in duplicates:
            parsed.discard_staged_frames()
        return Written(len(new), len(duplicates))


def _index(
    store: ImageSetStore, engine: Engine, image_set_id: str, version: int, metadata: dict
) -> None:
    run_write(
        engine,
        lambda connection: index_image_set(
            connection,
            datastore_id=store.datastore_id,
            image_set_id=image_set_id,
            version=version,
            metadata=metadata,
        ),
    )


def _index_if_behind(
    store: ImageSetStore, engine: Engine, image_set_id: str, version: int, metadata: dict
) -> None:
    """Re-index an image set whose store version the index has not seen (after a crash)."""
    imageset = schema.imageset
    with engine.connect() as connection:
        indexed = connection.execute(
            select(imageset.c.version).where(
                imageset.c.imagesetid == image_set_id,
                imageset.c.datastoreid == store.datastore_id,
            )
        ).scalar()
    if indexed != version:
        _index(store, engine, image_set_id, version, metadata)


class _Pending:
    """Parsed instances not yet written, per image set, and which of them are due.

    Files of a series usually arrive together (folders are walked in order), so a series is
    written once files of other series have followed its last one for a while: one version per
    series, written while the next series is parsed.
    """

    def __init__(self) -> None:
        self._batches: dict[str, list[ParsedFile]] = {}
        #: Per image set: arrival number of its first and last file, and its file count.
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._arrived = 0
        self._instances = 0
        self._bytes = 0

    def add(self, image_set_id: str, parsed: ParsedFile) -> list[tuple[str, list[ParsedFile]]]:
        """Queue *parsed*; return the batches now due."""
        self._arrived += 1
        first, _, count = self._seen.get(image_set_id, (self._arrived, 0, 0))
        self._seen[image_set_id] = (first, self._arrived, count + 1)
        batch = self._batches.setdefault(image_set_id, [])
        batch.append(parsed)
        self._instances += 1
        self._bytes += parsed.bytes_held
        if self._instances > PENDING_INSTANCES or self._bytes > BATCH_BYTES:
            return self.take_all()
        if len(batch) >= BATCH_INSTANCES:
            return [self._take(image_set_id)]
        if self._arrived % 8:
            return []
        return [self._take(key) for key in list(self._batches) if self._idle(key)]

    def take_all(self) -> list[tuple[str, list[ParsedFile]]]:
        return [self._take(key) for key in list(self._batches)]

    def _idle(self, image_set_id: str) -> bool:
        first, last, count = self._seen[image_set_id]
        gap = (last - first) / (count - 1) if count > 1 else 0
        return self._arrived - last >= max(IDLE_FILES, 8 * gap)

    def _take(self, image_set_id: str) -> tuple[str, list[ParsedFile]]:
        batch = self._batches.pop(image_set_id)
        self._instances -= len(batch)
        self._bytes -= sum(parsed.bytes_held for parsed in batch)
        return image_set_id, batch


class _InProcess:
    """Parses and writes in this process, one file after the other."""

    def __init__(
        self, context: _Context, parse: Callable[[str], ParsedFile | ParseFailure]
    ) -> None:
        self._context, self._parse = context, parse
        self._written: list[Written] = []

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def parse(self, paths: list[str]) -> Iterator[ParsedFile | ParseFailure | AlreadyIndexed]:
        for path in paths:
            yield _parse_unless_known(path, self._parse, self._context)

    def write(self, image_set_id: str, batch: list[ParsedFile]) -> None:
        self._written.append(self._context.write(image_set_id, batch))

    def written(self) -> list[Written]:
        done, self._written = self._written, []
        return done

    wait = written


class _WorkerPool:
    """Parses files and writes batches in worker processes (fork: they inherit the store, the
    engine and the known UIDs instead of receiving them with every task).

    Files are parsed in order, at most IN_FLIGHT_PER_WORKER tasks of FILES_PER_TASK files per
    worker ahead of the caller, so parsed instances never pile up in this process; batches are
    written in whichever worker is free, one at a time per image set, so versions of a series
    follow each other.
    """

    def __init__(
        self, context: _Context, parse: Callable[[str], ParsedFile | ParseFailure], workers: int
    ) -> None:
        self._workers = workers
        self._parse = partial(_parse_unless_known, parse=parse)
        self._pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=_start_worker, initargs=(context,)
        )
        self._writing: dict[str, AsyncResult] = {}
        self._waiting: dict[str, list[ParsedFile]] = {}

    def __enter__(self) -> _WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            # A failed write or parse: let the other writes end on their own rather than
            # leave a half-written temporary file. (On an interrupt they end as in a crash,
            # which the store and the index survive too: see write_series.)
            for result in self._writing.values():
                result.wait()
        self._pool.terminate()
        self._pool.join()

    def parse(self, paths: list[str]) -> Iterator[ParsedFile | ParseFailure | AlreadyIndexed]:
        # A task parses a few files: each result handed over costs this process a wake-up.
        size = max(1, min(FILES_PER_TASK, len(paths) // (self._workers * IN_FLIGHT_PER_WORKER)))
        remaining = (paths[start : start + size] for start in range(0, len(paths), size))
        in_flight = deque(
            self._pool.apply_async(_parse_files, (chunk, self._parse))
            for chunk in islice(remaining, self._workers * IN_FLIGHT_PER_WORKER)
        )
        while in_flight:
            results = in_flight.popleft().get()
            chunk = next(remaining, None)
            if chunk is not None:
                in_flight.append(self._pool.apply_async(_parse_files, (chunk, self._parse)))
            yield from results

    def write(self, image_set_id: str, batch: list[ParsedFile]) -> None:
        if image_set_id in self._writing:
            self._waiting.setdefault(image_set_id, []).extend(batch)
        else:
            self._writing[image_set_id] = self._pool.apply_async(
                _write_in_worker, (image_set_id, batch)
            )

    def written(self) -> list[Written]:
        """What the writes finished since the last call did (raising what one raised)."""
        done = []
        for image_set_id, result in list(self._writing.items()):
            if result.ready():
                done.append(result.get())
                del self._writing[image_set_id]
                waiting = self._waiting.pop(image_set_id, None)
                if waiting:
                    self.write(image_set_id, waiting)
        return done

    def wait(self) -> list[Written]:
        """Wait for every write, those waiting for an earlier one too."""
        done = []
        while self._writing:
            next(iter(self._writing.values())).wait()
            done.extend(self.written())
        return done


@dataclass(frozen=True)
class _Context:
    """What parsing and writing need besides the files."""

    store: ImageSetStore
    engine: Engine
    known: frozenset[str]  # SOP Instance UIDs indexed before the run

    def write(self, image_set_id: str, batch: list[ParsedFile]) -> Written:
        return write_series(self.store, self.engine, image_set_id, batch)


#: What a worker process was handed by :func:`_start_worker`.
_worker: _Context | None = None


def _start_worker(context: _Context) -> None:
    global _worker
    # The parent's pooled connections are not this process's to use: open its own.
    context.engine.dispose(close=False)
    _worker = context


def _parse_files(
    paths: list[str], parse: Callable[[str], ParsedFile | ParseFailure | AlreadyIndexed]
) -> list[ParsedFile | ParseFailure | AlreadyIndexed]:
    return [parse(path) for path in paths]


def _write_in_worker(image_set_id: str, batch: list[ParsedFile]) -> Written:
    assert _worker is not None
    return _worker.write(image_set_id, batch)


@dataclass(frozen=True)
class AlreadyIndexed:
    path: str
    size: int


def _parse_unless_known(
    path: str,
    parse: Callable[[str], ParsedFile | ParseFailure],
    context: _Context | None = None,
) -> ParsedFile | ParseFailure | AlreadyIndexed:
    """Parse *path*, but skip encoding frames of an instance the index already holds (known
    from *context*, in a worker from the one it was started with)."""
    context = context or _worker
    if context is not None and context.known and _peek_sop_uid(path) in context.known:
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
