"""The synthetic study generator: valid Part 10, deterministic, and covering what it promises."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from dicomweb_proxy.samples import (
    PRIVATE_CREATOR,
    SUPPORTED_TRANSFER_SYNTAXES,
    generate_ct_series,
    generate_sample_studies,
)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="module")
def sample_paths(sample_dir: Path) -> list[Path]:
    return generate_sample_studies(sample_dir)


@pytest.fixture(scope="module")
def datasets(sample_paths: list[Path]) -> list[FileDataset]:
    return [pydicom.dcmread(path) for path in sample_paths]


def _by_modality(datasets: list[FileDataset], modality: str) -> list[FileDataset]:
    return [ds for ds in datasets if ds.Modality == modality]


def test_files_are_part10_with_matching_file_meta(
    sample_paths: list[Path], datasets: list[FileDataset]
) -> None:
    assert sorted(sample_paths) == sorted(p for p in sample_paths[0].parents[3].rglob("*.dcm"))
    for path, ds in zip(sample_paths, datasets, strict=True):
        assert path.read_bytes()[128:132] == b"DICM"
        meta = ds.file_meta
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.ImplementationClassUID.is_valid
        assert ds.SpecificCharacterSet == "ISO_IR 192"


def test_set_contents_and_transfer_syntaxes(datasets: list[FileDataset]) -> None:
    series = Counter(
        (ds.PatientID, ds.Modality, ds.SeriesNumber, ds.file_meta.TransferSyntaxUID)
        for ds in datasets
    )
    assert series == {
        ("PAT-001", "CT", 2, ExplicitVRLittleEndian): 20,
        ("PAT-002", "MR", 3, ExplicitVRLittleEndian): 10,
        ("PAT-002", "MR", 4, RLELossless): 10,
        ("PAT-003", "US", 1, ExplicitVRLittleEndian): 1,
        ("PAT-003", "US", 1, JPEGBaseline8Bit): 1,
        ("PAT-003", "SR", 900, DeflatedExplicitVRLittleEndian): 1,
        ("PAT-004", "CT", 2, ImplicitVRLittleEndian): 10,
        ("PAT-004", "CT", 3, JPEG2000Lossless): 10,
        ("PAT-005", "CR", 1, ExplicitVRLittleEndian): 1,
        ("PAT-005", "CR", 2, ExplicitVRBigEndian): 1,
    }


def test_uids_are_valid_and_unique_per_entity(datasets: list[FileDataset]) -> None:
    instances = [ds.SOPInstanceUID for ds in datasets]
    assert len(set(instances)) == len(instances)
    studies = {ds.StudyInstanceUID: ds.AccessionNumber for ds in datasets}
    series = {ds.SeriesInstanceUID: (ds.AccessionNumber, ds.SeriesNumber) for ds in datasets}
    assert len(set(studies.values())) == len(studies) == 5
    assert len(set(series.values())) == len(series) == 9
    assert all(UID(uid).is_valid for uid in [*instances, *studies, *series])


def test_same_seed_same_bytes_other_seed_other_uids(
    sample_dir: Path, sample_paths: list[Path], datasets: list[FileDataset], tmp_path: Path
) -> None:
    again = generate_sample_studies(tmp_path / "again")
    assert [p.relative_to(tmp_path / "again") for p in again] == [
        p.relative_to(sample_dir) for p in sample_paths
    ]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(again, sample_paths, strict=True))

    other = generate_sample_studies(tmp_path / "other", seed=1)
    other_uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in other}
    assert other_uids.isdisjoint(ds.SOPInstanceUID for ds in datasets)


def test_non_ascii_names_round_trip(sample_paths: list[Path], datasets: list[FileDataset]) -> None:
    names = {str(ds.PatientName) for ds in datasets}
    assert {"Müller^Jürgen", "Øvrebø^Åse", "Nuñez^José", "Öztürk^Ayşe"} <= names
    yamada = next(ds for ds in datasets if ds.PatientID == "PAT-004")
    assert yamada.PatientName.alphabetic == "Yamada^Tarou"
    assert yamada.PatientName.ideographic == "山田^太郎"
    assert yamada.PatientName.phonetic == "やまだ^たろう"
    # really UTF-8 on disk (Explicit VR LE file, so the bytes are not deflated)
    assert "Müller^Jürgen".encode() in sample_paths[0].read_bytes()


def test_pixel_data_decodes_with_the_declared_geometry(datasets: list[FileDataset]) -> None:
    for ds in datasets:
        if "PixelData" not in ds:
            assert ds.Modality == "SR"
            continue
        pixels = ds.pixel_array
        expected = (ds.Rows, ds.Columns)
        if ds.get("NumberOfFrames", 1) > 1:
            expected = (ds.NumberOfFrames, *expected)
        if ds.SamplesPerPixel > 1:
            expected = (*expected, ds.SamplesPerPixel)
        assert pixels.shape == expected
        assert pixels.dtype.kind == ("i" if ds.PixelRepresentation else "u")
        assert pixels.max() < 2**ds.BitsStored
        assert pixels.std() > 0


def test_ct_values_and_geometry_are_plausible(datasets: list[FileDataset]) -> None:
    body = [ds for ds in _by_modality(datasets, "CT") if ds.PatientID == "PAT-001"]
    hu = apply_modality_lut(body[10].pixel_array, body[10])
    inside = body[10].pixel_array != body[10].PixelPaddingValue
    assert hu[inside].min() >= -1024 and hu[inside].max() <= 3071
    assert (hu[inside] < -700).mean() > 0.1  # air and lung
    assert ((hu > 0) & (hu < 100)).mean() > 0.1  # soft tissue
    z = [float(ds.ImagePositionPatient[2]) for ds in body]
    assert np.allclose(np.diff(z), -float(body[0].SliceThickness))
    assert float(body[0].PixelSpacing[0]) * body[0].Columns == float(body[0].ReconstructionDiameter)
    assert body[0].WindowCenter == [40, -600]


def test_mr_series_dates_differ(datasets: list[FileDataset]) -> None:
    mr = _by_modality(datasets, "MR")
    assert {(ds.SeriesNumber, ds.SeriesDate, ds.SeriesTime) for ds in mr} == {
        (3, "20240311", "235412"),
        (4, "20240312", "000731"),
    }


def test_ultrasound_cines_are_multiframe_rgb(datasets: list[FileDataset]) -> None:
    plain, lossy = sorted(_by_modality(datasets, "US"), key=lambda ds: ds.InstanceNumber)
    for ds in (plain, lossy):
        assert ds.NumberOfFrames == 12
        assert ds.pixel_array.shape == (12, 240, 320, 3)
        assert ds.FrameIncrementPointer == 0x00181063
    assert plain.PhotometricInterpretation == "RGB"
    assert plain.LossyImageCompression == "00"
    assert lossy.PhotometricInterpretation == "YBR_FULL_422"
    assert lossy.LossyImageCompression == "01"


def _value_types(items: list[Dataset]) -> set[str]:
    found = set()
    for item in items:
        found.add(item.ValueType)
        found |= _value_types(item.get("ContentSequence", []))
    return found


def test_sr_tree_and_evidence(datasets: list[FileDataset]) -> None:
    (sr,) = _by_modality(datasets, "SR")
    assert "PixelData" not in sr
    assert _value_types([sr]) >= {"CONTAINER", "TEXT", "CODE", "NUM"}
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    referenced = {ref.ReferencedSOPInstanceUID for ref in evidence.ReferencedSOPSequence}
    assert referenced == {ds.SOPInstanceUID for ds in _by_modality(datasets, "US")}


def test_monochrome1_with_private_block_in_both_endiannesses(datasets: list[FileDataset]) -> None:
    radiographs = _by_modality(datasets, "CR")
    assert {ds.file_meta.TransferSyntaxUID for ds in radiographs} == {
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    }
    for ds in radiographs:
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        block = ds.private_block(0x0011, PRIVATE_CREATOR)
        assert [block[offset].VR for offset in (1, 2, 3, 4)] == ["LO", "US", "OB", "SQ"]
        assert block[2].value == 42
        item = block[4].value[0]
        assert item.private_block(0x0011, PRIVATE_CREATOR)[0x10].value == "3.25"


@pytest.mark.parametrize(
    "transfer_syntax", [ts for ts in SUPPORTED_TRANSFER_SYNTAXES if ts != JPEGBaseline8Bit]
)
def test_bulk_ct_in_every_lossless_syntax_decodes_to_the_same_pixels(
    tmp_path: Path, transfer_syntax: str
) -> None:
    options = {"n_studies": 1, "slices": 2, "size": 64, "seed": 3}
    reference = generate_ct_series(tmp_path / "ref", **options)
    encoded = generate_ct_series(tmp_path / "enc", transfer_syntax=transfer_syntax, **options)
    for ref, enc in zip(reference, encoded, strict=True):
        ds = pydicom.dcmread(enc)
        assert ds.file_meta.TransferSyntaxUID == transfer_syntax
        assert np.array_equal(ds.pixel_array, pydicom.dcmread(ref).pixel_array)


def test_bulk_ct_layout(tmp_path: Path) -> None:
    paths = generate_ct_series(tmp_path, n_studies=3, slices=4, size=64)
    datasets = [pydicom.dcmread(p) for p in paths]
    assert len(paths) == 12
    assert len({ds.PatientID for ds in datasets}) == 3
    assert len({ds.StudyInstanceUID for ds in datasets}) == 3
    assert {ds.pixel_array.shape for ds in datasets} == {(64, 64)}


def test_bulk_ct_rejects_lossy_syntax(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        generate_ct_series(tmp_path, n_studies=1, transfer_syntax=JPEGBaseline8Bit)
