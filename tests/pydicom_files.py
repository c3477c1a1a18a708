"""pydicom's bundled test files, as a second source of real-world variety."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files


def bundled_files() -> list[Path]:
    """Every bundled file pydicom can read (downloadable extras are not fetched)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = get_testdata_files("*")
    readable = []
    for name in sorted(names):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(name, stop_before_pixels=True)
        except Exception:
            continue
        readable.append(Path(name))
    return readable
