"""WADO-RS speed over HTTP on generated 512x512 CT, against `dicomweb-proxy serve --workers 2`.

Reports series metadata time (first and repeated request), frames/s at concurrency 1 and 16 for
the stored HTJ2K bytes (`transfer-syntax=*`) and decoded Explicit VR Little Endian, instance
retrieves/s, the peak RSS of the server workers and, in the same run, one core's HTJ2K decode
rate of the same frames, so decoded frames/s read as a fraction of 2 x that rate. Needs `wrk`
(Debian package) for the throughput runs; client and server share the machine's cores.

    .venv/bin/python bench/wado_bench.py [--slices 500] [--studies 1] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import imagecodecs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.ingest.importer import Importer, image_set_id_for
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.services import open_services
from tests.live_server import free_port

ANY_SYNTAX = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
EXPLICIT_LE = (
    'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
)
DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'
DICOM_LE = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("WADO_BENCH_PATHS")) do paths[#paths + 1] = line end
local counter = 0
local index = 0
setup = function(thread)
  thread:set("offset", counter * 97)
  counter = counter + 1
end
init = function(args) index = offset or 0 end
request = function()
  index = index % #paths + 1
  return wrk.format("GET", paths[index])
end
"""


def prepare(data_dir: Path, studies: int, slices: int) -> None:
    if (data_dir / "index.sqlite").exists():
        return
    files = generate_ct_series(data_dir / "files", n_studies=studies, slices=slices)
    services = open_services(load_settings({"data_dir": data_dir}, environ={}))
    try:
        print(Importer(services.store, services.index).run(files).summary(), flush=True)
    finally:
        services.close()
    shutil.rmtree(data_dir / "files")


def first_series(data_dir: Path) -> tuple[str, str, list[str], list[bytes]]:
    """Study and series UIDs, SOP Instance UIDs in order, and the stored frames."""
    services = open_services(load_settings({"data_dir": data_dir}, environ={}), upgrade=False)
    try:
        summary = next(iter(services.store.list_image_sets()))
        metadata = services.store.get_image_set_metadata(summary.image_set_id)
        study_uid = metadata["Study"]["DICOM"]["StudyInstanceUID"]
        series_uid, series = next(iter(metadata["Study"]["Series"].items()))
        assert image_set_id_for(study_uid, series_uid) == summary.image_set_id
        sops = list(series["Instances"])
        frames = [
            services.store.get_image_frame(summary.image_set_id, block["ImageFrames"][0]["ID"])
            for block in series["Instances"].values()
        ]
        return study_uid, series_uid, sops, frames
    finally:
        services.close()


def decode_rate(frames: list[bytes], seconds: float = 3.0) -> float:
    """Frames/s one core decodes with imagecodecs.htj2k_decode."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        imagecodecs.htj2k_decode(frames[count % len(frames)])
        count += 1
    return count / (time.perf_counter() - started)


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "dicomweb_proxy", "serve", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    command += ["--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMWEB_PROXY_")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/aetitle/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def workers(process: subprocess.Popen) -> list[str]:
    """Pids of the server's worker processes (children of the uvicorn supervisor)."""
    return Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()


def cpu_seconds(pids: list[str]) -> float:
    """User + system CPU time the processes used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def workers_peak_rss_mb(process: subprocess.Popen) -> list[float]:
    """VmHWM of the server's worker processes."""
    peaks = []
    for pid in workers(process):
        status = Path(f"/proc/{pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peaks.append(int(match.group(1)) / 1024)
    return peaks


def metadata_times(url: str, repeats: int = 20) -> tuple[float, float]:
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        client.get(url).raise_for_status()
        first = time.perf_counter() - started
        for _ in range(4):  # warm the other worker too
            client.get(url).raise_for_status()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            times.append(time.perf_counter() - started)
    return first * 1000, statistics.median(times) * 1000


def wrk(base: str, paths: list[str], accept: str, connections: int, seconds: int) -> float:
    """Requests/s wrk sustains cycling over *paths* with *connections* connections."""
    with tempfile.TemporaryDirectory() as folder:
        script, listing = Path(folder) / "cycle.lua", Path(folder) / "paths.txt"
        script.write_text(WRK_SCRIPT)
        listing.write_text("\n".join(paths) + "\n")
        threads = min(2, connections)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script)]
        command += ["-H", f"Accept: {accept}", base]
        env = {**os.environ, "WADO_BENCH_PATHS": str(listing)}
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output.stdout)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed responses:\n{output.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output.stdout).group(1))


