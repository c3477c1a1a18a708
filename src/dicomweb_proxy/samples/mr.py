"""MR brain series: T1 and T2 axial slices of the head phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage

from .encoding import set_pixels
from .model import Series, decimal_string, new_instance, save, seeded_rng, seeded_uid
from .phantoms import HEAD, MR_SIGNAL, NoiseBank, Phantom, box_blur


def write_mr_series(
    out_dir: Path,
    series: Series,
    *,
    weighting: str,
    slices: int,
    seed: int,
    transfer_syntax: str,
) -> list[Path]:
    """Axial brain slices, 12 bits stored in uint16, with Rician noise like magnitude images."""
    size, fov, thickness, gap = 256, 240.0, 5.0, 1.0
    rng = seeded_rng(seed, "mr", series.study.accession, series.number)
    phantom = Phantom(HEAD, MR_SIGNAL[weighting], rows=size, cols=size, background=0.0)
    noise = NoiseBank(rng, size, size, 20.0)
    spacing = fov / size
    corner = -fov / 2 + spacing / 2
    centre, width = (600, 1200) if weighting == "T1" else (900, 1800)
    paths = []
    for index in range(slices):
        signal = box_blur(phantom.render(0.1 + 0.8 * index / max(slices - 1, 1)), 1)
        magnitude = np.hypot(signal + noise.sample(rng), noise.sample(rng))
        pixels = np.clip(np.rint(magnitude), 0, 4095).astype(np.uint16)
        z_mm = -40.0 + index * (thickness + gap)
        ds = new_instance(series, MRImageStorage, index + 1, seed, offset_s=index * 12)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.FrameOfReferenceUID = seeded_uid(seed, "frame-of-reference", ds.AccessionNumber)
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        _add_mr_sequence(ds, weighting)
        ds.MagneticFieldStrength = "3"
        ds.ImagingFrequency = "123.2"
        ds.ImagedNucleus = "1H"
        ds.SliceThickness = decimal_string(thickness)
        ds.SpacingBetweenSlices = decimal_string(thickness + gap)
        ds.PixelSpacing = [decimal_string(spacing), decimal_string(spacing)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.ImagePositionPatient = [
            decimal_string(corner),
            decimal_string(corner),
            decimal_string(z_mm),
        ]
        ds.SliceLocation = decimal_string(z_mm)
        ds.WindowCenter, ds.WindowWidth = str(centre), str(width)
        set_pixels(ds, pixels[None], transfer_syntax, photometric="MONOCHROME2", bits_stored=12)
        paths.append(save(out_dir, series, ds, transfer_syntax))
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
