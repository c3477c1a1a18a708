"""Synthetic DICOM Part 10 studies for the demo, the tests and the benchmarks.

Everything derives from a seed: UIDs are ``2.25.`` UIDs (PS3.5 B.2) of name-based UUIDs of the
seed and the instance's place in the set, and pixels come from seeded numpy generators, so two
runs with the same seed write identical files. Pixels are drawn from simple anatomical phantoms
(ellipses of plausible HU, MR signal or echogenicity) so windowing, rendering and codecs see
image-like data rather than noise.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import imagecodecs
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.uid import (
    UID,
    ComprehensiveSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    MRImageStorage,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
)
from pydicom.valuerep import format_number_as_ds

__all__ = [
    "PRIVATE_CREATOR",
    "SUPPORTED_TRANSFER_SYNTAXES",
    "generate_ct_series",
    "generate_sample_studies",
]

PRIVATE_CREATOR = "DICOMWEB_PROXY_TEST"
"""Private creator of the private block (group 0x0011) on the CR instances."""

_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "samples.dicomweb-proxy.invalid")

IMPLEMENTATION_CLASS_UID = UID(f"2.25.{_UUID_NAMESPACE.int}")
IMPLEMENTATION_VERSION_NAME = "DWPROXY_SAMPLES"

_CHARSET = "ISO_IR 192"  # UTF-8: every sample patient has a non-ASCII name
_LOCAL_SCHEME = "99DWP"  # a local coding scheme ("99" prefix) for made-up procedure codes
_FRAME_INCREMENT_FRAME_TIME = 0x00181063  # (0018,1063) Frame Time drives the cine


# --- UIDs and randomness ------------------------------------------------------------------------


def _uid(seed: int, *parts: object) -> UID:
    """A UID that depends only on the seed and the parts, so reruns reproduce it.

    (``generate_uid(prefix=None)`` ignores ``entropy_srcs`` and would be random.)
    """
    name = "/".join(map(str, (seed, *parts)))
    return UID(f"2.25.{uuid.uuid5(_UUID_NAMESPACE, name).int}")


def _rng(seed: int, *parts: object) -> np.random.Generator:
    """A generator per purpose, so adding a series does not change the pixels of the others."""
    key = zlib.crc32("/".join(map(str, parts)).encode())
    return np.random.default_rng([seed, key])


def _ds(value: float) -> str:
    """A DS string of at most 16 characters (pydicom refuses longer ones on write)."""
    return format_number_as_ds(float(value))


# --- what is written: patients, studies, series ------------------------------------------------


@dataclass(frozen=True)
class _Patient:
    name: str
    patient_id: str
    birth_date: date
    sex: str
    issuer: str = ""


@dataclass(frozen=True)
class _Study:
    patient: _Patient
    accession: str
    when: datetime
    description: str
    referring_physician: str
    procedure: tuple[str, str]  # (code value, meaning) in the local coding scheme
    institution: str
    prior_accession: str = ""  # referenced in ReferencedStudySequence when set


@dataclass(frozen=True)
class _Series:
    study: _Study
    number: int
    modality: str
    description: str
    when: datetime
    body_part: str = ""


_EQUIPMENT = {
    # modality: (Manufacturer, ManufacturerModelName, SoftwareVersions)
    "CT": ("Phantom Imaging Systems", "HelixScan 128", "VB20"),
    "MR": ("Phantom Imaging Systems", "SynthMR 3T", "XA31"),
    "US": ("Phantom Imaging Systems", "SonoSynth 5", "3.2.1"),
    "CR": ("Phantom Imaging Systems", "RadPlate CR", "2.0"),
    "SR": ("dicomweb-proxy", "sample generator", "0.1"),
}


def _da(when: date) -> str:
    return when.strftime("%Y%m%d")


def _tm(when: datetime) -> str:
    return when.strftime("%H%M%S")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _age(birth: date, on: date) -> str:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def _instance_uid(seed: int, series: _Series, instance_number: int) -> UID:
    return _uid(seed, "instance", series.study.accession, series.number, instance_number)


def _new_instance(
    series: _Series, sop_class: str, instance_number: int, seed: int, *, offset_s: float = 0
) -> Dataset:
    """An instance with the patient, study, series, equipment and SOP common attributes set."""
    study, patient = series.study, series.study.patient
    content = series.when + timedelta(seconds=offset_s)
    ds = Dataset()
    ds.SpecificCharacterSet = _CHARSET
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _instance_uid(seed, series, instance_number)
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da(content), _tm(content)
    ds.StudyDate, ds.StudyTime = _da(study.when), _tm(study.when)
    ds.SeriesDate, ds.SeriesTime = _da(series.when), _tm(series.when)
    ds.ContentDate, ds.ContentTime = _da(content), _tm(content)
    ds.AccessionNumber = study.accession
    ds.Modality = series.modality
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = _EQUIPMENT[series.modality]
    ds.InstitutionName = study.institution
    ds.ReferringPhysicianName = study.referring_physician
    ds.StudyDescription = study.description
    ds.ProcedureCodeSequence = [_code(study.procedure[0], _LOCAL_SCHEME, study.procedure[1])]
    ds.SeriesDescription = series.description
    if study.prior_accession:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Study Management (retired)
        ref.ReferencedSOPInstanceUID = _uid(seed, "study", study.prior_accession)
        ds.ReferencedStudySequence = [ref]
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = _da(patient.birth_date)
    ds.PatientSex = patient.sex
    ds.PatientAge = _age(patient.birth_date, study.when.date())
    if series.body_part:
        ds.BodyPartExamined = series.body_part
    ds.StudyInstanceUID = _uid(seed, "study", study.accession)
    ds.SeriesInstanceUID = _uid(seed, "series", study.accession, series.number)
    ds.StudyID = study.accession.split("-")[-1]
    ds.SeriesNumber = series.number
    ds.InstanceNumber = instance_number
    return ds


def _save(out_dir: Path, series: _Series, ds: Dataset, transfer_syntax: str) -> Path:
    """Write ds as Part 10 to <patient id>/<accession>/<series number>/<instance number>.dcm."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    study = series.study
    path = (
        out_dir
        / study.patient.patient_id
        / study.accession
        / f"{series.number:03d}"
        / f"{ds.InstanceNumber:04d}.dcm"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# --- pixel data encoding ------------------------------------------------------------------------


def _rle_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    return RLELosslessEncoder.encode(
        frame,
        rows=ds.Rows,
        columns=ds.Columns,
        samples_per_pixel=ds.SamplesPerPixel,
        bits_allocated=ds.BitsAllocated,
        bits_stored=ds.BitsStored,
        pixel_representation=ds.PixelRepresentation,
        photometric_interpretation=ds.PhotometricInterpretation,
        planar_configuration=ds.get("PlanarConfiguration", 0),
        number_of_frames=1,
    )


def _j2k_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    # mct=False keeps colour data in RGB, which is what PhotometricInterpretation says.
    return imagecodecs.jpeg2k_encode(
        frame, codecformat="j2k", reversible=True, mct=False, bitspersample=ds.BitsStored
    )


def _htj2k_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    return imagecodecs.htj2k_encode(frame, reversible=True)


def _jpeg_baseline_frame(frame: np.ndarray, ds: Dataset) -> bytes:
    # JFIF YCbCr with 2x1 chroma subsampling is exactly PhotometricInterpretation YBR_FULL_422.
    return imagecodecs.jpeg8_encode(frame, level=90, subsampling="422")


_FRAME_ENCODERS: dict[str, Callable[[np.ndarray, Dataset], bytes]] = {
    RLELossless: _rle_frame,
    JPEG2000Lossless: _j2k_frame,
    HTJ2KLossless: _htj2k_frame,
    JPEGBaseline8Bit: _jpeg_baseline_frame,
}

SUPPORTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    *_FRAME_ENCODERS,
)
"""Transfer syntaxes the generator can write (JPEG baseline needs 8-bit data)."""


