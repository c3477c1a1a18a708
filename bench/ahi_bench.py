"""Viewer load of a CT series through `serve --store ahi` against the AHI emulator with latency.

Issue 5's scenario: the emulator adds 50 ms to every GetImageFrame (and, by default, to every
GetImageSetMetadata); a viewer asks for the series metadata, then for all frames of the series
with 16 concurrent clients (one frame per request, stored bytes: `transfer-syntax=*`). The first
load starts right after the metadata answer, with an empty frame cache, so the proxy's prefetch
races the clients as it does in use; the second load repeats metadata and frames. Goals: first
load >= 150 frames/s, second load >= 10 x the first.

In the same run, for comparison: the same loads through `serve` on the local store the emulator
serves (no AHI), and the floor of the first load, slices x latency / clients (every frame must
wait for one GetImageFrame, at most `clients` at a time if nothing fetches ahead).

Everything runs on loopback: the emulator in its own process, the proxy with `--workers 2`, the
clients in this process (a minimal HTTP/1.1 client on asyncio: httpx would cost the client about
2 ms of CPU per frame), all on the machine's cores, shared with anything else running: the load
average is printed with the table. Each round starts a fresh server with an empty frame cache
(the local store's files stay in the page cache); the emulator counts the AHI calls.

    .venv/bin/python bench/ahi_bench.py [--slices 300] [--size 512] [--rounds 3]
        [--latency 0.05] [--metadata-latency 0.05] [--clients 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import children, cpu_seconds, stop_process

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.services import open_services
from tests.live_server import free_port

DATASTORE = "a4b0c0de5e7e4d3c9b8a7f6e5d4c3b2a"
REGION = "us-east-1"
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
METADATA_ACCEPT = "application/dicom+json"
START_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 60
_WARNING = re.compile(r"warn|error|traceback|pool is full", re.IGNORECASE)


def prepare(data_dir: Path, slices: int, size: int) -> Path:
    """One CT series imported into a local store under datastore DATASTORE (kept for reruns);
    returns the emulator's data folder (store/<DATASTORE>/ and index.sqlite)."""
    emulated = data_dir / f"emulated-{slices}x{size}"
    ready = emulated / "ready"
    if ready.exists():
        return emulated
    shutil.rmtree(emulated, ignore_errors=True)
    started = time.perf_counter()
    files = generate_ct_series(data_dir / "files", n_studies=1, slices=slices, size=size)
    settings = load_settings({"data_dir": emulated, "datastore_id": DATASTORE}, environ={})
    services = open_services(settings)
    try:
        report = Importer(services.store, services.index).run(files)
        if not report.ok:
            raise RuntimeError(f"import failed: {report.failures[:3]}")
    finally:
        services.close()
    shutil.rmtree(data_dir / "files")
    ready.touch()
    print(f"generated and imported {slices} slices in {time.perf_counter() - started:.0f} s")
    return emulated


def child_env() -> dict[str, str]:
    """The environment for the emulator and servers: fake credentials, loopback only."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DICOMWEB_PROXY_", "AWS_")) and k.lower() not in _PROXY_VARIABLES
    }
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", NO_PROXY="*")
    return env


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


@dataclass
class Process:
    popen: subprocess.Popen
    url: str
    name: str

    def stop(self) -> None:
        stop_process(self.popen)

    def pids(self) -> list[int]:
        """The process and its children (uvicorn's worker processes)."""
        return [self.popen.pid, *children(self.popen.pid)]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())


def wait_until_up(process: Process, probe: str, log: Path) -> Process:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(probe, timeout=2, trust_env=False).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"{process.name} did not start:\n{log.read_text()[-3000:]}")


def start_emulator(data_dir: Path, frame_latency: float, metadata_latency: float) -> Process:
    port = free_port()
    log = data_dir / "emulator.log"
    command = [sys.executable, "-m", "ahi_emulator", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--latency", f"GetImageFrame={frame_latency}"]
    command += ["--latency", f"GetImageSetMetadata={metadata_latency}"]
    with open(log, "w") as output:
        popen = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=output)
    url = f"http://127.0.0.1:{port}"
    return wait_until_up(Process(popen, url, "emulator"), f"{url}/_emulator/faults", log)


def proxy_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dicomweb_proxy", *args]


def start_proxy(data_dir: Path, workers: int, *flags: str) -> Process:
    port = free_port()
    log = data_dir / "server.log"
    command = proxy_command("serve", "--data-dir", str(data_dir), "--host", "127.0.0.1")
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning", *flags]
    with open(log, "w") as output:
        popen = subprocess.Popen(command, env=child_env(), stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}/aetitle"
    return wait_until_up(Process(popen, base, "proxy"), f"{base}/health", log)


