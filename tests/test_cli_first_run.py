"""What a new user meets first, through the real command: the data folder (created only by
commands that write, refused when mistyped), the start-up line, a busy port, a bad flag value,
the help, and the root-relative icons OHIF's files still name."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.http.app import create_app
from dicomweb_proxy.services import open_services

from .live_server import live_server


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DICOMWEB_PROXY_")}
    environment.pop("PORT", None)
    return subprocess.run(
        [sys.executable, "-m", "dicomweb_proxy", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """The single line of stderr, which names *words*; no traceback, no usage block."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_db_status_creates_no_data_folder(tmp_path):
    result = run(tmp_path, "db", "status")
    assert result.returncode == 2
    one_line(result, "'data_dir'", "does not exist", "db upgrade")
    assert not (tmp_path / "data").exists()


def test_db_upgrade_creates_the_default_data_folder(tmp_path):
    result = run(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "index.sqlite").is_file()
    status = run(tmp_path, "db", "status")
    assert status.returncode == 0 and "revision" in status.stdout


def test_a_named_data_folder_is_created_but_not_its_missing_parents(tmp_path):
    assert run(tmp_path, "db", "upgrade", "--data-dir", "mine").returncode == 0
    assert (tmp_path / "mine" / "index.sqlite").is_file()
    typo = run(tmp_path, "db", "upgrade", "--data-dir", "typo/data")
    assert typo.returncode == 2
    one_line(typo, "'data_dir'", "--data-dir", "typo", "does not exist")
    assert not (tmp_path / "typo").exists()


def test_a_data_folder_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    under_file = run(tmp_path, "serve", "--data-dir", "file/data")
    assert under_file.returncode == 2
    one_line(under_file, "'data_dir'", "is not a folder")
    for path in ("/proc/nope/data", "/proc/nope"):
        result = run(tmp_path, "db", "upgrade", "--data-dir", path)
        assert result.returncode == 2
        one_line(result, "'data_dir'", path)


def test_start_up_says_what_it_serves(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    with live_server(tmp_path, database_url=url):
        pass
    (log,) = tmp_path.glob("server-*.log")
    text = log.read_text()
    line = next(line for line in text.splitlines() if line.startswith("datastore default:"))
    assert f"data folder {tmp_path}" in line
    assert f"index {url}" in line
    assert f"local store {tmp_path / 'store'}" in line
    assert line.endswith(": 0 studies")
    assert text.index("datastore default:") < text.index("DICOMweb service at")


def test_a_port_in_use_is_one_line_before_any_service_url(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = run(tmp_path, "serve", "--host", "127.0.0.1", "--port", port)
    assert result.returncode == 1
    one_line(result, "127.0.0.1", port, "--port")
    assert "DICOMweb service at" not in result.stdout


def test_a_port_that_is_no_number_is_one_line(tmp_path):
    result = run(tmp_path, "serve", "--port", "abc")
    assert result.returncode == 2
    one_line(result, "--port", "'abc'", "--help")
    assert not (tmp_path / "data").exists()


def test_db_help_explains_both_actions(tmp_path):
    text = " ".join(run(tmp_path, "db", "--help").stdout.split())
    assert "status: print the index URL and its schema revision, changing nothing" in text
    assert "upgrade: create the data folder and the schema" in text


def test_index_sync_has_one_datastore_option(tmp_path):
    text = run(tmp_path, "index", "sync", "--help").stdout
    assert "--datastore-id" in text
    assert "--datastore " not in text and "--datastore\n" not in text
    # the first spelling still parses (tests/test_ahi_sync.py runs it)
    from dicomweb_proxy.cli import build_parser

    args = build_parser().parse_args(["index", "sync", "--datastore", "abc"])
    assert args.datastore_id == "abc"


def test_root_relative_viewer_icons_are_redirected_into_the_viewer(tmp_path):
    services = open_services(load_settings({"data_dir": tmp_path}, environ={}))

    async def get(path: str, **headers: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://pacs") as client:
            return await client.get(path, headers=headers)

    try:
        icon = asyncio.run(get("/assets/android-chrome-36x36.png"))
        assert (icon.status_code, icon.headers["location"]) == (
            308,
            "/viewer/assets/android-chrome-36x36.png",
        )
        favicon = asyncio.run(get("/favicon.ico"))
        assert favicon.headers["location"] == "/viewer/assets/favicon.ico"
        assert asyncio.run(get("/aetitle/studies")).status_code == 200  # DICOMweb unchanged
    finally:
        services.close()


def test_demo_refuses_a_mistyped_data_folder_before_writing_samples(tmp_path):
    result = run(tmp_path, "demo", "--data-dir", "typo/data", "--port", "1")
    assert result.returncode == 2
    one_line(result, "'data_dir'", "does not exist")
    assert not (tmp_path / "typo").exists()