def _set_pixels(
    ds: Dataset, frames: np.ndarray, transfer_syntax: str, *, photometric: str, bits_stored: int
) -> None:
    """Fill the Image Pixel module from frames shaped (frames, rows, columns[, samples])."""
    ds.SamplesPerPixel = frames.shape[3] if frames.ndim == 4 else 1
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(frames.dtype.kind == "i")
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    tsyntax = UID(transfer_syntax)
    if tsyntax.is_compressed:
        encoded = [_FRAME_ENCODERS[tsyntax](frame, ds) for frame in frames]
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        if tsyntax == JPEGBaseline8Bit:
            _mark_lossy(ds, frames.nbytes, sum(map(len, encoded)))
    else:
        # pydicom writes OW bytes as given, so big endian data must be swapped here.
        order = "<" if tsyntax.is_little_endian else ">"
        ds.PixelData = frames.astype(frames.dtype.newbyteorder(order), copy=False).tobytes()
        ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"


def _mark_lossy(ds: Dataset, raw_size: int, encoded_size: int) -> None:
    """Record the lossy JPEG encoding, as a modality writing JPEG baseline would."""
    if ds.SamplesPerPixel == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = _ds(round(raw_size / encoded_size, 2))
    ds.LossyImageCompressionMethod = "ISO_10918_1"


# --- phantoms -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """An axis-aligned ellipse in normalised image coordinates (-1..1, y towards the bottom).

    It exists for slice positions z0 <= z <= z1 (0..1 across the series); a tapered shape shrinks
    towards both ends like an organ, an untapered one keeps its size like a vessel or the spine.
    """

    cx: float
    cy: float
    a: float
    b: float
    tissue: str
    z0: float = -1.0
    z1: float = 2.0
    taper: bool = False

    def extent(self, z: float) -> float:
        """The ellipse's size at slice position z as a fraction of its full size."""
        if not self.z0 <= z <= self.z1:
            return 0.0
        if not self.taper:
            return 1.0
        t = (2 * z - self.z0 - self.z1) / (self.z1 - self.z0)
        return float(np.sqrt(1 - t * t))

    def scaled(self, k: float) -> _Shape:
        return replace(self, cx=self.cx * k, cy=self.cy * k, a=self.a * k, b=self.b * k)


class _Part(NamedTuple):
    region: tuple[slice, slice]
    d2: np.ndarray  # squared normalised distance to the centre over the region
    shape: _Shape
    value: float


