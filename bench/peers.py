"""The peers the benchmarks measure us against, each started in its own temporary folder on
127.0.0.1 and a free port: Orthanc with its DICOMweb plugin (Debian packages), and nginx serving
static files. Both are installed with apt-get when missing.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import Service, ThreadClients, ensure_debian, free_port

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
NGINX = "/usr/sbin/nginx"
PACKAGES = {ORTHANC: "orthanc", DICOMWEB_PLUGIN: "orthanc-dicomweb", NGINX: "nginx", "wrk": "wrk"}


def install() -> None:
    """apt-get install what is missing of Orthanc, its DICOMweb plugin, nginx and wrk."""
    ensure_debian(PACKAGES)


def versions() -> str:
    orthanc = subprocess.run([ORTHANC, "--version"], capture_output=True, text=True).stdout
    nginx = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    plugin = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "orthanc-dicomweb"], capture_output=True, text=True
    ).stdout
    return (
        f"{orthanc.splitlines()[0]}, DICOMweb plugin {plugin}, "
        f"{nginx.strip().removeprefix('nginx version: ')}, {wrk.split(' [')[0]}"
    )


class Orthanc(Service):
    """An Orthanc of our own: config JSON and storage in *folder*, HTTP on a free port (Orthanc
    1.10 listens on every interface; RemoteAccessAllowed false answers only loopback clients),
    DICOM server off, DICOMweb plugin at /dicom-web, other options at their defaults."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.rest = f"http://127.0.0.1:{self.port}"
        self.root = f"{self.rest}/dicom-web"
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "bench",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "storage"),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": False,
            "DicomPort": free_port(),
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "KeepAlive": True,
            "SaveJobs": False,
        }
        self.config = folder / "orthanc.json"
        self.config.write_text(json.dumps(config, indent=2))

    def start(self) -> None:
        self.launch([ORTHANC, str(self.config)], self.folder / "orthanc.log", f"{self.rest}/system")
        plugins = httpx.get(f"{self.rest}/plugins", trust_env=False).json()
        if "dicom-web" not in plugins:
            raise RuntimeError(f"Orthanc did not load {DICOMWEB_PLUGIN}: plugins {plugins}")

    def upload(self, files: Sequence[Path], concurrency: int) -> tuple[dict[Path, str], float]:
        """POST /instances each file from *concurrency* threads (bodies read beforehand):
        Orthanc's id of each file, and the seconds the uploads took."""
        bodies = [path.read_bytes() for path in files]
        clients = ThreadClients()

        def post(body: bytes) -> str:
            response = clients.get().post(
                f"{self.rest}/instances",
                content=body,
                headers={"Content-Type": "application/dicom"},
            )
            response.raise_for_status()
            answer = response.json()
            if answer.get("Status") != "Success":
                raise RuntimeError(f"Orthanc stored nothing: {answer}")
            return answer["ID"]

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            ids = list(pool.map(post, bodies))
        clients.close()
        return dict(zip(files, ids, strict=True)), time.perf_counter() - started


class Nginx(Service):
    """nginx serving *root* at http://127.0.0.1:port/ with a minimal config of its own (prefix
    *folder*, `daemon off`, 2 workers running as root, sendfile, no access log)."""

    def __init__(self, root: Path, folder: Path, probe: str) -> None:
        self.probe = probe  # a path under *root* that answers 200 once nginx is up
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.config = folder / "nginx.conf"
        self.config.write_text(f"""
daemon off;
user root;
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        root {root};
    }}
}}
""")

    def start(self) -> None:
        command = [NGINX, "-p", str(self.folder), "-c", str(self.config), "-e", "stderr"]
        self.launch(command, self.folder / "stderr.log", f"{self.url}{self.probe}")
