"""Ultrasound cine: RGB multi-frame sector scans with colour flow and an ECG trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UltrasoundMultiFrameImageStorage

from .encoding import set_pixels
from .model import Series, decimal_string, new_instance, save, seeded_rng

_FRAME_INCREMENT_FRAME_TIME = 0x00181063  # (0018,1063) Frame Time drives the cine


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


def write_us_cine(
    out_dir: Path, series: Series, instance_number: int, *, seed: int, transfer_syntax: str
) -> Path:
    rows, cols, n_frames, frame_ms = 240, 320, 12, 33.3
    rng = seeded_rng(seed, "us", series.study.accession, series.number, instance_number)
    frames = _ultrasound_frames(rng, n_frames, rows, cols)
    ds = new_instance(
        series,
        UltrasoundMultiFrameImageStorage,
        instance_number,
        seed,
        offset_s=instance_number * 40,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.LossyImageCompression = "00"
    ds.FrameTime = decimal_string(frame_ms)
    ds.CineRate = round(1000 / frame_ms)
    ds.RecommendedDisplayFrameRate = round(1000 / frame_ms)
    ds.FrameIncrementPointer = _FRAME_INCREMENT_FRAME_TIME
    ds.PreferredPlaybackSequencing = 0
    ds.SequenceOfUltrasoundRegions = [_us_region(rows, cols)]
    set_pixels(ds, frames, transfer_syntax, photometric="RGB", bits_stored=8)
    return save(out_dir, series, ds, transfer_syntax)


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
