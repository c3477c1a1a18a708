"""Resolve what a retrieve URL names: Study/Series/SOP Instance UIDs → image sets and instances.

The index says which image set holds each instance (an instance belongs to exactly one image
set, the primary one when several hold its series; see index/writer.py); the store is the source
of truth for attributes and frames. Used by WADO-RS and by rendering. Methods block (SQL, store
reads): call them from worker threads, except :meth:`Resolver.cached_instance`.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Integer, cast, select

from ..dicom import transfer_syntax as ts
from ..dicom.image_set import merged_instance_attributes
from ..stores.base import ImageSetNotFound, ImageSetStore
from .layout import Layout
from .schema import imageset, instance, series, study

if TYPE_CHECKING:
    from .reader import IndexReader

#: What an index can hold as a UID (lenient: some files break PS3.5's digits and dots). Spaces
#: are refused too: MySQL collations ignore trailing ones.
_POSSIBLE_UID = re.compile(r"[!-~]{1,64}")
InstanceKey = tuple[str, str, str]
"""(Study Instance UID, Series Instance UID, SOP Instance UID)."""


class NotFound(LookupError):
    """Nothing in the index (or the store) matches the UIDs of a request."""


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One instance: all its attributes merged from the image-set levels, and its frames."""

    image_set_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    attributes: dict[str, Any]
    vrs: dict[str, str]
    transfer_syntax: str
    frame_ids: tuple[str, ...]

    @property
    def key(self) -> InstanceKey:
        return self.study_uid, self.series_uid, self.sop_uid


@dataclass(frozen=True, slots=True)
class Plan:
    """The instances a request names, from the index: (image set id, Series Instance UID,
    SOP Instance UID) in display order, and the indexed version of each image set (the index
    follows the store; a version names an immutable metadata document)."""

    uids: tuple[str, str | None, str | None]
    rows: list[tuple[str, str, str]]
    versions: dict[str, int | None]


