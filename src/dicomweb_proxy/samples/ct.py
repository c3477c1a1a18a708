"""CT series: axial slices of a phantom, one instance per slice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from .encoding import set_pixels
from .model import Series, decimal_string, new_instance, save, seeded_rng, seeded_uid
from .phantoms import CT_BODY, CT_HU, HEAD, NoiseBank, Phantom, Shape, fov_mask


@dataclass(frozen=True)
class CtRecon:
    """How a CT series is reconstructed and displayed."""

    shapes: tuple[Shape, ...]
    fov_mm: float
    thickness_mm: float
    kernel: str
    noise_hu: float
    windows: tuple[tuple[int, int, str], ...]  # (centre, width, explanation)


CT_BODY_RECON = CtRecon(
    CT_BODY, 500.0, 5.0, "B30f", 10.0, ((40, 400, "SOFT TISSUE"), (-600, 1500, "LUNG"))
)
CT_HEAD_SOFT = CtRecon(HEAD, 250.0, 5.0, "H30s", 4.0, ((40, 80, "BRAIN"),))
CT_HEAD_BONE = CtRecon(HEAD, 250.0, 5.0, "H70h", 25.0, ((40, 80, "BRAIN"), (600, 2800, "BONE")))

_CT_PADDING = -2000  # stored value outside the reconstruction circle, as many scanners write
_CT_INTERCEPT = -1024


def write_ct_series(
    out_dir: Path,
    series: Series,
    recon: CtRecon,
    *,
    slices: int,
    size: int,
    seed: int,
    transfer_syntax: str,
    patient_scale: float = 1.0,
) -> list[Path]:
    """Axial slices of a phantom, one instance per slice, stored as int16 with intercept -1024."""
    rng = seeded_rng(seed, "ct", series.study.accession, series.number)
    shapes = [shape.scaled(patient_scale) for shape in recon.shapes]
    phantom = Phantom(shapes, CT_HU, rows=size, cols=size, background=-1000.0)
    noise = NoiseBank(rng, size, size, recon.noise_hu)
    outside = fov_mask(size)
    spacing = recon.fov_mm / size
    corner = -recon.fov_mm / 2 + spacing / 2
    paths = []
    for index in range(slices):
        hu = phantom.render(index / max(slices - 1, 1)) + noise.sample(rng)
        stored = np.rint(np.clip(hu, -1024, 3071) - _CT_INTERCEPT).astype(np.int16)
        stored[outside] = _CT_PADDING
        z_mm = -index * recon.thickness_mm
        ds = new_instance(series, CTImageStorage, index + 1, seed, offset_s=index * 0.5)
        _add_ct_attributes(ds, recon, seed, spacing=spacing, position=(corner, corner, z_mm))
        set_pixels(ds, stored[None], transfer_syntax, photometric="MONOCHROME2", bits_stored=16)
        paths.append(save(out_dir, series, ds, transfer_syntax))
    return paths


def _add_ct_attributes(
    ds: Dataset,
    recon: CtRecon,
    seed: int,
    *,
    spacing: float,
    position: tuple[float, float, float],
) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate, ds.AcquisitionTime = ds.ContentDate, ds.ContentTime
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = seeded_uid(seed, "frame-of-reference", ds.AccessionNumber)
    ds.PositionReferenceIndicator = ""
    ds.KVP = "120"
    ds.XRayTubeCurrent = 210
    ds.ExposureTime = 500
    ds.ConvolutionKernel = recon.kernel
    ds.ReconstructionDiameter = decimal_string(recon.fov_mm)
    ds.GantryDetectorTilt = "0"
    ds.SliceThickness = decimal_string(recon.thickness_mm)
    ds.PixelSpacing = [decimal_string(spacing), decimal_string(spacing)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [decimal_string(v) for v in position]
    ds.SliceLocation = decimal_string(position[2])
    ds.RescaleIntercept = decimal_string(_CT_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelPaddingValue = _CT_PADDING
    ds.WindowCenter = [str(c) for c, _, _ in recon.windows]
    ds.WindowWidth = [str(w) for _, w, _ in recon.windows]
    ds.WindowCenterWidthExplanation = [e for _, _, e in recon.windows]