def series_retrieve_rate(url: str, accept: str, count: int) -> float:
    """Instances/s of one streamed series retrieve."""
    with httpx.Client(timeout=600) as client:
        started = time.perf_counter()
        with client.stream("GET", url, headers={"Accept": accept}) as response:
            response.raise_for_status()
            for _ in response.iter_raw(1 << 20):
                pass
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "wado-bench")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    prepare(args.data_dir, args.studies, args.slices)
    study_uid, series_uid, sops, frames = first_series(args.data_dir)
    single_core = decode_rate(frames)
    port = free_port()
    server = start_server(args.data_dir, port)
    rows: list[tuple[str, str]] = []
    try:
        host = f"http://127.0.0.1:{port}"
        series_path = f"/aetitle/studies/{study_uid}/series/{series_uid}"
        first, repeated = metadata_times(f"{host}{series_path}/metadata")
        rows += [
            (f"series metadata, {len(sops)} instances, first request", f"{first:.0f} ms"),
            ("series metadata, repeated (median of 20, gzip)", f"{repeated:.1f} ms"),
        ]
        frame_paths = [f"{series_path}/instances/{sop}/frames/1" for sop in sops]
        cpu_per_frame = {}
        for label, accept in (
            ("stored HTJ2K, transfer-syntax=*", ANY_SYNTAX),
            ("decoded to Explicit VR LE", EXPLICIT_LE),
        ):
            rates = []
            for connections in (1, 16):
                used = cpu_seconds(workers(server))
                started = time.perf_counter()
                rates.append(wrk(host, frame_paths, accept, connections, args.seconds))
                elapsed = time.perf_counter() - started
                used = cpu_seconds(workers(server)) - used
                cpu_per_frame[label] = 1000 * used / (rates[-1] * elapsed)
            if accept == EXPLICIT_LE:
                # Other jobs share the machine: the ceiling is the mean of one core's rate
                # measured before the server started and right after the decoded runs.
                single_core = (single_core + decode_rate(frames)) / 2
                share = f" ({rates[1] / (2 * single_core):.0%} of 2 x decode rate)"
            else:
                share = ""
            rows.append((f"frames/s, {label}, concurrency 1", f"{rates[0]:,.0f}"))
            rows.append((f"frames/s, {label}, concurrency 16", f"{rates[1]:,.0f}{share}"))
        rows.append(("HTJ2K decode, one core (imagecodecs)", f"{single_core:,.0f} frames/s"))
        for label, milliseconds in cpu_per_frame.items():
            rows.append((f"server CPU per frame, {label}", f"{milliseconds:.2f} ms"))
        rows.append(("HTJ2K decode time per frame, one core", f"{1000 / single_core:.2f} ms"))
        instance_paths = [f"{series_path}/instances/{sop}" for sop in sops]
        for label, accept in (("transfer-syntax=*", DICOM_ANY), ("Explicit VR LE", DICOM_LE)):
            rate = wrk(host, instance_paths, accept, 16, args.seconds)
            rows.append((f"instance retrieves/s, {label}, concurrency 16", f"{rate:,.0f}"))
            rate = series_retrieve_rate(f"{host}{series_path}", accept, len(sops))
            rows.append((f"series retrieve (one stream), {label}", f"{rate:,.0f} instances/s"))
        peaks = workers_peak_rss_mb(server)
        rows.append(("peak RSS of each worker", ", ".join(f"{mb:.0f} MB" for mb in peaks)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    width = max(len(label) for label, _ in rows)
    print(f"\n| {'measure'.ljust(width)} | result |\n| {'-' * width} | ---: |")
    for label, value in rows:
        print(f"| {label.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