def locate(
    connection: Connection,
    layout: Layout,
    datastore_id: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> tuple[list[tuple[str, str, str]], dict[str, int | None]]:
    """(image set id, Series Instance UID, SOP Instance UID) of every indexed instance the UIDs
    name, ordered by series and instance number, and the indexed version of each image set
    (None when the layout does not keep versions). UIDs must be consistent: an instance not in
    the given series (or a series not in the given study) matches nothing."""
    version = imageset.c.version if layout.has(imageset.c.version) else None
    series_number = series.c.seriesnumber
    if layout.holds_text_number(series_number):
        series_number = cast(series_number, Integer)
    query = (
        select(
            imageset.c.imagesetid,
            series.c.seriesinstanceuid,
            instance.c.sopinstanceuid,
            *([version] if version is not None else []),
        )
        .select_from(
            instance.join(series, series.c.series_pkey == instance.c.series_pkey)
            .join(study, study.c.study_pkey == series.c.study_pkey)
            .join(imageset, imageset.c.imageset_pkey == instance.c.imageset_pkey)
        )
        .where(study.c.studyinstanceuid == study_uid, imageset.c.datastoreid == datastore_id)
        .order_by(
            series_number,
            series.c.seriesinstanceuid,
            instance.c.instancenumber,
            instance.c.sopinstanceuid,
        )
    )
    if series_uid is not None:
        query = query.where(series.c.seriesinstanceuid == series_uid)
    if sop_uid is not None:
        query = query.where(instance.c.sopinstanceuid == sop_uid)
    found = connection.execute(query).all()
    versions = {row[0]: row[3] if version is not None else None for row in found}
    return [(row[0], row[1], row[2]) for row in found], versions


class Resolver:
    """Index lookups combined with store metadata, plus a per-process map of recently used
    instances so frame requests skip SQL and metadata parsing.

    Entries of that map live *ttl* seconds: frames are immutable, but an image set's metadata
    can be updated or deleted; a frame read that fails should :meth:`forget` its instance.
    When the index keeps no image-set versions (the metadata-index layout) they are asked of the
    store and believed for *version_ttl* seconds.
    """

    def __init__(
        self,
        store: ImageSetStore,
        index: IndexReader,
        *,
        ttl: float = 60.0,
        version_ttl: float = 5.0,
        max_instances: int = 10_000,
    ) -> None:
        self.store = store
        self.index = index
        self.ttl = ttl
        self.version_ttl = version_ttl
        self.max_instances = max_instances
        self._recent: OrderedDict[InstanceKey, tuple[InstanceRecord, float]] = OrderedDict()
        self._versions: dict[str, tuple[int | None, float]] = {}
        self._lock = threading.Lock()

    def plan(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> Plan:
        """What the UIDs name and the image-set versions, from the index alone (one query: a
        remote store is not asked, unless the index keeps no versions); NotFound when there is
        nothing."""
        plan = self._located(study_uid, series_uid, sop_uid)
        if all(version is not None for version in plan.versions.values()):
            return plan
        versions = {
            image_set_id: self._store_version(image_set_id) if version is None else version
            for image_set_id, version in plan.versions.items()
        }
        return dataclasses.replace(plan, versions=versions)

    def _located(self, study_uid: str, series_uid: str | None, sop_uid: str | None) -> Plan:
        """What the index lists for the UIDs (text no index can hold is not asked about)."""
        uids = (study_uid, series_uid, sop_uid)
        if not all(uid is None or _POSSIBLE_UID.fullmatch(uid) for uid in uids):
            raise NotFound(_describe(*uids))
        rows, versions = self.index.locate(self.store.datastore_id, *uids)
        if not rows:
            raise NotFound(_describe(*uids))
        return Plan(uids, rows, versions)

    def _store_version(self, image_set_id: str) -> int | None:
        """The image set's current version from the store (None if it is gone), kept briefly:
        cached metadata bodies are keyed by versions. A version never goes back (a slower
        concurrent read may return an older one): the body of a newer one may have been sent."""
        now = time.monotonic()
        with self._lock:
            entry = self._versions.get(image_set_id)
        if entry is not None and entry[1] > now:
            return entry[0]
        try:
            version: int | None = self.store.get_image_set(image_set_id).version
        except ImageSetNotFound:
            version = None
        with self._lock:
            known = self._versions.get(image_set_id)
            if version is not None and known is not None and (known[0] or 0) > version:
                version = known[0]
            if len(self._versions) >= self.max_instances:
                self._versions = {k: v for k, v in self._versions.items() if v[1] > now}
                if len(self._versions) >= self.max_instances:
                    self._versions.clear()
            self._versions[image_set_id] = (version, now + self.version_ttl)
        return version

    def load(self, plan: Plan) -> list[InstanceRecord]:
        """The planned instances with their attributes and frames, in display order."""
        documents: dict[str, dict[str, Any] | None] = {}
        instances = []
        for image_set_id, series_uid, sop_uid in plan.rows:
            if image_set_id not in documents:
                documents[image_set_id] = self._metadata(
                    image_set_id, plan.versions.get(image_set_id)
                )
            metadata = documents[image_set_id]
            if metadata is None:
                continue
            record = _record(image_set_id, metadata, plan.uids[0], series_uid, sop_uid)
            if record is not None:
                instances.append(record)
        if not instances:
            raise NotFound(_describe(*plan.uids))
        self._remember(instances)
        return instances

    def _metadata(self, image_set_id: str, version: int | None) -> dict[str, Any] | None:
        """The document of the version the plan names (one a cache may keep, whoever wrote
        it), else the current one; None if the image set was deleted since it was indexed."""
        try:
            return self.store.get_image_set_metadata(image_set_id, version)
        except ImageSetNotFound:
            if version is None:
                return None
        try:
            return self.store.get_image_set_metadata(image_set_id)
        except ImageSetNotFound:
            return None

    def select(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Every instance the UIDs name, read from the store; NotFound when there is none."""
        return self.load(self.plan(study_uid, series_uid, sop_uid))

    def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord:
        """One instance, from the recent map when possible (its whole series is read on a miss,
        since viewers ask for every instance of a series in turn). An instance the index does
        not list is NotFound before any metadata is read: unknown SOP Instance UIDs cost one
        indexed query each, never a read (on AHI, a GetImageSetMetadata call) of the series."""
        key = (study_uid, series_uid, sop_uid)
        record = self.cached_instance(key)
        if record is not None:
            return record
        plan = self._located(study_uid, series_uid, None)  # loading needs no versions
        if not any(row[2] == sop_uid for row in plan.rows):
            raise NotFound(_describe(study_uid, series_uid, sop_uid))
        self.load(plan)
        record = self.cached_instance(key)
        if record is None:
            raise NotFound(_describe(study_uid, series_uid, sop_uid))
        return record

    def cached_instance(self, key: InstanceKey) -> InstanceRecord | None:
        """The instance if it is in the recent map and fresh; never blocks on I/O."""
        with self._lock:
            entry = self._recent.get(key)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self._recent[key]
                return None
            self._recent.move_to_end(key)
            return entry[0]

    def forget(self, key: InstanceKey) -> None:
        with self._lock:
            self._recent.pop(key, None)

    def _remember(self, records: list[InstanceRecord]) -> None:
        expires = time.monotonic() + self.ttl
        with self._lock:
            for record in records:
                self._recent[record.key] = (record, expires)
                self._recent.move_to_end(record.key)
            while len(self._recent) > self.max_instances:
                self._recent.popitem(last=False)


def _record(
    image_set_id: str, metadata: dict[str, Any], study_uid: str, series_uid: str, sop_uid: str
) -> InstanceRecord | None:
    """The instance as the store holds it; None when the index is ahead of the store."""
    try:
        attributes, vrs = merged_instance_attributes(metadata, series_uid, sop_uid)
    except KeyError:
        return None
    block = metadata["Study"]["Series"][series_uid]["Instances"][sop_uid]
    return InstanceRecord(
        image_set_id=image_set_id,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        attributes=attributes,
        vrs=vrs,
        transfer_syntax=block.get("StoredTransferSyntaxUID") or ts.HTJ2K_LOSSLESS_RPCL,
        frame_ids=tuple(str(frame["ID"]) for frame in block.get("ImageFrames") or ()),
    )


def _describe(study_uid: str, series_uid: str | None, sop_uid: str | None) -> str:
    if sop_uid is not None:
        return f"instance {sop_uid} not found in series {series_uid} of study {study_uid}"
    if series_uid is not None:
        return f"series {series_uid} not found in study {study_uid}"
    return f"study {study_uid} not found"
