"""Computed radiography: MONOCHROME1 chest radiographs carrying a private block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ComputedRadiographyImageStorage

from .encoding import set_pixels
from .model import Series, new_instance, save, seeded_rng
from .phantoms import CR_ATTENUATION, CR_LATERAL, CR_PA, Phantom, box_blur

PRIVATE_CREATOR = "DICOMWEB_PROXY_TEST"
"""Private creator of the private block (group 0x0011) on the CR instances."""


def write_cr(out_dir: Path, series: Series, *, view: str, seed: int, transfer_syntax: str) -> Path:
    """A MONOCHROME1 chest radiograph (bone is white = low values), 12 bits stored."""
    rows, cols = 640, 512
    rng = seeded_rng(seed, "cr", series.study.accession, series.number)
    shapes = CR_PA if view == "PA" else CR_LATERAL
    phantom = Phantom(shapes, CR_ATTENUATION, rows=rows, cols=cols, background=0, additive=True)
    attenuation = box_blur(phantom.render(), 3)
    signal = 3900 - 1400 * attenuation + rng.normal(0, 15, attenuation.shape)
    pixels = np.clip(np.rint(signal), 0, 4095).astype(np.uint16)
    ds = new_instance(series, ComputedRadiographyImageStorage, 1, seed)
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
    set_pixels(ds, pixels[None], transfer_syntax, photometric="MONOCHROME1", bits_stored=12)
    return save(out_dir, series, ds, transfer_syntax)


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