class _Phantom:
    """Shapes with distance fields precomputed once, so a slice costs one threshold per shape."""

    def __init__(
        self,
        shapes: Iterable[_Shape],
        values: dict[str, float],
        *,
        rows: int,
        cols: int,
        background: float,
        additive: bool = False,
    ) -> None:
        self._rows, self._cols = rows, cols
        self._background = background
        self._additive = additive  # add values (X-ray attenuation) rather than paint over
        self._parts = [self._prepare(shape, values[shape.tissue]) for shape in shapes]

    def _prepare(self, shape: _Shape, value: float) -> _Part:
        r0, r1, ys = _pixel_span(shape.cy, shape.b, self._rows)
        c0, c1, xs = _pixel_span(shape.cx, shape.a, self._cols)
        d2 = ((xs[None, :] - shape.cx) / shape.a) ** 2 + ((ys[:, None] - shape.cy) / shape.b) ** 2
        return _Part((slice(r0, r1), slice(c0, c1)), d2, shape, value)

    def render(self, z: float = 0.5) -> np.ndarray:
        """The float32 image at slice position z."""
        image = np.full((self._rows, self._cols), self._background, np.float32)
        for part in self._parts:
            extent = part.shape.extent(z)
            if extent <= 0:
                continue
            view = image[part.region]
            inside = part.d2 <= extent * extent
            if self._additive:
                view[inside] += part.value
            else:
                view[inside] = part.value
        return image


def _pixel_span(centre: float, half: float, n: int) -> tuple[int, int, np.ndarray]:
    """The pixel range covering centre +- half (normalised) and the pixels' normalised centres."""
    first = max(int(np.floor((centre - half + 1) / 2 * n)), 0)
    last = max(min(int(np.ceil((centre + half + 1) / 2 * n)) + 1, n), first)
    coords = (np.arange(first, last, dtype=np.float32) + 0.5) / n * 2 - 1
    return first, last, coords


class _NoiseBank:
    """One large Gaussian field; each slice takes a random window of it (cheap yet varied)."""

    def __init__(self, rng: np.random.Generator, rows: int, cols: int, sigma: float) -> None:
        self._rows, self._cols = rows, cols
        self._field = rng.standard_normal((2 * rows, 2 * cols), dtype=np.float32) * sigma

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        y, x = rng.integers(0, self._rows), rng.integers(0, self._cols)
        return self._field[y : y + self._rows, x : x + self._cols]


def _box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """A separable box filter (cumulative sums): softens ellipse edges like a system blur."""
    size = 2 * radius + 1
    out = image.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], "edge")
        sums = np.cumsum(padded, axis=axis)
        sums = np.insert(sums, 0, 0, axis=axis)
        n = out.shape[axis]
        out = (sums.take(range(size, size + n), axis) - sums.take(range(n), axis)) / size
    return out.astype(np.float32)


