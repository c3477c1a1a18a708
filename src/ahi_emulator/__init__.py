"""An AWS HealthImaging emulator for tests and demos: AHI's runtime API over local-store folders.

Run ``python -m ahi_emulator --data-dir DIR --port 9000`` and point boto3 (or
dicomweb-proxy's ``--ahi-endpoint-url``) at it; see docs/ahi.md. Faults (latency, throttling,
5xx, access denied) can be injected at start or at run time (``faults.py``).
"""

from .app import create_app
from .faults import Faults
from .server import running_emulator

__all__ = ["Faults", "create_app", "running_emulator"]
