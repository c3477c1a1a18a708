"""Parse one DICOM Part 10 file into an image-set instance entry and its frame blobs.

Runs in worker processes: everything it returns is picklable and it touches neither the store
nor the index.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from ..dicom.ahi_json import Memo, dataset_to_attributes
from ..dicom.frames import StoredPixels, store_pixels
from ..dicom.image_set import InstanceEntry
from ..stores.local import write_staged_file

_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
#: Elements this process encoded, for the next files of their series (bounded by ahi_json).
_memo: Memo = {}


@dataclass
class ParsedFile:
    path: str
    size: int
    entry: InstanceEntry
    #: Frame blobs by id: bytes, or files written to the store's staging folder.
    frames: dict[str, bytes | Path] = field(default_factory=dict)

    @property
    def bytes_held(self) -> int:
        """Frame bytes held in memory (not staged as files)."""
        return sum(len(blob) for blob in self.frames.values() if isinstance(blob, bytes))

    def discard_staged_frames(self) -> None:
        """Delete this file's staged frames (its instance turned out to be present already)."""
        for blob in self.frames.values():
            if isinstance(blob, Path):
                blob.unlink(missing_ok=True)


@dataclass(frozen=True)
class ParseFailure:
    path: str
    reason: str


def parse_file(
    path: str,
    *,
    keep_original: bool = False,
    staging_dir: Path | None = None,
) -> ParsedFile | ParseFailure:
    """Read *path* once and encode its frames; never raises for a bad file.

    With *staging_dir*, frames are written there as complete files instead of returned.
    """
    try:
        size = os.path.getsize(path)
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        return ParseFailure(path, "not a DICOM Part 10 file (no DICM preamble)")
    except (OSError, EOFError) as error:
        return ParseFailure(path, f"cannot read: {error}")
    except Exception as error:  # pydicom raises many types for damaged files
        return ParseFailure(path, f"damaged DICOM file: {error}")
    missing = [keyword for keyword in _REQUIRED_UIDS if not ds.get(keyword)]
    if missing:
        return ParseFailure(path, f"missing {', '.join(missing)}")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        return ParseFailure(path, "no TransferSyntaxUID in the file meta information")
    try:
        attributes, vrs = dataset_to_attributes(ds, _memo)
        pixels = store_pixels(ds, keep_original=keep_original)
    except Exception as error:  # a codec or a damaged value: report it, keep importing
        return ParseFailure(path, f"cannot read pixel data or attributes: {error}")
    entry = InstanceEntry(
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        sop_uid=str(ds.SOPInstanceUID),
        attributes=attributes,
        vrs=vrs,
    )
    frames = _attach_frames(entry, pixels, staging_dir) if pixels else {}
    return ParsedFile(path, size, entry, frames)


def _attach_frames(
    entry: InstanceEntry, pixels: StoredPixels, staging_dir: Path | None
) -> dict[str, bytes | Path]:
    """Name each frame, list it in the entry's ImageFrames, and return the blobs by name."""
    entry.attributes.update(pixels.changed_attributes)
    entry.stored_transfer_syntax_uid = pixels.transfer_syntax_uid
    blobs: dict[str, bytes | Path] = {}
    for frame in pixels.frames:
        frame_id = uuid.uuid4().hex
        blobs[frame_id] = (
            # Not synced here: put_image_set syncs a version's staged frames all at once.
            write_staged_file(staging_dir, frame_id, frame.data, durable=False)
            if staging_dir is not None
            else frame.data
        )
        description: dict[str, object] = {"ID": frame_id}
        if frame.checksums:
            description["PixelDataChecksumFromBaseToFullResolution"] = frame.checksums
        if frame.min_value is not None:
            description["MinPixelValue"] = frame.min_value
            description["MaxPixelValue"] = frame.max_value
        description["FrameSizeInBytes"] = frame.size_in_bytes
        entry.image_frames.append(description)
    return blobs
