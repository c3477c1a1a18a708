"""The importer: store and index hold exactly what the source files hold, on every database."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder
from sqlalchemy import func, select

from dicomweb_proxy.cli import main as cli_main
from dicomweb_proxy.config import load_settings
from dicomweb_proxy.dicom.ahi_json import attributes_to_dataset
from dicomweb_proxy.dicom.frames import decode_frame
from dicomweb_proxy.dicom.image_set import iter_instances
from dicomweb_proxy.index import schema
from dicomweb_proxy.ingest.importer import Importer, find_files, image_set_id_for
from dicomweb_proxy.samples import generate_sample_studies
from dicomweb_proxy.services import open_services
from dicomweb_proxy.stores.base import ImageSetNotFound

from .pydicom_files import bundled_files
from .test_ahi_json import assert_same_elements

#: Attributes the store may rewrite because the stored frames are decoded differently (PS3.5 8.2).
TRANSCODING_CHANGES = {0x00280004, 0x00280006}


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> list[Path]:
    return generate_sample_studies(tmp_path_factory.mktemp("samples"))


def open_test_services(data_dir: Path, database_url: str | None = None):
    flags = {"data_dir": data_dir, "database_url": database_url}
    return open_services(load_settings(flags, environ={}))


def read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def test_samples_round_trip_through_store_and_index(tmp_path, index_url, sample_files):
    services = open_test_services(tmp_path, index_url)
    try:
        report = Importer(services.store, services.index, workers=2).run(sample_files)
        assert report.ok and report.imported == len(sample_files)
        sources = {str(read(p).SOPInstanceUID): read(p) for p in sample_files}
        stored = {}
        for summary in services.store.list_image_sets():
            for entry in iter_instances(
                services.store.get_image_set_metadata(summary.image_set_id)
            ):
                stored[entry.sop_uid] = (summary.image_set_id, entry)
        assert stored.keys() == sources.keys()
        for sop_uid, source in sources.items():
            image_set_id, entry = stored[sop_uid]
            copy = attributes_to_dataset(entry.attributes, entry.vrs)
            for tag in TRANSCODING_CHANGES:
                if tag in copy:
                    copy[tag] = source[tag]
            assert_same_elements(source, copy, sop_uid)
            assert_frames_equal(source, entry, services.store.get_image_frame, image_set_id)
        assert_index_matches(services.index, sources)
    finally:
        services.close()


def assert_frames_equal(source, entry, get_frame, image_set_id) -> None:
    if "PixelData" not in source:
        assert not entry.image_frames
        return
    expected = [
        a for a, _ in get_decoder(source.file_meta.TransferSyntaxUID).iter_array(source, raw=True)
    ]
    assert len(entry.image_frames) == len(expected)
    lossy = entry.stored_transfer_syntax_uid == source.file_meta.TransferSyntaxUID and (
        source.get("LossyImageCompression") == "01"
    )
    for frame, reference in zip(entry.image_frames, expected, strict=True):
        decoded = decode_frame(
            get_frame(image_set_id, frame["ID"]), entry.stored_transfer_syntax_uid, entry.attributes
        )
        assert decoded.shape == reference.shape
        if not lossy:
            np.testing.assert_array_equal(decoded, reference)


def assert_index_matches(engine, sources: dict[str, pydicom.Dataset]) -> None:
    studies: dict[str, set[str]] = {}
    series_sizes: dict[str, int] = {}
    for ds in sources.values():
        studies.setdefault(str(ds.StudyInstanceUID), set()).add(str(ds.SeriesInstanceUID))
        series_sizes[str(ds.SeriesInstanceUID)] = series_sizes.get(str(ds.SeriesInstanceUID), 0) + 1
    with engine.connect() as connection:
        rows = connection.execute(select(schema.study)).mappings().all()
        assert {row.studyinstanceuid for row in rows} == studies.keys()
        for row in rows:
            members = studies[row.studyinstanceuid]
            assert row.numberofstudyrelatedseries == len(members)
            assert row.numberofstudyrelatedinstances == sum(series_sizes[s] for s in members)
            modalities = {
                str(ds.Modality)
                for ds in sources.values()
                if str(ds.StudyInstanceUID) == row.studyinstanceuid
            }
            assert set(row.modalitiesinstudy.split("\\")) == modalities
        for row in connection.execute(select(schema.series)).mappings():
            assert row.numberofseriesrelatedinstances == series_sizes[row.seriesinstanceuid]
        patients = {(str(ds.PatientID), str(ds.PatientName)) for ds in sources.values()}
        names = connection.execute(select(schema.patient.c.patientid, schema.patient.c.patientname))
        assert set(map(tuple, names)) == patients
        for row in connection.execute(select(schema.instance)).mappings():
            ds = sources[row.sopinstanceuid]
            assert row.sopclassuid == ds.SOPClassUID
            assert row.instancenumber == (
                int(ds.InstanceNumber) if "InstanceNumber" in ds else None
            )
            assert row.rows == ds.get("Rows")


def test_reimport_changes_nothing(tmp_path, sample_files):
    services = open_test_services(tmp_path)
    try:
        importer = Importer(services.store, services.index, workers=2)
        importer.run(sample_files)
        versions = {s.image_set_id: s.version for s in services.store.list_image_sets()}
        again = importer.run(sample_files)
        assert (again.imported, again.duplicates, again.failures) == (0, len(sample_files), [])
        assert {s.image_set_id: s.version for s in services.store.list_image_sets()} == versions
    finally:
        services.close()


def test_adding_instances_to_a_series_writes_a_new_version(tmp_path, sample_files):
    ct = sorted(p for p in sample_files if read(p).Modality == "CT")
    ds = read(ct[0])
    series = [p for p in ct if read(p).SeriesInstanceUID == ds.SeriesInstanceUID]
    services = open_test_services(tmp_path)
    try:
        importer = Importer(services.store, services.index, workers=1)
        importer.run(series[:3])
        importer.run(series[3:])
        image_set = image_set_id_for(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        assert services.store.get_image_set(image_set).version == 2
        metadata = services.store.get_image_set_metadata(image_set)
        assert len(list(iter_instances(metadata))) == len(series)
        with services.index.connect() as connection:
            count = connection.execute(select(func.count()).select_from(schema.instance)).scalar()
        assert count == len(series)
    finally:
        services.close()


def test_bad_files_are_reported_and_skipped(tmp_path, sample_files, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = sample_files[0]
    shutil.copy(good, folder / "good.dcm")
    (folder / "notes.txt").write_text("not DICOM at all")
    (folder / "truncated.dcm").write_bytes(good.read_bytes()[:400])
    no_uid = read(good)
    del no_uid.SeriesInstanceUID
    no_uid.SOPInstanceUID = "1.2.3.4"
    no_uid.save_as(folder / "no-series.dcm")
    status = cli_main(["import", "--data-dir", str(tmp_path / "data"), str(folder)])
    out, err = capsys.readouterr()
    assert status == 1
    assert "imported 1, already present 0, failed 3" in out
    assert "notes.txt: not a DICOM Part 10 file" in err
    assert "no-series.dcm: missing SeriesInstanceUID" in err
    assert "truncated.dcm:" in err


def test_interrupted_import_leaves_no_visible_image_set(tmp_path, sample_files, monkeypatch):
    services = open_test_services(tmp_path)
    real_replace = os.replace

    def crash_at_commit(src, dst):
        if str(dst).endswith("imageset.json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_at_commit)
    try:
        with pytest.raises(OSError):
            Importer(services.store, services.index, workers=1).run(sample_files[:3])
        assert list(services.store.list_image_sets()) == []
        with services.index.connect() as connection:
            assert connection.execute(select(func.count()).select_from(schema.study)).scalar() == 0
        monkeypatch.setattr(os, "replace", real_replace)
        report = Importer(services.store, services.index, workers=1).run(sample_files[:3])
        assert report.imported == 3
    finally:
        services.close()


def test_pydicom_files_import(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in bundled_files():
        shutil.copy(path, folder / path.name)
    services = open_test_services(tmp_path / "data")
    try:
        report = Importer(services.store, services.index, workers=2).run(find_files([folder]))
    finally:
        services.close()
    # Frames of instances found present already (pydicom's files share SOP UIDs) are not left
    # behind in the staging folder.
    assert list(services.store.staging_dir.iterdir()) == []
    failed = {Path(f.path).name for f in report.failures}
    # Files without the UIDs an image set needs, or whose pixel data pydicom cannot read.
    assert "MR_truncated.dcm" in failed and "CT_small.dcm" not in failed
    assert report.imported + report.duplicates + len(failed) == len(bundled_files())


def test_small_batches_commit_during_the_run(tmp_path, sample_files, monkeypatch):
    """With a batch bound of one instance every file is its own image-set version, written
    while the run goes on."""
    monkeypatch.setattr("dicomweb_proxy.ingest.importer.BATCH_INSTANCES", 1)
    ct = sorted(p for p in sample_files if read(p).Modality == "CT")
    series_uid = read(ct[0]).SeriesInstanceUID
    series = [p for p in ct if read(p).SeriesInstanceUID == series_uid][:3]
    services = open_test_services(tmp_path)
    try:
        Importer(services.store, services.index, workers=1).run(series)
        ds = read(series[0])
        image_set = image_set_id_for(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        assert services.store.get_image_set(image_set).version == 3
    finally:
        services.close()


def test_a_failed_run_leaves_no_staged_frames(tmp_path, sample_files, monkeypatch):
    services = open_test_services(tmp_path)

    def index_down(*args, **kwargs):
        raise RuntimeError("index unavailable")

    monkeypatch.setattr("dicomweb_proxy.ingest.importer.index_image_set", index_down)
    try:
        with pytest.raises(RuntimeError):
            Importer(services.store, services.index, workers=2).run(sample_files)
        assert list(services.store.staging_dir.iterdir()) == []
    finally:
        services.close()


def series_of(sample_files, count: int) -> list[list[Path]]:
    """*count* series of ten files or more (the longest last), each in file order."""
    found: dict[str, list[Path]] = {}
    for path in sorted(sample_files):
        found.setdefault(str(read(path).SeriesInstanceUID), []).append(path)
    chosen = sorted((files for files in found.values() if len(files) >= 10), key=len)
    assert len(chosen) >= count
    return chosen[: count - 1] + chosen[-1:]  # the longest last


def image_set_of(path: Path) -> str:
    ds = read(path)
    return image_set_id_for(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_series_is_written_once_as_soon_as_others_follow_it(
    tmp_path, sample_files, monkeypatch, workers
):
    """Folders are walked in order, so files of a series arrive together: each series is one
    version, written while the files after it are parsed, not at the end of the run."""
    monkeypatch.setattr("dicomweb_proxy.ingest.importer.IDLE_FILES", 2)
    first, second = series_of(sample_files, 2)
    services = open_test_services(tmp_path)
    seen_during_run = []

    def progress(_n):
        if not seen_during_run:
            try:
                services.store.get_image_set(image_set_of(first[0]))
                seen_during_run.append(True)
            except ImageSetNotFound:
                pass

    try:
        report = Importer(services.store, services.index, workers=workers).run(
            first + second, progress=progress
        )
        assert report.imported == len(first) + len(second)
        for series in (first, second):
            assert services.store.get_image_set(image_set_of(series[0])).version == 1
        if workers == 1:  # written in this process: visible at once
            assert seen_during_run
    finally:
        services.close()


def test_interleaved_series_are_still_written_once_each(tmp_path, sample_files, monkeypatch):
    """Files of two series in turns of three: neither looks finished while the other's files
    arrive, since each waits eight times its usual gap."""
    monkeypatch.setattr("dicomweb_proxy.ingest.importer.IDLE_FILES", 2)
    first, second = (files[:9] for files in series_of(sample_files, 2))
    interleaved = [
        path for turn in range(3) for files in (first, second) for path in files[turn * 3 :][:3]
    ]
    services = open_test_services(tmp_path)
    try:
        Importer(services.store, services.index, workers=1).run(interleaved)
        for series in (first, second):
            assert services.store.get_image_set(image_set_of(series[0])).version == 1
    finally:
        services.close()
