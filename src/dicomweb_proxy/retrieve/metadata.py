"""WADO-RS metadata bodies (PS3.18 10.4.1.1.2): DICOM JSON of the instances a URL names.

Built once per image-set version and kept, raw and gzip-compressed, in a byte-bounded LRU per
worker process; the key also covers the index's instance list and the base URL (BulkDataURIs are
absolute), so a new version, a re-index or another public address gives a new body and ETag.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ..cache import SizedLRU
from ..dicom.dicom_json import to_dicom_json
from .records import InstanceRecord, Plan

#: Binary values above this many bytes are sent as BulkDataURIs, not inline.
INLINE_BINARY_LIMIT = 1024
METADATA_CACHE_BYTES = 64 * 1024 * 1024
_GZIP_LEVEL = 5
_TRANSFER_SYNTAX_UID = "00020010"
_AVAILABLE_TRANSFER_SYNTAX_UID = "00083002"
_FORMAT_VERSION = "1"  # change when the body's shape changes, to retire old ETags


@dataclass(frozen=True, slots=True)
class MetadataBody:
    etag: str
    raw: bytes
    gzipped: bytes

    @property
    def size(self) -> int:
        return len(self.raw) + len(self.gzipped)


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


def build_body(instances: list[InstanceRecord], base_url: str, etag: str) -> MetadataBody:
    """The JSON array of the instances, and its gzip form (compressed once, served often)."""
    documents: list[dict[str, Any]] = [instance_json(record, base_url) for record in instances]
    raw = orjson.dumps(documents)
    return MetadataBody(etag, raw, gzip.compress(raw, _GZIP_LEVEL, mtime=0))


class MetadataCache(SizedLRU[str, MetadataBody]):
    """Bodies by ETag (which names everything the body depends on)."""

    def __init__(self, max_bytes: int = METADATA_CACHE_BYTES) -> None:
        super().__init__(max_bytes, size_of=lambda body: body.size)
