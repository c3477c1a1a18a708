"""The server never imports the AHI emulator (docs/architecture.md): it is a development tool in
a package of its own beside dicomweb_proxy, importable in the same environment, so only the
server's own imports keep it out of a running server."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dicomweb_proxy

from .sample_data import ImportedSamples

EMULATOR = "ahi_emulator"
PACKAGE = Path(dicomweb_proxy.__file__).resolve().parent

# Builds the application the way `serve` does, answers requests (handlers import lazily),
# then prints the emulator modules this interpreter holds.
_SERVE_SAMPLES = """
import sys

import dicomweb_proxy.cli
from dicomweb_proxy.config import load_settings
from dicomweb_proxy.http.app import create_app
from dicomweb_proxy.services import open_services
from starlette.testclient import TestClient

flags = {"data_dir": sys.argv[1], "database_url": sys.argv[2], "datastore_id": sys.argv[3]}
services = open_services(load_settings(flags, environ={}))
try:
    with TestClient(create_app(services)) as client:
        for path in ("/aetitle/health", "/aetitle/studies", "/aetitle/series?limit=1"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text)
finally:
    services.close()
print(sorted(name for name in sys.modules if name.partition(".")[0] == "ahi_emulator"))
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter importing this checkout: the test process itself holds the emulator
    (tests/ahi_fixtures.py), so only a new one shows what the server imports."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _imported_names(importtime_log: str) -> set[str]:
    """Module names of ``-X importtime`` lines: 'import time: self | cumulative | name'."""
    return {
        line.rpartition("|")[2].strip()
        for line in importtime_log.splitlines()
        if line.startswith("import time:")
    }


def test_the_emulator_runs_beside_the_server_and_its_imports_show(tmp_path: Path):
    """`python -m ahi_emulator` works in the server's environment, and the import log the
    checks below read names the emulator when it is imported."""
    result = _run(["-X", "importtime", "-m", EMULATOR, "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m ahi_emulator" in result.stdout
    assert {EMULATOR, f"{EMULATOR}.app"} <= _imported_names(result.stderr)


@pytest.mark.parametrize("imported_samples", ["sqlite"], indirect=True)
def test_serving_the_samples_never_imports_the_emulator(
    imported_samples: ImportedSamples, tmp_path: Path
):
    result = _run(
        [
            "-c",
            _SERVE_SAMPLES,
            str(imported_samples.data_dir),
            imported_samples.database_url,
            imported_samples.datastore_id,
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_serve_help_never_imports_the_emulator(tmp_path: Path):
    result = _run(["-X", "importtime", "-m", "dicomweb_proxy", "serve", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    names = _imported_names(result.stderr)
    assert "dicomweb_proxy.cli" in names  # the log is read right
    assert sorted(name for name in names if name.partition(".")[0] == EMULATOR) == []


def test_no_server_module_imports_the_emulator():
    """Statically too, so an import inside a function no test reaches is caught."""
    offenders = []
    for file in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue  # relative imports stay inside dicomweb_proxy
            if any(name.partition(".")[0] == EMULATOR for name in names):
                offenders.append(f"{file.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == []
    assert not (PACKAGE / EMULATOR).exists()