def emulator_calls(emulator: Process, reset: bool = False) -> dict[str, int]:
    with httpx.Client(base_url=emulator.url, trust_env=False) as client:
        calls = client.get("/_emulator/calls").json()
        if reset:
            client.delete("/_emulator/calls").raise_for_status()
    return calls


# --- the viewer ---------------------------------------------------------------------------------


def series_path(base: str) -> str:
    """The series' URL from a QIDO search of the proxy at *base*."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False) as client:
        answer = client.get(f"{base}/series", params={"includefield": "0020000D"})
        answer.raise_for_status()
        (series,) = answer.json()
    study_uid, series_uid = series["0020000D"]["Value"][0], series["0020000E"]["Value"][0]
    return f"{base}/studies/{study_uid}/series/{series_uid}"


def metadata_ms(url: str) -> tuple[float, list[str]]:
    """One series metadata request as a viewer sends it (gzip); its time and the frame URLs
    of its instances in instance-number order."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False) as client:
        started = time.perf_counter()
        answer = client.get(
            f"{url}/metadata",
            headers={"Accept": METADATA_ACCEPT, "Accept-Encoding": "gzip"},
        )
        answer.raise_for_status()
        instances = answer.json()
        elapsed = time.perf_counter() - started
    instances.sort(key=lambda item: int(item.get("00200013", {}).get("Value", [0])[0]))
    frames = [f"{url}/instances/{item['00080018']['Value'][0]}/frames/1" for item in instances]
    return elapsed * 1000, frames


