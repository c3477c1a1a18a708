"""The local store keeps image sets the way AHI does and never shows a half-written one."""

from __future__ import annotations

import gzip
import os

import orjson
import pytest

from dicomweb_proxy.stores.base import FrameNotFound, ImageSetNotFound, VersionConflict
from dicomweb_proxy.stores.local import LocalStore

IMAGE_SET = "0123456789abcdef0123456789abcdef"
FRAME = "fedcba9876543210fedcba9876543210"


def metadata(*frame_ids: str) -> dict:
    return {"SchemaVersion": "1.1", "ImageSetID": IMAGE_SET, "Frames": list(frame_ids)}


def test_put_get_versions_and_delete(tmp_path):
    store = LocalStore(tmp_path, "ds")
    first = store.put_image_set(IMAGE_SET, metadata(FRAME), {FRAME: b"frame-1"}, expected_version=0)
    assert first.version == 1
    assert store.get_image_set_metadata(IMAGE_SET) == metadata(FRAME)
    assert store.get_image_frame(IMAGE_SET, FRAME) == b"frame-1"
    second = store.put_image_set(IMAGE_SET, metadata(FRAME, "1" * 32), {"1" * 32: b"frame-2"})
    assert second.version == 2 and second.created_at == first.created_at
    assert store.get_image_frame(IMAGE_SET, FRAME) == b"frame-1"  # kept from version 1
    assert [s.image_set_id for s in store.list_image_sets()] == [IMAGE_SET]
    pointer = orjson.loads((store.root / "imagesets/01" / IMAGE_SET / "imageset.json").read_bytes())
    stored = (store.root / "imagesets/01" / IMAGE_SET / pointer["metadata"]).read_bytes()
    assert orjson.loads(gzip.decompress(stored)) == metadata(FRAME, "1" * 32)
    store.delete_image_set(IMAGE_SET)
    with pytest.raises(ImageSetNotFound):
        store.get_image_set_metadata(IMAGE_SET)
    assert list(store.list_image_sets()) == []


def test_stale_writer_is_refused(tmp_path):
    store = LocalStore(tmp_path, "ds")
    store.put_image_set(IMAGE_SET, metadata(), {}, expected_version=0)
    with pytest.raises(VersionConflict):
        store.put_image_set(IMAGE_SET, metadata(), {}, expected_version=0)


def test_unknown_and_malformed_ids_are_not_found(tmp_path):
    store = LocalStore(tmp_path, "ds")
    with pytest.raises(ImageSetNotFound):
        store.get_image_set(IMAGE_SET)
    with pytest.raises(ImageSetNotFound):
        store.get_image_set("../../etc/passwd")
    store.put_image_set(IMAGE_SET, metadata(), {})
    with pytest.raises(FrameNotFound):
        store.get_image_frame(IMAGE_SET, FRAME)
    with pytest.raises(FrameNotFound):
        store.get_image_frame(IMAGE_SET, "../imageset.json")


def test_failed_write_leaves_previous_version_visible(tmp_path, monkeypatch):
    store = LocalStore(tmp_path, "ds", durable=False)
    store.put_image_set(IMAGE_SET, metadata(FRAME), {FRAME: b"old"})
    real_replace = os.replace
    calls = []

    def disk_full_on_pointer(src, dst):
        calls.append(dst)
        if str(dst).endswith("imageset.json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full_on_pointer)
    with pytest.raises(OSError):
        store.put_image_set(IMAGE_SET, metadata(FRAME, "2" * 32), {"2" * 32: b"new"})
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.get_image_set(IMAGE_SET).version == 1
    assert store.get_image_set_metadata(IMAGE_SET) == metadata(FRAME)
    assert list((store.root / "tmp").iterdir()) == []  # no temporary file left behind


def test_every_version_s_metadata_is_kept(tmp_path):
    store = LocalStore(tmp_path, "ds")
    store.put_image_set(IMAGE_SET, metadata(FRAME), {FRAME: b"frame-1"})
    store.put_image_set(IMAGE_SET, metadata(FRAME, "1" * 32), {"1" * 32: b"frame-2"})
    assert store.get_image_set_metadata(IMAGE_SET, 1) == metadata(FRAME)
    assert store.get_image_set_metadata(IMAGE_SET, 2) == metadata(FRAME, "1" * 32)
    assert store.get_image_set_metadata(IMAGE_SET) == metadata(FRAME, "1" * 32)
    assert gzip.decompress(store.get_image_set_metadata_gzip(IMAGE_SET, 1)) == orjson.dumps(
        metadata(FRAME)
    )
    for missing in (0, 3, -1):
        with pytest.raises(ImageSetNotFound, match=f"version {missing}"):
            store.get_image_set_metadata(IMAGE_SET, missing)


def test_frames_are_synced_before_they_are_renamed_into_place(tmp_path, monkeypatch):
    """Staged frames (and frames given as bytes) reach the disk before the version that lists
    them is committed: a crash after the commit cannot lose a frame."""
    store = LocalStore(tmp_path, "ds")
    staged = store.staging_dir / "staged-frame"
    staged.write_bytes(b"staged")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("sync", os.readlink(f"/proc/self/fd/{descriptor}")))
        return real_fsync(descriptor)

    def replace(src, dst):
        events.append(("rename", str(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.put_image_set(IMAGE_SET, metadata(FRAME, "1" * 32), {FRAME: staged, "1" * 32: b"given"})
    frames = [path for kind, path in events if kind == "rename" and "json" not in path]
    assert len(frames) == 2
    for path in frames:
        assert events.index(("sync", path)) < events.index(("rename", path))
    assert store.get_image_frame(IMAGE_SET, FRAME) == b"staged"
    assert store.get_image_frame(IMAGE_SET, "1" * 32) == b"given"
    assert list(store.staging_dir.iterdir()) == []


def test_a_refused_write_keeps_the_staged_frames_for_the_retry(tmp_path):
    store = LocalStore(tmp_path, "ds")
    store.put_image_set(IMAGE_SET, metadata(), {}, expected_version=0)
    staged = store.staging_dir / "staged-frame"
    staged.write_bytes(b"staged")
    with pytest.raises(VersionConflict):
        store.put_image_set(
            IMAGE_SET, metadata(FRAME), {FRAME: staged, "1" * 32: b"given"}, expected_version=0
        )
    assert list(store.staging_dir.iterdir()) == [staged]  # the bytes' temporary file is gone
    store.put_image_set(IMAGE_SET, metadata(FRAME), {FRAME: staged}, expected_version=1)
    assert store.get_image_frame(IMAGE_SET, FRAME) == b"staged"
