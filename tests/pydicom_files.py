"""pydicom's bundled test files, as a second source of real-world variety."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from unittest import mock

import pydicom
from pydicom.data import get_testdata_files


@functools.cache
def bundled_files() -> list[Path]:
    """Every bundled file pydicom can read (downloadable extras are not fetched)."""
    # get_testdata_files also tries to download pydicom-data's extra files; without a network
    # that costs ~25 s of failed requests. Offer it no online files.
    with (
        warnings.catch_warnings(),
        mock.patch("pydicom.data.data_manager.online_test_file_dummy_paths", dict),
    ):
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