@dataclass
class Load:
    seconds: float
    frames: int
    megabytes: float
    latencies: list[float] = field(repr=False)

    @property
    def rate(self) -> float:
        return self.frames / self.seconds

    def p(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Connection:
    """A minimal keep-alive HTTP/1.1 GET client on asyncio streams. httpx costs the client
    about 2 ms of CPU per 200 KB frame, which on 2 shared cores would be measured as server
    time; this costs a tenth of that."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str, accept: str) -> bytes:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        reader, writer = self._streams
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Accept: {accept}\r\n\r\n".encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            body = b"".join(chunks)
        else:
            raise RuntimeError(f"{target}: answer without length: {head}")
        if headers.get("connection", "").lower() == "close":
            await self.close()
        if status != 200:
            raise RuntimeError(f"{target}: HTTP {status}: {body[:200]!r}")
        return body

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _load(urls: list[str], clients: int) -> Load:
    """GET every URL once, *clients* at a time, each client on its own connection."""
    address = httpx.URL(urls[0])
    pending = iter(urls)
    latencies: list[float] = []
    received = 0

    async def viewer_client() -> None:
        nonlocal received
        connection = Connection(address.host, address.port)
        try:
            for url in pending:
                started = time.perf_counter()
                body = await connection.get(url[url.index("/", 8) :], FRAME_ACCEPT)
                latencies.append(time.perf_counter() - started)
                if len(body) < 1000:
                    raise RuntimeError(f"{url}: only {len(body)} bytes")
                received += len(body)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(viewer_client() for _ in range(clients)))
    return Load(time.perf_counter() - started, len(latencies), received / 1e6, latencies)


def load_frames(urls: list[str], clients: int) -> Load:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_load(urls, clients))


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@dataclass
class Round:
    metadata_first_ms: float
    frames_first: Load
    metadata_second_ms: float
    frames_second: Load
    metadata_warm_ms: float  # median of 10 more requests (both workers warm)
    calls_first: dict[str, int] = field(default_factory=dict)
    calls_second: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the first load

    @property
    def open_seconds(self) -> float:
        return self.metadata_first_ms / 1000 + self.frames_first.seconds


def viewer_round(
    proxy: Process, series: str, clients: int, emulator: Process | None = None
) -> Round:
    """Metadata then frames (cold), metadata then frames again (warm)."""
    if emulator:
        emulator_calls(emulator, reset=True)
    cpu_before = {
        "proxy": proxy.cpu_seconds(),
        "emulator": emulator.cpu_seconds() if emulator else 0,
    }
    client_before = time.process_time()
    meta_first, frames = metadata_ms(series)
    first = load_frames(frames, clients)
    cpu = {
        "proxy": proxy.cpu_seconds() - cpu_before["proxy"],
        "emulator": (emulator.cpu_seconds() - cpu_before["emulator"]) if emulator else 0.0,
        "clients": time.process_time() - client_before,
    }
    calls_first = emulator_calls(emulator, reset=True) if emulator else {}
    meta_second, frames = metadata_ms(series)
    second = load_frames(frames, clients)
    calls_second = emulator_calls(emulator) if emulator else {}
    warm = statistics.median(metadata_ms(series)[0] for _ in range(10))
    return Round(meta_first, first, meta_second, second, warm, calls_first, calls_second, cpu)


# --- scenarios ----------------------------------------------------------------------------------


def ahi_rounds(work: Path, emulator: Process, args: argparse.Namespace) -> list[Round]:
    proxy_dir = work / "proxy"
    flags = ["--store", "ahi", "--datastore-id", DATASTORE, "--aws-region", REGION]
    flags += ["--ahi-endpoint-url", emulator.url]
    command = proxy_command("index", "sync", "--data-dir", str(proxy_dir), *flags)
    subprocess.run(command, env=child_env(), check=True, capture_output=True, timeout=120)
    rounds = []
    for number in range(args.rounds):
        shutil.rmtree(proxy_dir / "cache", ignore_errors=True)  # cold frame cache
        proxy = start_proxy(proxy_dir, args.workers, *flags)
        try:
            series = series_path(proxy.url)
            rounds.append(viewer_round(proxy, series, args.clients, emulator))
        finally:
            proxy.stop()
        print(f"  AHI round {number + 1}: {describe(rounds[-1])}", flush=True)
        log = (proxy_dir / "server.log").read_text().splitlines()
        warnings = [line for line in log if _WARNING.search(line)]
        if warnings:
            print(f"    server log: {len(warnings)} warnings, e.g. {warnings[0][:160]}", flush=True)
    return rounds


def local_rounds(emulated: Path, args: argparse.Namespace) -> list[Round]:
    rounds = []
    for number in range(args.rounds):
        proxy = start_proxy(emulated, args.workers, "--datastore-id", DATASTORE)
        try:
            series = series_path(proxy.url)
            rounds.append(viewer_round(proxy, series, args.clients))
        finally:
            proxy.stop()
        print(f"  local round {number + 1}: {describe(rounds[-1])}", flush=True)
    return rounds


def describe(result: Round) -> str:
    return (
        f"metadata {result.metadata_first_ms:.0f} / {result.metadata_second_ms:.0f} ms, "
        f"frames {result.frames_first.rate:.0f} / {result.frames_second.rate:.0f} frames/s, "
        f"calls GetImageFrame {result.calls_first.get('GetImageFrame', 0)} "
        f"GetImageSetMetadata {result.calls_first.get('GetImageSetMetadata', 0)}, "
        f"CPU s proxy {result.cpu['proxy']:.1f} emulator {result.cpu['emulator']:.1f} "
        f"clients {result.cpu['clients']:.1f}"
    )


def median_round(rounds: list[Round], pick) -> float:
    return statistics.median(pick(result) for result in rounds)


def spread(rounds: list[Round], pick, fmt: str) -> str:
    values = [pick(result) for result in rounds]
    middle = format(statistics.median(values), fmt)
    if len(values) == 1:
        return middle
    return f"{middle} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512, help="rows and columns of each slice")
    parser.add_argument("--rounds", type=int, default=3, help="cold starts per scenario")
    parser.add_argument("--latency", type=float, default=0.05, help="GetImageFrame, seconds")
    parser.add_argument(
        "--metadata-latency", type=float, default=0.05, help="GetImageSetMetadata, seconds"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="proxy worker processes")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ahi-bench",
        help="keeps the generated series between runs",
    )
    args = parser.parse_args()
    emulated = prepare(args.data_dir, args.slices, args.size)
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="ahi-bench-", dir=args.data_dir))
    try:
        print("local store (baseline):", flush=True)
        local = local_rounds(emulated, args)
        emulator = start_emulator(emulated, args.latency, args.metadata_latency)
        try:
            print("AHI store through the emulator:", flush=True)
            ahi = ahi_rounds(work, emulator, args)
        finally:
            emulator.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, local, ahi, load)


def report(
    args: argparse.Namespace, local: list[Round], ahi: list[Round], load: tuple[float, ...]
) -> None:
    floor_s = args.slices * args.latency / args.clients
    floor_rate = args.slices / floor_s
    first = median_round(ahi, lambda r: r.frames_first.rate)
    second = median_round(ahi, lambda r: r.frames_second.rate)
    local_second = median_round(local, lambda r: r.frames_second.rate)
    meta_first = median_round(ahi, lambda r: r.metadata_first_ms)
    meta_warm = median_round(ahi, lambda r: r.metadata_warm_ms)
    calls = median_round(ahi, lambda r: r.calls_first.get("GetImageFrame", 0))
    print(
        f"\nCT {args.size}x{args.size} stored as HTJ2K, {args.slices} slices, one frame per "
        f"request, {args.clients} concurrent clients, proxy --workers {args.workers}; emulator "
        f"latency GetImageFrame {args.latency * 1000:.0f} ms, GetImageSetMetadata "
        f"{args.metadata_latency * 1000:.0f} ms; median of {args.rounds} cold starts "
        f"(min-max); load average {load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end\n"
    )
    table = [
        ("measure", "AHI (emulator)", "local store"),
        (
            "series metadata, first request (cold)",
            spread(ahi, lambda r: r.metadata_first_ms, ".0f") + " ms",
            spread(local, lambda r: r.metadata_first_ms, ".0f") + " ms",
        ),
        (
            "series metadata, second request",
            spread(ahi, lambda r: r.metadata_second_ms, ".1f") + " ms",
            spread(local, lambda r: r.metadata_second_ms, ".1f") + " ms",
        ),
        (
            "series metadata, warm (median of 10 more)",
            spread(ahi, lambda r: r.metadata_warm_ms, ".1f") + " ms",
            spread(local, lambda r: r.metadata_warm_ms, ".1f") + " ms",
        ),
        (
            "frames/s, first load (cold, right after metadata)",
            spread(ahi, lambda r: r.frames_first.rate, ".0f"),
            spread(local, lambda r: r.frames_first.rate, ".0f"),
        ),
        (
            "  first load: seconds for all frames",
            spread(ahi, lambda r: r.frames_first.seconds, ".2f"),
            spread(local, lambda r: r.frames_first.seconds, ".2f"),
        ),
        (
            "  first load: per-request p50 / p95 ms",
            f"{median_round(ahi, lambda r: r.frames_first.p(0.5)):.0f} / "
            f"{median_round(ahi, lambda r: r.frames_first.p(0.95)):.0f}",
            f"{median_round(local, lambda r: r.frames_first.p(0.5)):.0f} / "
            f"{median_round(local, lambda r: r.frames_first.p(0.95)):.0f}",
        ),
        (
            "series opened to last frame (metadata + first load)",
            spread(ahi, lambda r: r.open_seconds, ".2f") + " s",
            spread(local, lambda r: r.open_seconds, ".2f") + " s",
        ),
        (
            "frames/s, second load (warm)",
            spread(ahi, lambda r: r.frames_second.rate, ".0f"),
            spread(local, lambda r: r.frames_second.rate, ".0f"),
        ),
        (
            "  second load: per-request p50 / p95 ms",
            f"{median_round(ahi, lambda r: r.frames_second.p(0.5)):.0f} / "
            f"{median_round(ahi, lambda r: r.frames_second.p(0.95)):.0f}",
            f"{median_round(local, lambda r: r.frames_second.p(0.5)):.0f} / "
            f"{median_round(local, lambda r: r.frames_second.p(0.95)):.0f}",
        ),
        (
            "GetImageFrame / GetImageSetMetadata calls, first load",
            f"{calls:.0f} / "
            f"{median_round(ahi, lambda r: r.calls_first.get('GetImageSetMetadata', 0)):.0f} "
            f"(ideal {args.slices} / 1: the workers share the cache)",
            "-",
        ),
        (
            "GetImageFrame / GetImageSetMetadata calls, second load",
            f"{median_round(ahi, lambda r: r.calls_second.get('GetImageFrame', 0)):.0f} / "
            f"{median_round(ahi, lambda r: r.calls_second.get('GetImageSetMetadata', 0)):.0f}",
            "-",
        ),
        (
            "CPU s, metadata + first load: proxy / emulator / clients",
            " / ".join(
                f"{median_round(ahi, lambda r, k=k: r.cpu[k]):.1f}"
                for k in ("proxy", "emulator", "clients")
            ),
            " / ".join(
                f"{median_round(local, lambda r, k=k: r.cpu[k]):.1f}"
                for k in ("proxy", "emulator", "clients")
            ),
        ),
        (
            f"floor: {args.slices} x {args.latency * 1000:.0f} ms / {args.clients}",
            f"{floor_s:.2f} s = {floor_rate:.0f} frames/s",
            "",
        ),
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for index, row in enumerate(table):
        print(
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            + " |"
        )
        if index == 0:
            print("| " + " | ".join("-" * width for width in widths) + " |")
    print()
    goal_first = first >= 150
    goal_second = second >= 10 * first
    print(
        f"goal 1, first load >= 150 frames/s: {first:.0f} frames/s "
        f"({first / floor_rate:.0%} of the floor's {floor_rate:.0f}) -> "
        f"{'met' if goal_first else 'NOT met'}"
    )
    print(
        f"goal 2, second load >= 10 x first: {second / first:.1f} x -> "
        f"{'met' if goal_second else 'NOT met'}"
    )
    print(
        f"second load vs the local store's second load: {second / local_second:.0%}; the local "
        f"store's second load / this first load: {local_second / first:.1f} x (goal 2 needs 10 x "
        f"from a cache no faster than the local store)"
    )
    print(f"metadata, first request / warm: {meta_first / meta_warm:.0f} x")


if __name__ == "__main__":
    main()
