"""Instances as Part 10 objects, streamed: the header, then frames as they arrive, then the
rest of the data set, and which transfer syntaxes an instance or its frames can be sent in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from ..dicom import transcode
from ..dicom import transfer_syntax as ts
from ..dicom.part10 import (
    ENCAPSULATED_END,
    Part10,
    encapsulated_start,
    fragment,
    native_length,
    pack_bit_frames,
)
from .records import InstanceRecord

#: Encapsulated instances with more frames than this are streamed with an empty offset table
#: instead of being held whole in memory to compute one.
OFFSET_TABLE_MAX_FRAMES = 64
#: Syntaxes an instance without pixel data can be labelled with: its data set is Explicit VR
#: Little Endian in all of them.
_EXPLICIT_LE_SYNTAXES = (
    ts.EXPLICIT_VR_LE,
    ts.HTJ2K_LOSSLESS_RPCL,
    ts.HTJ2K_LOSSLESS,
    ts.HTJ2K,
    ts.JPEG_2000_LOSSLESS,
    ts.JPEG_2000,
    ts.JPEG_LS_LOSSLESS,
    ts.JPEG_LS_NEAR_LOSSLESS,
    ts.JPEG_LOSSLESS_SV1,
    ts.JPEG_LOSSLESS,
    ts.JPEG_BASELINE,
    ts.JPEG_EXTENDED,
    ts.RLE_LOSSLESS,
)


def instance_syntaxes(record: InstanceRecord) -> list[str]:
    """Transfer syntaxes the instance can be sent in as a Part 10 object, the stored first."""
    stored = record.transfer_syntax
    if not record.frame_ids:
        return list(_EXPLICIT_LE_SYNTAXES)
    syntaxes = [stored] if ts.is_encapsulated(stored) else []
    if stored == ts.HTJ2K_LOSSLESS_RPCL:
        syntaxes.append(ts.HTJ2K_LOSSLESS)
    syntaxes += transcode.targets(stored, record.attributes)
    if stored == ts.EXPLICIT_VR_LE:
        syntaxes.insert(0, stored)
    return syntaxes


def frame_syntaxes(record: InstanceRecord) -> tuple[str, ...]:
    """Transfer syntaxes its frames can be sent in: the stored one, the same bytes under
    another label, then the transcodes."""
    stored = record.transfer_syntax
    also = (ts.HTJ2K_LOSSLESS,) if stored == ts.HTJ2K_LOSSLESS_RPCL else ()
    return (stored, *also, *transcode.targets(stored, record.attributes))


def lossy_transcode(stored: str, target: str) -> bool:
    """Whether sending *target* loses information the stored frames hold."""
    return target in transcode.LOSSY_TARGETS and not transcode.same_bytes(stored, target)


def concatenable(record: InstanceRecord) -> bool:
    """Whether the frames can be sent as native pixel data (stored so, or decodable to it)."""
    stored = record.transfer_syntax
    return stored == ts.EXPLICIT_VR_LE or ts.EXPLICIT_VR_LE in transcode.targets(
        stored, record.attributes
    )


def part10_header(record: InstanceRecord, syntax: str) -> Part10:
    """The instance's non-pixel bytes written as *syntax*, with the attributes it changes."""
    changes = transcode.changed_attributes(record.transfer_syntax, syntax, record.attributes)
    return Part10(record.attributes, record.vrs, syntax, changes)


async def object_chunks(
    record: InstanceRecord,
    syntax: str,
    frames: AsyncIterator[bytes],
    header: Callable[[InstanceRecord, str], Awaitable[Part10]],
) -> AsyncIterator[bytes]:
    """The instance as a Part 10 object in *syntax*, taking its frames (already in *syntax*)
    from *frames* and its header from *header* (when its turn comes)."""
    part10 = await header(record, syntax)
    yield part10.head
    count = len(record.frame_ids)
    if count and part10.is_encapsulated:
        if count <= OFFSET_TABLE_MAX_FRAMES:
            collected = [await anext(frames) for _ in range(count)]
            for chunk in part10.encapsulated(collected, offset_table=syntax not in ts.VIDEO):
                yield chunk
        else:
            yield encapsulated_start(None)
            for _ in range(count):
                for chunk in fragment(await anext(frames)):
                    yield chunk
            yield ENCAPSULATED_END
    elif count:
        length = native_length(record.attributes, count)
        yield part10.native_header(length)
        async for chunk in native_pixels(record, frames, count):
            yield chunk
        if length % 2:
            yield b"\x00"
    yield part10.tail


async def native_pixels(
    record: InstanceRecord, frames: AsyncIterator[bytes], count: int
) -> AsyncIterator[bytes]:
    """*count* native frames one after another, as Pixel Data holds them: 1-bit frames that
    do not end on a byte are re-packed."""
    length = native_length(record.attributes, count)
    pixels = transcode.int_attribute(record.attributes, "Rows", 0) * transcode.int_attribute(
        record.attributes, "Columns", 0
    )
    if transcode.int_attribute(record.attributes, "BitsAllocated", 8) == 1 and pixels % 8:
        collected = [await anext(frames) for _ in range(count)]
        yield pack_bit_frames(collected, pixels)
        return
    for _ in range(count):
        frame = await anext(frames)
        if len(frame) * count != length:
            raise RuntimeError(f"frame of {record.sop_uid} has {len(frame)} bytes, not {length}")
        yield frame