def _fov_mask(size: int) -> np.ndarray:
    """Pixels outside the circular reconstruction field of view of a CT slice."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return c[None, :] ** 2 + c[:, None] ** 2 > 1


def _mirror(shape: _Shape) -> tuple[_Shape, _Shape]:
    return shape, replace(shape, cx=-shape.cx)


def _ribs() -> tuple[_Shape, ...]:
    """Rib cross-sections along both sides of the chest wall, in the thoracic slices only."""
    ribs: list[_Shape] = []
    for degrees in (-70, -45, -20, 5, 30, 55, 75):
        t = np.deg2rad(degrees)
        x, y = 0.72 * float(np.cos(t)), 0.05 + 0.49 * float(np.sin(t))
        ribs += _mirror(_Shape(x, y, 0.035, 0.03, "rib", 0, 0.6))
    return tuple(ribs)


# Thorax (z = 0) to upper abdomen (z = 1), patient supine: anterior at the top of the image.
_CT_BODY: tuple[_Shape, ...] = (
    _Shape(0, 0.74, 0.9, 0.025, "table"),
    _Shape(0, 0.05, 0.82, 0.58, "fat"),
    _Shape(0, 0.05, 0.76, 0.52, "muscle"),
    *_mirror(_Shape(0.36, -0.02, 0.27, 0.4, "lung", -0.15, 0.65, taper=True)),
    _Shape(0.08, 0.0, 0.22, 0.2, "blood", 0.1, 0.55, taper=True),
    _Shape(-0.3, 0.05, 0.4, 0.34, "liver", 0.45, 1.3, taper=True),
    _Shape(0.52, 0.15, 0.15, 0.2, "spleen", 0.5, 0.9, taper=True),
    _Shape(0.28, -0.12, 0.16, 0.1, "gas", 0.5, 0.75, taper=True),
    *_mirror(_Shape(0.33, 0.3, 0.1, 0.14, "kidney", 0.7, 1.2, taper=True)),
    _Shape(0.05, 0.27, 0.05, 0.05, "contrast"),
    _Shape(0, -0.5, 0.06, 0.025, "cortical", 0, 0.5),
    _Shape(0, 0.38, 0.1, 0.09, "cortical"),
    _Shape(0, 0.38, 0.08, 0.07, "cancellous"),
    _Shape(0, 0.52, 0.035, 0.035, "csf"),
    _Shape(0, 0.61, 0.025, 0.05, "cortical"),
    *_ribs(),
)

# Skull base (z = 0) to vertex (z = 1): the same anatomy serves CT and MR head series.
_HEAD: tuple[_Shape, ...] = (
    _Shape(0, 0, 0.72, 0.86, "fat", -0.3, 1.2, taper=True),
    _Shape(0, 0, 0.68, 0.82, "bone", -0.3, 1.2, taper=True),
    _Shape(0, 0, 0.63, 0.77, "csf", -0.3, 1.2, taper=True),
    _Shape(0, 0, 0.6, 0.74, "gm", -0.3, 1.2, taper=True),
    _Shape(0, 0.02, 0.48, 0.6, "wm", -0.2, 1.1, taper=True),
    *_mirror(_Shape(0.2, 0.05, 0.1, 0.12, "gm", 0.25, 0.6, taper=True)),
    *_mirror(_Shape(0.12, -0.05, 0.07, 0.25, "csf", 0.3, 0.8, taper=True)),
    _Shape(0, 0.1, 0.02, 0.08, "csf", 0.3, 0.6, taper=True),
    *_mirror(_Shape(0.26, -0.74, 0.1, 0.1, "csf", -0.1, 0.25, taper=True)),
    _Shape(0, -0.55, 0.14, 0.12, "air", -0.3, 0.2, taper=True),
)

_CT_HU = {
    "table": 300.0,
    "fat": -100.0,
    "muscle": 45.0,
    "lung": -850.0,
    "blood": 40.0,
    "liver": 60.0,
    "spleen": 50.0,
    "gas": -950.0,
    "kidney": 150.0,
    "contrast": 220.0,
    "cortical": 1000.0,
    "cancellous": 250.0,
    "rib": 800.0,
    "csf": 5.0,
    "bone": 1200.0,
    "gm": 40.0,
    "wm": 28.0,
    "air": -1000.0,
}

_MR_SIGNAL = {
    "T1": {"fat": 1100.0, "bone": 60.0, "csf": 250.0, "gm": 650.0, "wm": 900.0, "air": 0.0},
    "T2": {"fat": 700.0, "bone": 60.0, "csf": 1800.0, "gm": 1000.0, "wm": 700.0, "air": 0.0},
}


# --- CT -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CtRecon:
    """How a CT series is reconstructed and displayed."""

    shapes: tuple[_Shape, ...]
    fov_mm: float
    thickness_mm: float
    kernel: str
    noise_hu: float
    windows: tuple[tuple[int, int, str], ...]  # (centre, width, explanation)


_CT_BODY_RECON = _CtRecon(
    _CT_BODY, 500.0, 5.0, "B30f", 10.0, ((40, 400, "SOFT TISSUE"), (-600, 1500, "LUNG"))
)
_CT_HEAD_SOFT = _CtRecon(_HEAD, 250.0, 5.0, "H30s", 4.0, ((40, 80, "BRAIN"),))
_CT_HEAD_BONE = _CtRecon(_HEAD, 250.0, 5.0, "H70h", 25.0, ((40, 80, "BRAIN"), (600, 2800, "BONE")))

_CT_PADDING = -2000  # stored value outside the reconstruction circle, as many scanners write
_CT_INTERCEPT = -1024


def _write_ct_series(
    out_dir: Path,
    series: _Series,
    recon: _CtRecon,
    *,
    slices: int,
    size: int,
    seed: int,
    transfer_syntax: str,
    patient_scale: float = 1.0,
) -> list[Path]:
    """Axial slices of a phantom, one instance per slice, stored as int16 with intercept -1024."""
    rng = _rng(seed, "ct", series.study.accession, series.number)
    shapes = [shape.scaled(patient_scale) for shape in recon.shapes]
    phantom = _Phantom(shapes, _CT_HU, rows=size, cols=size, background=-1000.0)
    noise = _NoiseBank(rng, size, size, recon.noise_hu)
    outside = _fov_mask(size)
    spacing = recon.fov_mm / size
    corner = -recon.fov_mm / 2 + spacing / 2
    paths = []
    for index in range(slices):
        hu = phantom.render(index / max(slices - 1, 1)) + noise.sample(rng)
        stored = np.rint(np.clip(hu, -1024, 3071) - _CT_INTERCEPT).astype(np.int16)
        stored[outside] = _CT_PADDING
        z_mm = -index * recon.thickness_mm
        ds = _new_instance(series, CTImageStorage, index + 1, seed, offset_s=index * 0.5)
        _add_ct_attributes(ds, recon, seed, spacing=spacing, position=(corner, corner, z_mm))
        _set_pixels(ds, stored[None], transfer_syntax, photometric="MONOCHROME2", bits_stored=16)
        paths.append(_save(out_dir, series, ds, transfer_syntax))
    return paths


def _add_ct_attributes(
    ds: Dataset,
    recon: _CtRecon,
    seed: int,
    *,
    spacing: float,
    position: tuple[float, float, float],
) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate, ds.AcquisitionTime = ds.ContentDate, ds.ContentTime
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = _uid(seed, "frame-of-reference", ds.AccessionNumber)
    ds.PositionReferenceIndicator = ""
    ds.KVP = "120"
    ds.XRayTubeCurrent = 210
    ds.ExposureTime = 500
    ds.ConvolutionKernel = recon.kernel
    ds.ReconstructionDiameter = _ds(recon.fov_mm)
    ds.GantryDetectorTilt = "0"
    ds.SliceThickness = _ds(recon.thickness_mm)
    ds.PixelSpacing = [_ds(spacing), _ds(spacing)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.SliceLocation = _ds(position[2])
    ds.RescaleIntercept = _ds(_CT_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelPaddingValue = _CT_PADDING
    ds.WindowCenter = [str(c) for c, _, _ in recon.windows]
    ds.WindowWidth = [str(w) for _, w, _ in recon.windows]
    ds.WindowCenterWidthExplanation = [e for _, _, e in recon.windows]


# --- MR -------------------------------------------------------------------------------------------


def _write_mr_series(
    out_dir: Path,
    series: _Series,
    *,
    weighting: str,
    slices: int,
    seed: int,
    transfer_syntax: str,
) -> list[Path]:
    """Axial brain slices, 12 bits stored in uint16, with Rician noise like magnitude images."""
    size, fov, thickness, gap = 256, 240.0, 5.0, 1.0
    rng = _rng(seed, "mr", series.study.accession, series.number)
    phantom = _Phantom(_HEAD, _MR_SIGNAL[weighting], rows=size, cols=size, background=0.0)
    noise = _NoiseBank(rng, size, size, 20.0)
    spacing = fov / size
    corner = -fov / 2 + spacing / 2
    centre, width = (600, 1200) if weighting == "T1" else (900, 1800)
    paths = []
    for index in range(slices):
        signal = _box_blur(phantom.render(0.1 + 0.8 * index / max(slices - 1, 1)), 1)
        magnitude = np.hypot(signal + noise.sample(rng), noise.sample(rng))
        pixels = np.clip(np.rint(magnitude), 0, 4095).astype(np.uint16)
        z_mm = -40.0 + index * (thickness + gap)
        ds = _new_instance(series, MRImageStorage, index + 1, seed, offset_s=index * 12)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.FrameOfReferenceUID = _uid(seed, "frame-of-reference", ds.AccessionNumber)
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        _add_mr_sequence(ds, weighting)
        ds.MagneticFieldStrength = "3"
        ds.ImagingFrequency = "123.2"
        ds.ImagedNucleus = "1H"
        ds.SliceThickness = _ds(thickness)
        ds.SpacingBetweenSlices = _ds(thickness + gap)
        ds.PixelSpacing = [_ds(spacing), _ds(spacing)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.ImagePositionPatient = [_ds(corner), _ds(corner), _ds(z_mm)]
        ds.SliceLocation = _ds(z_mm)
        ds.WindowCenter, ds.WindowWidth = str(centre), str(width)
        _set_pixels(ds, pixels[None], transfer_syntax, photometric="MONOCHROME2", bits_stored=12)
        paths.append(_save(out_dir, series, ds, transfer_syntax))
    return paths


def _add_mr_sequence(ds: Dataset, weighting: str) -> None:
    ds.ScanningSequence = "SE"
    ds.MRAcquisitionType = "2D"
    ds.NumberOfAverages = "1"
    if weighting == "T1":
        ds.SequenceVariant, ds.ScanOptions = "NONE", ""
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength, ds.FlipAngle = "550", "9", 1, "90"
    else:
        ds.SequenceVariant, ds.ScanOptions = ["SK", "SP"], "FS"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength, ds.FlipAngle = "5000", "96", 16, "150"


# --- ultrasound cine -----------------------------------------------------------------------------


def _ultrasound_frames(rng: np.random.Generator, n_frames: int, rows: int, cols: int) -> np.ndarray:
    """RGB frames of an abdominal sector scan: speckle, a pulsating vessel with colour flow, ECG."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    apex_y, apex_x = -20.0, cols / 2
    radius = np.hypot(yy - apex_y, xx - apex_x)
    theta = np.arctan2(xx - apex_x, yy - apex_y)
    depth = (radius - 25.0) / (rows - 45.0)
    sector = (np.abs(theta) < 0.6) & (depth >= 0) & (depth <= 1)
    echo = np.where((depth > 0.12) & (depth < 0.15), 1.0, 0.55).astype(np.float32)
    gain = np.exp(-0.9 * depth).astype(np.float32) * 1.4
    speckle = rng.rayleigh(0.8, size=(rows + n_frames, cols)).astype(np.float32)
    vessel_d2 = ((depth - 0.55) / 0.1) ** 2 + ((theta - 0.12) / 0.12) ** 2
    ecg = _ecg_trace(cols, rows)
    frames = np.zeros((n_frames, rows, cols, 3), np.uint8)
    for k in range(n_frames):
        phase = 2 * np.pi * k / n_frames
        lumen = vessel_d2 <= (0.8 + 0.2 * np.sin(phase)) ** 2
        gray = 255 * np.where(lumen, 0.05, echo) * speckle[k : k + rows] * gain
        gray = np.clip(gray, 0, 255) * sector
        frame = np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2)
        flow = lumen & sector & (vessel_d2 <= 0.5)
        velocity = np.sin(phase)
        frame[flow] = (200, 30, 30) if velocity >= 0 else (30, 60, 210)
        frame[ecg] = (40, 220, 60)
        frame[rows - 22 : rows - 2, int((k + 0.5) / n_frames * cols)] = (240, 220, 40)
        frames[k] = frame
    return frames


