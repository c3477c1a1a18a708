"""The sample study set (demo and tests) and bulk CT studies (benchmarks).

Everything derives from a seed, so two runs with the same seed write identical files.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
)

from .ct import CT_BODY_RECON, CT_HEAD_BONE, CT_HEAD_SOFT, write_ct_series
from .encoding import SUPPORTED_TRANSFER_SYNTAXES
from .model import Patient, Series, Study, seeded_rng
from .mr import write_mr_series
from .radiography import write_cr
from .report import write_sr
from .ultrasound import write_us_cine

__all__ = ["generate_ct_series", "generate_sample_studies"]


_MUELLER = Patient("Müller^Jürgen", "PAT-001", date(1958, 3, 12), "M", "KLINIKUM-SUED")
_OVREBO = Patient("Øvrebø^Åse", "PAT-002", date(1984, 7, 23), "F", "NO-HELSE-VEST")
_NUNEZ = Patient("Nuñez^José", "PAT-003", date(1971, 11, 5), "M")
_YAMADA = Patient(
    "Yamada^Tarou=山田^太郎=やまだ^たろう", "PAT-004", date(1965, 1, 30), "M", "TOKYO-GH"
)
_OZTURK = Patient("Öztürk^Ayşe", "PAT-005", date(1990, 2, 15), "F")

_CT_BODY_STUDY = Study(
    _MUELLER,
    "ACC-1001",
    datetime(2024, 3, 4, 9, 12, 5),
    "CT Thorax/Abdomen mit KM",
    "Weiß^Anna^^Dr.",
    ("CTTA", "CT thorax and abdomen with contrast"),
    "Klinikum Süd",
    prior_accession="ACC-0917",
)
_MR_STUDY = Study(
    _OVREBO,
    "ACC-2001",
    datetime(2024, 3, 11, 23, 50, 0),  # runs past midnight: series dates differ from the study's
    "MR hjerne uten kontrast",
    "Hansen^Kari",
    ("MRBR", "MR brain without contrast"),
    "Haukeland universitetssjukehus",
)
_US_STUDY = Study(
    _NUNEZ,
    "ACC-3001",
    datetime(2024, 4, 2, 14, 30, 0),
    "Ecografía abdominal",
    "García^Lucía",
    ("USAB", "US abdomen"),
    "Hospital Clínico San Martín",
)
_CT_HEAD_STUDY = Study(
    _YAMADA,
    "ACC-4001",
    datetime(2024, 5, 20, 8, 5, 0),
    "頭部単純CT",
    "Suzuki^Ichiro=鈴木^一郎=すずき^いちろう",
    ("CTHD", "CT head without contrast"),
    "東京総合病院",
)
_CR_STUDY = Study(
    _OZTURK,
    "ACC-5001",
    datetime(2024, 6, 7, 11, 45, 0),
    "Akciğer grafisi PA ve yan",
    "Yılmaz^Mehmet",
    ("CRCH", "XR chest 2 views"),
    "Şehir Hastanesi",
)


_CT_BODY_AXIAL = Series(
    _CT_BODY_STUDY, 2, "CT", "Thorax-Abdomen 5.0 B30f", datetime(2024, 3, 4, 9, 15, 41), "CHEST"
)
_MR_T1 = Series(_MR_STUDY, 3, "MR", "T1 SE axial", datetime(2024, 3, 11, 23, 54, 12), "HEAD")
_MR_T2 = Series(_MR_STUDY, 4, "MR", "T2 TSE axial FS", datetime(2024, 3, 12, 0, 7, 31), "HEAD")
_US_CINE = Series(_US_STUDY, 1, "US", "Abdomen cine", datetime(2024, 4, 2, 14, 31, 10), "ABDOMEN")
_SR_REPORT = Series(_US_STUDY, 900, "SR", "Informe", datetime(2024, 4, 2, 14, 52, 0))
_CT_HEAD_SOFT_SERIES = Series(
    _CT_HEAD_STUDY, 2, "CT", "Head 5.0 H30s", datetime(2024, 5, 20, 8, 7, 12), "HEAD"
)
_CT_HEAD_BONE_SERIES = Series(
    _CT_HEAD_STUDY, 3, "CT", "Head 5.0 H70h bone", datetime(2024, 5, 20, 8, 7, 40), "HEAD"
)
_CR_PA_SERIES = Series(_CR_STUDY, 1, "CR", "Thorax PA", datetime(2024, 6, 7, 11, 47, 2), "CHEST")
_CR_LAT_SERIES = Series(
    _CR_STUDY, 2, "CR", "Thorax lateral", datetime(2024, 6, 7, 11, 48, 30), "CHEST"
)


def generate_sample_studies(out_dir: Path, *, seed: int = 0) -> list[Path]:
    """Write the demo/test study set and return its Part 10 files.

    Five patients with UTF-8 names and five studies chosen to exercise the server's code paths:
    CT body (20 slices, Explicit VR LE); MR brain T1 (10, Explicit VR LE) and T2 (10, RLE
    Lossless) with series past midnight; a US study with an RGB cine (Explicit VR LE), a JPEG
    baseline YBR_FULL_422 cine and a Comprehensive SR (Deflated); CT head soft tissue (10,
    Implicit VR LE) and bone (10, JPEG 2000 Lossless); CR chest PA (Explicit VR LE) and lateral
    (Explicit VR Big Endian), MONOCHROME1 with a private block.
    """
    out_dir = Path(out_dir)
    paths = write_ct_series(
        out_dir,
        _CT_BODY_AXIAL,
        CT_BODY_RECON,
        slices=20,
        size=256,
        seed=seed,
        transfer_syntax=ExplicitVRLittleEndian,
    )
    for series, weighting, tsyntax in (
        (_MR_T1, "T1", ExplicitVRLittleEndian),
        (_MR_T2, "T2", RLELossless),
    ):
        paths += write_mr_series(
            out_dir, series, weighting=weighting, slices=10, seed=seed, transfer_syntax=tsyntax
        )
    cines = ((1, ExplicitVRLittleEndian), (2, JPEGBaseline8Bit))
    for number, tsyntax in cines:
        paths.append(write_us_cine(out_dir, _US_CINE, number, seed=seed, transfer_syntax=tsyntax))
    evidence = [(_US_CINE, number, UltrasoundMultiFrameImageStorage) for number, _ in cines]
    paths.append(
        write_sr(
            out_dir, _SR_REPORT, evidence, seed=seed, transfer_syntax=DeflatedExplicitVRLittleEndian
        )
    )
    for series, recon, tsyntax in (
        (_CT_HEAD_SOFT_SERIES, CT_HEAD_SOFT, ImplicitVRLittleEndian),
        (_CT_HEAD_BONE_SERIES, CT_HEAD_BONE, JPEG2000Lossless),
    ):
        paths += write_ct_series(
            out_dir, series, recon, slices=10, size=256, seed=seed, transfer_syntax=tsyntax
        )
    for series, view, tsyntax in (
        (_CR_PA_SERIES, "PA", ExplicitVRLittleEndian),
        (_CR_LAT_SERIES, "LL", ExplicitVRBigEndian),
    ):
        paths.append(write_cr(out_dir, series, view=view, seed=seed, transfer_syntax=tsyntax))
    return paths


# --- bulk CT for benchmarks -----------------------------------------------------------------------


def generate_ct_series(
    out_dir: Path,
    *,
    n_studies: int,
    slices: int = 100,
    size: int = 512,
    seed: int = 0,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> list[Path]:
    """Write n_studies CT studies (one patient and one axial series each) for benchmarks.

    The thorax/abdomen phantom is rendered per slice from precomputed distance fields and a
    shared noise field, so the cost is dominated by encoding and writing, not by the phantom.
    """
    if transfer_syntax not in SUPPORTED_TRANSFER_SYNTAXES or transfer_syntax == JPEGBaseline8Bit:
        raise ValueError(f"unsupported transfer syntax for CT: {transfer_syntax}")
    out_dir = Path(out_dir)
    recon = replace(CT_BODY_RECON, thickness_mm=2.5, windows=((40, 400, "SOFT TISSUE"),))
    scales = seeded_rng(seed, "bench-scales").uniform(0.9, 1.08, n_studies)
    paths: list[Path] = []
    for i in range(n_studies):
        patient = Patient(
            f"Benchmark^Patient {i + 1:05d}",
            f"BENCH-{seed}-{i + 1:05d}",
            date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
            "MF"[i % 2],
        )
        when = datetime(2023, 1, 2, 8, 0, 0) + timedelta(days=i // 20, minutes=(i % 20) * 25)
        study = Study(
            patient,
            f"BENCH{i + 1:07d}",
            when,
            "CT Thorax/Abdomen",
            "Benchmark^Referrer",
            ("CTTA", "CT thorax and abdomen with contrast"),
            "Benchmark Hospital",
        )
        series = Series(study, 2, "CT", "Axial 2.5 B30f", when + timedelta(minutes=3), "CHEST")
        paths += write_ct_series(
            out_dir,
            series,
            recon,
            slices=slices,
            size=size,
            seed=seed,
            transfer_syntax=transfer_syntax,
            patient_scale=float(scales[i]),
        )
    return paths
