"""Synthetic DICOM studies for the demo, the tests and the benchmarks.

``generator`` writes the sample set and bulk CT; ``model`` holds the patients, studies and
series and what every instance shares; ``phantoms`` the anatomy; ``encoding`` the pixel data;
``ct``, ``mr``, ``ultrasound``, ``radiography`` and ``report`` one modality's instances each.
"""

from dicomweb_proxy.samples.encoding import SUPPORTED_TRANSFER_SYNTAXES
from dicomweb_proxy.samples.generator import generate_ct_series, generate_sample_studies
from dicomweb_proxy.samples.radiography import PRIVATE_CREATOR

__all__ = [
    "PRIVATE_CREATOR",
    "SUPPORTED_TRANSFER_SYNTAXES",
    "generate_ct_series",
    "generate_sample_studies",
]