def _ecg_trace(cols: int, rows: int) -> np.ndarray:
    """A mask with a two-beat ECG-like trace along the bottom of the image."""
    x = np.arange(cols)
    beat = (x % (cols // 2)) / (cols // 2)
    y = (
        rows
        - 8
        - 10 * np.exp(-(((beat - 0.3) / 0.015) ** 2))
        - 2 * np.exp(-(((beat - 0.6) / 0.05) ** 2))
    )
    mask = np.zeros((rows, cols), bool)
    mask[np.rint(y).astype(int), x] = True
    return mask


def _write_us_cine(
    out_dir: Path, series: _Series, instance_number: int, *, seed: int, transfer_syntax: str
) -> Path:
    rows, cols, n_frames, frame_ms = 240, 320, 12, 33.3
    rng = _rng(seed, "us", series.study.accession, series.number, instance_number)
    frames = _ultrasound_frames(rng, n_frames, rows, cols)
    ds = _new_instance(
        series,
        UltrasoundMultiFrameImageStorage,
        instance_number,
        seed,
        offset_s=instance_number * 40,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.LossyImageCompression = "00"
    ds.FrameTime = _ds(frame_ms)
    ds.CineRate = round(1000 / frame_ms)
    ds.RecommendedDisplayFrameRate = round(1000 / frame_ms)
    ds.FrameIncrementPointer = _FRAME_INCREMENT_FRAME_TIME
    ds.PreferredPlaybackSequencing = 0
    ds.SequenceOfUltrasoundRegions = [_us_region(rows, cols)]
    _set_pixels(ds, frames, transfer_syntax, photometric="RGB", bits_stored=8)
    return _save(out_dir, series, ds, transfer_syntax)


def _us_region(rows: int, cols: int) -> Dataset:
    """The calibrated 2D tissue region, so measurements on the cine are possible."""
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = cols - 1, rows - 25
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection = 3, 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.05, 0.05
    region.ReferencePixelX0, region.ReferencePixelY0 = cols // 2, 0
    return region


# --- computed radiography -------------------------------------------------------------------------


def _mirror_ribs() -> tuple[_Shape, ...]:
    """Rib arcs as outer minus inner ellipse per hemithorax (additive attenuation)."""
    arcs = []
    for k in range(9):
        for side in (-1, 1):
            cy = -0.62 + 0.13 * k
            arcs.append(_Shape(side * 0.3, cy, 0.34, 0.1, "rib"))
            arcs.append(_Shape(side * 0.3, cy, 0.31, 0.075, "rib_inner"))
    return tuple(arcs)


_CR_PA: tuple[_Shape, ...] = (
    _Shape(0, 0.15, 0.9, 1.15, "body"),
    *_mirror(_Shape(0.38, -0.05, 0.3, 0.6, "lung")),
    _Shape(0.08, 0.2, 0.28, 0.3, "heart"),
    _Shape(0, -0.3, 0.12, 0.5, "mediastinum"),
    _Shape(0, 0, 0.07, 1.2, "spine"),
    _Shape(0, 0.95, 0.6, 0.3, "abdomen"),
    *_mirror(_Shape(0.3, -0.72, 0.3, 0.04, "bone")),
    *_mirror_ribs(),
)

_CR_LATERAL: tuple[_Shape, ...] = (
    _Shape(0, 0.15, 0.75, 1.15, "body"),
    _Shape(-0.05, -0.05, 0.5, 0.6, "lung"),
    _Shape(-0.25, 0.25, 0.3, 0.3, "heart"),
    _Shape(0.45, 0.1, 0.09, 0.9, "spine"),
    _Shape(-0.62, -0.1, 0.04, 0.4, "bone"),
    _Shape(0, 0.95, 0.5, 0.3, "abdomen"),
)

_CR_ATTENUATION = {
    "body": 1.0,
    "lung": -0.6,
    "heart": 0.5,
    "mediastinum": 0.3,
    "spine": 0.6,
    "abdomen": 0.4,
    "bone": 0.4,
    "rib": 0.2,
    "rib_inner": -0.2,
}


def _write_cr(
    out_dir: Path, series: _Series, *, view: str, seed: int, transfer_syntax: str
) -> Path:
    """A MONOCHROME1 chest radiograph (bone is white = low values), 12 bits stored."""
    rows, cols = 640, 512
    rng = _rng(seed, "cr", series.study.accession, series.number)
    shapes = _CR_PA if view == "PA" else _CR_LATERAL
    phantom = _Phantom(shapes, _CR_ATTENUATION, rows=rows, cols=cols, background=0, additive=True)
    attenuation = _box_blur(phantom.render(), 3)
    signal = 3900 - 1400 * attenuation + rng.normal(0, 15, attenuation.shape)
    pixels = np.clip(np.rint(signal), 0, 4095).astype(np.uint16)
    ds = _new_instance(series, ComputedRadiographyImageStorage, 1, seed)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = view
    ds.PatientOrientation = ["L", "F"] if view == "PA" else ["P", "F"]
    ds.KVP = "125" if view == "PA" else "110"
    ds.ExposureTime = 12
    ds.XRayTubeCurrent = 320
    ds.DistanceSourceToDetector = "1800"
    ds.ImagerPixelSpacing = ["0.7", "0.7"]
    ds.PixelSpacing = ["0.7", "0.7"]
    ds.WindowCenter, ds.WindowWidth = "2300", "3000"
    _add_private_block(ds)
    _set_pixels(ds, pixels[None], transfer_syntax, photometric="MONOCHROME1", bits_stored=12)
    return _save(out_dir, series, ds, transfer_syntax)


def _add_private_block(ds: Dataset) -> None:
    """Private LO, US, OB and a sequence whose item holds its own private element."""
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", "synthetic phantom")
    block.add_new(0x02, "US", 42)
    block.add_new(0x03, "OB", bytes(range(16)))
    item = Dataset()
    item.CodeMeaning = "nested item"
    item.private_block(0x0011, PRIVATE_CREATOR, create=True).add_new(0x10, "DS", "3.25")
    block.add_new(0x04, "SQ", [item])


# --- structured report ---------------------------------------------------------------------------


def _content_item(
    relationship: str, value_type: str, concept: tuple[str, str, str], **values: object
) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code(*concept)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _measurement(value: str, unit: tuple[str, str, str]) -> Dataset:
    measured = Dataset()
    measured.MeasurementUnitsCodeSequence = [_code(*unit)]
    measured.NumericValue = value
    return measured


def _sr_tree() -> list[Dataset]:
    """Findings (TEXT, CODE, NUM) and an impression under the report's root CONTAINER."""
    findings = _content_item(
        "CONTAINS",
        "CONTAINER",
        ("121070", "DCM", "Findings"),
        ContinuityOfContent="SEPARATE",
        ContentSequence=[
            _content_item(
                "CONTAINS",
                "TEXT",
                ("121071", "DCM", "Finding"),
                TextValue="Portal vein patent with hepatopetal flow; no focal lesion ≥ 5 mm.",
            ),
            _content_item(
                "CONTAINS",
                "CODE",
                ("363698007", "SCT", "Finding site"),
                ConceptCodeSequence=[_code("10200004", "SCT", "Liver")],
            ),
            _content_item(
                "CONTAINS",
                "NUM",
                ("81827009", "SCT", "Diameter"),
                MeasuredValueSequence=[_measurement("11.5", ("mm", "UCUM", "millimeter"))],
            ),
        ],
    )
    impression = _content_item(
        "CONTAINS",
        "CONTAINER",
        ("121072", "DCM", "Impressions"),
        ContinuityOfContent="SEPARATE",
        ContentSequence=[
            _content_item(
                "CONTAINS",
                "TEXT",
                ("121073", "DCM", "Impression"),
                TextValue="Ecografía abdominal sin hallazgos patológicos.",
            )
        ],
    )
    language = _content_item(
        "HAS CONCEPT MOD",
        "CODE",
        ("121049", "DCM", "Language of Content Item and Descendants"),
        ConceptCodeSequence=[_code("es", "RFC5646", "Spanish")],
    )
    return [language, findings, impression]


def _write_sr(
    out_dir: Path,
    series: _Series,
    evidence: Sequence[tuple[_Series, int, str]],
    *,
    seed: int,
    transfer_syntax: str,
) -> Path:
    """A Comprehensive SR report referencing the (series, instance number, SOP class) evidence."""
    ds = _new_instance(series, ComprehensiveSRStorage, 1, seed)
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.PerformedProcedureCodeSequence = []
    ds.CurrentRequestedProcedureEvidenceSequence = [_evidence(evidence, seed)]
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic imaging report")]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2000"
    ds.ContentTemplateSequence = [template]
    ds.ContentSequence = _sr_tree()
    return _save(out_dir, series, ds, transfer_syntax)


def _evidence(evidence: Sequence[tuple[_Series, int, str]], seed: int) -> Dataset:
    """A Hierarchical SOP Instance Reference to the evidence (all in one study)."""
    study = Dataset()
    study.StudyInstanceUID = _uid(seed, "study", evidence[0][0].study.accession)
    study.ReferencedSeriesSequence = []
    for series in dict.fromkeys(s for s, _, _ in evidence):
        ref_series = Dataset()
        ref_series.SeriesInstanceUID = _uid(seed, "series", series.study.accession, series.number)
        ref_series.ReferencedSOPSequence = []
        for _, number, sop_class in (e for e in evidence if e[0] == series):
            sop = Dataset()
            sop.ReferencedSOPClassUID = sop_class
            sop.ReferencedSOPInstanceUID = _instance_uid(seed, series, number)
            ref_series.ReferencedSOPSequence.append(sop)
        study.ReferencedSeriesSequence.append(ref_series)
    return study


# --- the sample set -------------------------------------------------------------------------------

_MUELLER = _Patient("Müller^Jürgen", "PAT-001", date(1958, 3, 12), "M", "KLINIKUM-SUED")
_OVREBO = _Patient("Øvrebø^Åse", "PAT-002", date(1984, 7, 23), "F", "NO-HELSE-VEST")
_NUNEZ = _Patient("Nuñez^José", "PAT-003", date(1971, 11, 5), "M")
_YAMADA = _Patient(
    "Yamada^Tarou=山田^太郎=やまだ^たろう", "PAT-004", date(1965, 1, 30), "M", "TOKYO-GH"
)
_OZTURK = _Patient("Öztürk^Ayşe", "PAT-005", date(1990, 2, 15), "F")

_CT_BODY_STUDY = _Study(
    _MUELLER,
    "ACC-1001",
    datetime(2024, 3, 4, 9, 12, 5),
    "CT Thorax/Abdomen mit KM",
    "Weiß^Anna^^Dr.",
    ("CTTA", "CT thorax and abdomen with contrast"),
    "Klinikum Süd",
    prior_accession="ACC-0917",
)
_MR_STUDY = _Study(
    _OVREBO,
    "ACC-2001",
    datetime(2024, 3, 11, 23, 50, 0),  # runs past midnight: series dates differ from the study's
    "MR hjerne uten kontrast",
    "Hansen^Kari",
    ("MRBR", "MR brain without contrast"),
    "Haukeland universitetssjukehus",
)
_US_STUDY = _Study(
    _NUNEZ,
    "ACC-3001",
    datetime(2024, 4, 2, 14, 30, 0),
    "Ecografía abdominal",
    "García^Lucía",
    ("USAB", "US abdomen"),
    "Hospital Clínico San Martín",
)
_CT_HEAD_STUDY = _Study(
    _YAMADA,
    "ACC-4001",
    datetime(2024, 5, 20, 8, 5, 0),
    "頭部単純CT",
    "Suzuki^Ichiro=鈴木^一郎=すずき^いちろう",
    ("CTHD", "CT head without contrast"),
    "東京総合病院",
)
_CR_STUDY = _Study(
    _OZTURK,
    "ACC-5001",
    datetime(2024, 6, 7, 11, 45, 0),
    "Akciğer grafisi PA ve yan",
    "Yılmaz^Mehmet",
    ("CRCH", "XR chest 2 views"),
    "Şehir Hastanesi",
)


_CT_BODY_AXIAL = _Series(
    _CT_BODY_STUDY, 2, "CT", "Thorax-Abdomen 5.0 B30f", datetime(2024, 3, 4, 9, 15, 41), "CHEST"
)
_MR_T1 = _Series(_MR_STUDY, 3, "MR", "T1 SE axial", datetime(2024, 3, 11, 23, 54, 12), "HEAD")
_MR_T2 = _Series(_MR_STUDY, 4, "MR", "T2 TSE axial FS", datetime(2024, 3, 12, 0, 7, 31), "HEAD")
_US_CINE = _Series(_US_STUDY, 1, "US", "Abdomen cine", datetime(2024, 4, 2, 14, 31, 10), "ABDOMEN")
_SR_REPORT = _Series(_US_STUDY, 900, "SR", "Informe", datetime(2024, 4, 2, 14, 52, 0))
_CT_HEAD_SOFT_SERIES = _Series(
    _CT_HEAD_STUDY, 2, "CT", "Head 5.0 H30s", datetime(2024, 5, 20, 8, 7, 12), "HEAD"
)
_CT_HEAD_BONE_SERIES = _Series(
    _CT_HEAD_STUDY, 3, "CT", "Head 5.0 H70h bone", datetime(2024, 5, 20, 8, 7, 40), "HEAD"
)
_CR_PA_SERIES = _Series(_CR_STUDY, 1, "CR", "Thorax PA", datetime(2024, 6, 7, 11, 47, 2), "CHEST")
_CR_LAT_SERIES = _Series(
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
    paths = _write_ct_series(
        out_dir,
        _CT_BODY_AXIAL,
        _CT_BODY_RECON,
        slices=20,
        size=256,
        seed=seed,
        transfer_syntax=ExplicitVRLittleEndian,
    )
    for series, weighting, tsyntax in (
        (_MR_T1, "T1", ExplicitVRLittleEndian),
        (_MR_T2, "T2", RLELossless),
    ):
        paths += _write_mr_series(
            out_dir, series, weighting=weighting, slices=10, seed=seed, transfer_syntax=tsyntax
        )
    cines = ((1, ExplicitVRLittleEndian), (2, JPEGBaseline8Bit))
    for number, tsyntax in cines:
        paths.append(_write_us_cine(out_dir, _US_CINE, number, seed=seed, transfer_syntax=tsyntax))
    evidence = [(_US_CINE, number, UltrasoundMultiFrameImageStorage) for number, _ in cines]
    paths.append(
        _write_sr(
            out_dir, _SR_REPORT, evidence, seed=seed, transfer_syntax=DeflatedExplicitVRLittleEndian
        )
    )
    for series, recon, tsyntax in (
        (_CT_HEAD_SOFT_SERIES, _CT_HEAD_SOFT, ImplicitVRLittleEndian),
        (_CT_HEAD_BONE_SERIES, _CT_HEAD_BONE, JPEG2000Lossless),
    ):
        paths += _write_ct_series(
            out_dir, series, recon, slices=10, size=256, seed=seed, transfer_syntax=tsyntax
        )
    for series, view, tsyntax in (
        (_CR_PA_SERIES, "PA", ExplicitVRLittleEndian),
        (_CR_LAT_SERIES, "LL", ExplicitVRBigEndian),
    ):
        paths.append(_write_cr(out_dir, series, view=view, seed=seed, transfer_syntax=tsyntax))
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
    recon = replace(_CT_BODY_RECON, thickness_mm=2.5, windows=((40, 400, "SOFT TISSUE"),))
    scales = _rng(seed, "bench-scales").uniform(0.9, 1.08, n_studies)
    paths: list[Path] = []
    for i in range(n_studies):
        patient = _Patient(
            f"Benchmark^Patient {i + 1:05d}",
            f"BENCH-{seed}-{i + 1:05d}",
            date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
            "MF"[i % 2],
        )
        when = datetime(2023, 1, 2, 8, 0, 0) + timedelta(days=i // 20, minutes=(i % 20) * 25)
        study = _Study(
            patient,
            f"BENCH{i + 1:07d}",
            when,
            "CT Thorax/Abdomen",
            "Benchmark^Referrer",
            ("CTTA", "CT thorax and abdomen with contrast"),
            "Benchmark Hospital",
        )
        series = _Series(study, 2, "CT", "Axial 2.5 B30f", when + timedelta(minutes=3), "CHEST")
        paths += _write_ct_series(
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
