"""Where retrieve URLs point, in SQL: the indexed image set, series and instance rows the UIDs
name, and the image sets' indexed versions (the retrieve layer reads the store with them)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Integer, cast, select

from .layout import Layout
from .schema import imageset, instance, series, study

LocatedRows = list[tuple[str, str, str]]
"""(image set id, Series Instance UID, SOP Instance UID) of located instances, in display order."""


def locate(
    connection: Connection,
    layout: Layout,
    datastore_id: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> tuple[LocatedRows, dict[str, int | None]]:
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


def image_set_versions(
    connection: Connection, layout: Layout, datastore_id: str, image_set_ids: Collection[str]
) -> dict[str, int | None]:
    """The indexed version of each image set the index still lists (absent: not listed; None:
    the layout keeps no versions)."""
    has_version = layout.has(imageset.c.version)
    columns = [imageset.c.imagesetid, *([imageset.c.version] if has_version else [])]
    query = select(*columns).where(
        imageset.c.datastoreid == datastore_id, imageset.c.imagesetid.in_(list(image_set_ids))
    )
    return {row[0]: row[1] if has_version else None for row in connection.execute(query)}
