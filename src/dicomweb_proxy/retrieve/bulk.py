"""Bulk data other than pixel data: the binary values metadata BulkDataURIs point to."""

from __future__ import annotations

import base64
import binascii
import re

from ..dicom.dicom_json import to_dicom_json
from .records import InstanceRecord

#: Tags a BulkDataURI of pixel data ends with: served as the instance's frames.
PIXEL_PATHS = frozenset({"7FE00010", "7FE00008", "7FE00009"})
#: An item index in a bulk data tag path.
_ITEM_INDEX = re.compile(r"[0-9]{1,9}")


def bulk_value(record: InstanceRecord, path: str) -> bytes | None:
    """The bytes of the binary attribute at a BulkDataURI tag path (``00540016/0/00181074``:
    tag, item index, tag, ...); None when there is none."""
    steps = path.split("/")
    dataset = to_dicom_json(record.attributes, record.vrs)
    try:
        element = dataset[steps[0]]
        for index, tag in zip(steps[1::2], steps[2::2], strict=True):
            if not _ITEM_INDEX.fullmatch(index):
                return None  # not an item index (a sign, "_", other scripts): no such value
            element = element["Value"][int(index)][tag]
        return base64.b64decode(element["InlineBinary"], validate=True)
    except (KeyError, IndexError, ValueError, TypeError, binascii.Error):
        return None
