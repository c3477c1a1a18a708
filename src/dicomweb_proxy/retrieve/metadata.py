"""WADO-RS metadata bodies (PS3.18 10.4.1.1.2): DICOM JSON of the instances a URL names.

A body is a JSON array joined from fragments: the objects of up to FRAGMENT_INSTANCES
consecutive instances of one image set, comma-joined, with the same text deflated on its own
(raw deflate ending on a byte boundary, no final block). So a study's body is streamed one
fragment at a time, never built whole, and its gzip form is the deflated fragments between a
gzip header and trailer, compressed once however often it is sent. Fragments are kept in a
byte-bounded LRU per worker process, keyed by image set, version, instances and base URL
(BulkDataURIs are absolute); the ETag covers the same, computed without building anything.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from ..cache import SizedLRU
from ..dicom.dicom_json import to_dicom_json
from .records import InstanceRecord, Plan

#: Binary values above this many bytes are sent as BulkDataURIs, not inline.
INLINE_BINARY_LIMIT = 1024
METADATA_CACHE_BYTES = 64 * 1024 * 1024
#: Instances per fragment: what one step of a streamed body holds in memory.
FRAGMENT_INSTANCES = 256
_DEFLATE_LEVEL = 5
#: A gzip member's header (RFC 1952): deflate, no name, no time, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_TRANSFER_SYNTAX_UID = "00020010"
_AVAILABLE_TRANSFER_SYNTAX_UID = "00083002"
_FORMAT_VERSION = "1"  # change when the body's shape changes, to retire old ETags


@dataclass(frozen=True, slots=True)
class Fragment:
    raw: bytes
    deflated: bytes

    @property
    def size(self) -> int:
        return len(self.raw) + len(self.deflated)


def _deflated(raw: bytes) -> bytes:
    compressor = zlib.compressobj(_DEFLATE_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)


_OPEN, _COMMA, _CLOSE = (Fragment(text, _deflated(text)) for text in (b"[", b",", b"]"))
_FINAL_BLOCK = zlib.compressobj(0, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)


def body_etag(plan: Plan, base_url: str) -> str:
    """A strong validator of the body a plan gives, computed without building it."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (_FORMAT_VERSION, base_url, *map(str, plan.uids)):
        digest.update(part.encode() + b"\0")
    for image_set_id, version in sorted(plan.versions.items()):
        digest.update(f"{image_set_id}:{version}\0".encode())
    for row in plan.rows:
        digest.update("\0".join(row).encode() + b"\n")
    return f'"{digest.hexdigest()}"'


def instance_url(base_url: str, record: InstanceRecord) -> str:
    return (
        f"{base_url}/studies/{record.study_uid}/series/{record.series_uid}"
        f"/instances/{record.sop_uid}"
    )


def instance_json(record: InstanceRecord, base_url: str) -> dict[str, dict]:
    """One instance's DICOM JSON: large binary values and pixel data as BulkDataURIs; of the
    file meta, only the Transfer Syntax UID, set to the stored one (what frames are served in
    when a client accepts any transfer syntax), also given as Available Transfer Syntax UID."""
    url = instance_url(base_url, record)

    def bulk_data_uri(path: str) -> str | None:
        if path == "7FE00010" and not record.frame_ids:
            return None
        return f"{url}/bulk/{path}"

    dataset = to_dicom_json(
        record.attributes,
        record.vrs,
        bulk_data_uri=bulk_data_uri,
        inline_binary_limit=INLINE_BINARY_LIMIT,
    )
    for tag in [tag for tag in dataset if tag.startswith("0002")]:
        del dataset[tag]
    if record.frame_ids:
        syntax = {"vr": "UI", "Value": [record.transfer_syntax]}
        dataset[_TRANSFER_SYNTAX_UID] = syntax
        dataset[_AVAILABLE_TRANSFER_SYNTAX_UID] = syntax
        dataset = dict(sorted(dataset.items()))
    return dataset


def build_fragment(instances: list[InstanceRecord], base_url: str) -> Fragment:
    """The instances' DICOM JSON objects, comma-joined, raw and deflated."""
    raw = orjson.dumps([instance_json(record, base_url) for record in instances])[1:-1]
    return Fragment(raw, _deflated(raw))


def fragment_rows(plan: Plan) -> Iterator[list[tuple[str, str, str]]]:
    """The plan's rows in fragments: runs of one image set, at most FRAGMENT_INSTANCES each."""
    run: list[tuple[str, str, str]] = []
    for row in plan.rows:
        if run and (row[0] != run[0][0] or len(run) == FRAGMENT_INSTANCES):
            yield run
            run = []
        run.append(row)
    if run:
        yield run


def fragment_key(plan: Plan, rows: list[tuple[str, str, str]], base_url: str) -> str:
    """Names everything a fragment depends on: image set and version, instances, base URL."""
    image_set_id = rows[0][0]
    digest = hashlib.blake2b(digest_size=16)
    for part in (_FORMAT_VERSION, base_url, image_set_id, str(plan.versions.get(image_set_id))):
        digest.update(part.encode() + b"\0")
    for row in rows:
        digest.update("\0".join(row[1:]).encode() + b"\n")
    return digest.hexdigest()


class BodyWriter:
    """Frames fragments into the body, ``[`` fragments separated by commas ``]``: as they are,
    or as one gzip member (the deflated pieces between a header and the final block and
    trailer, CRC-32 and length of the uncompressed body)."""

    def __init__(self, *, gzip: bool) -> None:
        self.gzip = gzip
        self._crc = 0
        self._length = 0
        self._fragments = 0

    def start(self) -> bytes:
        return (_GZIP_HEADER if self.gzip else b"") + self._piece(_OPEN)

    def add(self, fragment: Fragment) -> tuple[bytes, ...]:
        """The comma (after the first fragment) and the fragment, not copied; an empty
        fragment adds nothing."""
        if not fragment.raw:
            return ()
        comma = (self._piece(_COMMA),) if self._fragments else ()
        self._fragments += 1
        return (*comma, self._piece(fragment))

    def end(self) -> bytes:
        close = self._piece(_CLOSE)
        if not self.gzip:
            return close
        return close + _FINAL_BLOCK + struct.pack("<II", self._crc, self._length & 0xFFFFFFFF)

    def whole(self, fragments: Iterable[Fragment]) -> list[bytes]:
        """The body of fragments all in hand, as chunks (the fragments not copied)."""
        return [
            self.start(),
            *(c for fragment in fragments for c in self.add(fragment)),
            self.end(),
        ]

    def _piece(self, fragment: Fragment) -> bytes:
        if not self.gzip:
            return fragment.raw
        self._crc = zlib.crc32(fragment.raw, self._crc)
        self._length += len(fragment.raw)
        return fragment.deflated


class MetadataCache(SizedLRU[str, Fragment]):
    """Fragments by :func:`fragment_key`."""

    def __init__(self, max_bytes: int = METADATA_CACHE_BYTES) -> None:
        super().__init__(max_bytes, size_of=lambda fragment: fragment.size)
