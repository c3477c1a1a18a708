"""deploy/dicomweb-proxy.service: hardened, reads its EnvironmentFile, and valid for systemd
(``systemd-analyze verify`` when installed: its warnings about unknown keys fail the test)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNIT = DEPLOY / "dicomweb-proxy.service"


def settings(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values, in order (systemd keys may repeat, which configparser refuses)."""
    found: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault((section, key), []).append(value)
    return found


def test_the_unit_is_hardened_and_reads_its_environment_file():
    unit = settings(UNIT.read_text())
    service = {key: values[-1] for (section, key), values in unit.items() if section == "Service"}
    assert service["DynamicUser"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    writable = service["ReadWritePaths"].split()
    environment = dict(value.split("=", 1) for value in unit[("Service", "Environment")])
    assert environment["DICOMWEB_PROXY_DATA_DIR"] in writable
    assert environment["CACHE_ROOT"] in writable
    assert service["EnvironmentFile"] == "-/etc/dicomweb-proxy/dicomweb-proxy.env"
    assert service["ExecStart"].endswith("dicomweb-proxy serve")
    assert unit[("Install", "WantedBy")] == ["multi-user.target"]


def test_the_environment_file_names_the_reference_proxys_variables():
    text = (DEPLOY / "dicomweb-proxy.env").read_text()
    for name in ("PORT", "DB_SECRET_ARN", "AWS_DEFAULT_REGION", "CACHE_ROOT"):
        assert f"#{name}=" in text
    assert all(line.startswith("#") or not line.strip() for line in text.splitlines())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path):
    # verify checks that ExecStart's program exists: point it at this environment's
    command = Path(sys.executable).with_name("dicomweb-proxy")
    if not command.exists():
        pytest.skip(f"{command} is not installed")
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text().replace("/opt/dicomweb-proxy/.venv/bin/dicomweb-proxy", str(command))
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert str(unit) not in result.stderr + result.stdout  # unknown keys are only warned about
