"""Synthetic DICOM studies for the demo, the tests and the benchmarks."""

from dicomweb_proxy.samples.generator import (
    PRIVATE_CREATOR,
    SUPPORTED_TRANSFER_SYNTAXES,
    generate_ct_series,
    generate_sample_studies,
)

__all__ = [
    "PRIVATE_CREATOR",
    "SUPPORTED_TRANSFER_SYNTAXES",
    "generate_ct_series",
    "generate_sample_studies",
]
