"""What the comparative benchmarks share: Debian installs, generated data, our server as a
subprocess, wrk, HTTP clients, worker RSS and CPU, and the result table.

Talks to dicomweb-proxy only through its command line (`python -m dicomweb_proxy serve` /
`import`, `python -m dicomweb_proxy.samples`) and HTTP, so the benchmarks outlive refactors of
the package's internals.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pydicom

BASE_PATH = "/aetitle"
PYTHON = sys.executable


# ---------------------------------------------------------------------------------------------
# machine


def ensure_debian(needed: dict[str, str]) -> None:
    """Install the Debian packages whose file (an executable name or an absolute path) is missing.

    *needed* maps that file to its package. apt-get waits for a lock other engineers hold.
    """
    missing = sorted(
        {
            package
            for path, package in needed.items()
            if not (Path(path).exists() if path.startswith("/") else shutil.which(path))
        }
    )
    if not missing:
        return
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*apt, "update", "-qq"], check=True, env=env)
    subprocess.run([*apt, "install", "-y", "-qq", *missing], check=True, env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_until_up(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    """Poll *url* until it answers 200; fail with the log if the process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s:\n{log.read_text()}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the processes (all their threads) used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


class RssSampler:
    """Samples VmRSS of the processes *pids()* names, every *interval* s, in a thread; keeps the
    peak per process. Reset between parts of a run to report each part's peaks."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.2) -> None:
        self._pids, self._interval = pids, interval
        self._peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for pid in self._pids():
                self._peaks[pid] = max(self._peaks.get(pid, 0.0), rss_mb(pid))

    def take(self) -> list[float]:
        """Peaks (MB) since the last take, one per process seen."""
        peaks, self._peaks = self._peaks, {}
        return sorted(peaks.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Instance:
    study: str
    series: str
    sop: str
    path: Path

    @property
    def url(self) -> str:
        """Path of the instance below a DICOMweb root."""
        return f"/studies/{self.study}/series/{self.series}/instances/{self.sop}"


def generate_ct(folder: Path, studies: int, slices: int) -> list[Instance]:
    """Write *studies* generated 512x512 CT studies of *slices* slices (Explicit VR LE) and
    return their instances, study by study, in slice order."""
    command = [PYTHON, "-m", "dicomweb_proxy.samples", str(folder), "--no-samples"]
    command += ["--ct-studies", str(studies), "--slices", str(slices), "--size", "512"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    instances = []
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        instances.append(
            Instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, path)
        )
    return instances


@dataclass
class Imported:
    """One `dicomweb-proxy import` run."""

    rate: float  #: instances/s, as the command reports it
    wall: float  #: seconds of the whole command, start-up included
    cpu: float  #: CPU seconds of the command and its worker processes
    summary: str


def run_import(data_dir: Path, source: Path, *options: str) -> Imported:
    """`dicomweb-proxy import` *source* into a new *data_dir*."""
    command = [PYTHON, "-m", "dicomweb_proxy", "import", "--data-dir", str(data_dir)]
    command += ["--log-level", "warning", *options, str(source)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=_our_env())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    rate = re.search(r"\(([\d.]+) instances/s", summary)
    if done.returncode or not rate or " failed 0 " not in summary:
        raise RuntimeError(f"import failed: {done.stdout}\n{done.stderr}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Imported(float(rate.group(1)), wall, cpu, summary)


def _our_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DICOMWEB_PROXY_")}


class Service(ABC):
    """A server process a benchmark starts, restarts (a new process) and stops."""

    process: subprocess.Popen | None = None

    def launch(self, command: list[str], log: Path, probe: str, env: dict | None = None) -> None:
        """Start *command*, output to *log*, and wait until *probe* answers 200."""
        with log.open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_until_up(probe, self.process, log)

    @abstractmethod
    def start(self) -> None:
        """Start the server and return once it answers."""

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pids(self) -> list[int]:
        """The processes whose CPU time and memory count as the server's."""
        return [self.process.pid, *children(self.process.pid)] if self.process else []


class OurServer(Service):
    """`dicomweb-proxy serve` on 127.0.0.1 and a free port."""

    def __init__(self, data_dir: Path, workers: int = 2) -> None:
        self.data_dir, self.workers = data_dir, workers
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}{BASE_PATH}"

    def start(self) -> None:
        command = [PYTHON, "-m", "dicomweb_proxy", "serve", "--data-dir", str(self.data_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", str(self.workers), "--log-level", "warning"]
        self.launch(command, self.data_dir / "server.log", f"{self.root}/health", _our_env())
        deadline = time.monotonic() + 30  # /health answers once one worker is up
        while len(self.pids()) < self.workers and time.monotonic() < deadline:
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The worker processes (children of the supervisor)."""
        return children(self.process.pid) if self.process else []


# ---------------------------------------------------------------------------------------------
# load


# Each wrk thread walks the URL list from its own offset. No response() function: with one, wrk
# copies every body into Lua, which halves its rate on large bodies.
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local threads, created = tonumber(os.getenv("BENCH_THREADS")), 0
setup = function(thread)
  thread:set("id", created)
  created = created + 1
end
local index = 0
init = function(args) index = id * math.floor(#paths / threads) end
request = function()
  index = index % #paths + 1
  return wrk.format("GET", paths[index])
end
"""


@dataclass
class Load:
    """A load run: answers, their rate, the time it took and the server CPU it used."""

    requests: int
    seconds: float
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Server CPU milliseconds per answer."""
        return 1000 * self.server_cpu / self.requests


def wrk(
    root: str,
    paths: Sequence[str],
    headers: dict[str, str],
    *,
    connections: int,
    seconds: int,
    threads: int = 2,
    server: Callable[[], list[int]] = list,
) -> Load:
    """Run wrk for *seconds* against *root* + *paths* in turn; *server* names the processes
    whose CPU time the run is charged with."""
    with tempfile.TemporaryDirectory() as folder:
        script, listing = Path(folder) / "paths.lua", Path(folder) / "paths.txt"
        script.write_text(WRK_SCRIPT)
        prefix = httpx.URL(root).path.rstrip("/")
        listing.write_text("".join(f"{prefix}{path}\n" for path in paths))
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s"]
        command += ["-s", str(script)]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        command.append(str(httpx.URL(root).copy_with(path="/")))
        env = {**os.environ, "BENCH_PATHS": str(listing), "BENCH_THREADS": str(threads)}
        used = cpu_seconds(server())
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        used = cpu_seconds(server()) - used
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    out = done.stdout
    errors = re.search(r"Socket errors: .*", out)
    if "Non-2xx" in out or (errors and re.search(r"[1-9]", errors.group(0))):
        raise RuntimeError(f"wrk saw failures against {root}{paths[0]}:\n{out}")
    match = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    scale = {"ms": 0.001, "s": 1, "m": 60}[match.group(3)]
    return Load(int(match.group(1)), float(match.group(2)) * scale, used)


def curl_once(
    root: str,
    paths: Sequence[str],
    headers: dict[str, str],
    *,
    connections: int,
    server: Callable[[], list[int]] = list,
) -> Load:
    """GET *root* + each of *paths* once with curl, *connections* transfers at a time on
    reused connections (wrk cannot stop after a fixed list, and a Python client would take much
    of the CPU the server needs at these rates)."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "urls.curlrc"
        entries = (f'url = "{root}{path}"\noutput = "/dev/null"\n' for path in paths)
        config.write_text("".join(entries))
        command = ["curl", "-s", "--noproxy", "*", "-Z", "--parallel-immediate"]
        command += ["--parallel-max", str(connections)]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        command += ["-w", "%{http_code}\n", "-K", str(config)]
        used = cpu_seconds(server())
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        used = cpu_seconds(server()) - used
    statuses = done.stdout.split()
    if done.returncode or statuses.count("200") != len(paths):
        raise RuntimeError(f"curl failed against {root}{paths[0]}: {done.stderr} {statuses[:9]}")
    return Load(len(paths), elapsed, used)


class ThreadClients:
    """One keep-alive httpx client per thread of a pool; environment proxies ignored."""

    def __init__(self, **options) -> None:
        self._options = {"timeout": 300, "trust_env": False, **options}
        self._local = threading.local()
        self._all: list[httpx.Client] = []

    def get(self) -> httpx.Client:
        if not hasattr(self._local, "client"):
            self._local.client = httpx.Client(**self._options)
            self._all.append(self._local.client)
        return self._local.client

    def close(self) -> None:
        for client in self._all:
            client.close()


def get_all(
    urls: Sequence[str],
    headers: dict[str, str],
    *,
    concurrency: int,
    server: Callable[[], list[int]] = list,
) -> tuple[Load, int]:
    """GET every URL once from *concurrency* threads, streaming the bodies (for large multipart
    answers, where the Python client stays far from its ceiling). Returns the load and bytes."""
    clients = ThreadClients(headers={"Accept-Encoding": "identity"})

    def fetch(url: str) -> int:
        size = 0
        with clients.get().stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            for chunk in response.iter_raw(1 << 20):
                size += len(chunk)
        return size

    used = cpu_seconds(server())
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        size = sum(pool.map(fetch, urls))
    elapsed = time.perf_counter() - started
    used = cpu_seconds(server()) - used
    clients.close()
    return Load(len(urls), elapsed, used), size


def latencies(
    client: httpx.Client, urls: Sequence[str], headers: dict[str, str], warmup: int = 5
) -> tuple[list[float], int]:
    """Seconds of each sequential GET of *urls* after *warmup* untimed ones; last body's size."""
    for url in urls[:warmup]:
        client.get(url, headers=headers).raise_for_status()
    times, size = [], 0
    for url in urls:
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
        size = len(response.content)
    return times, size


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def multipart_parts(body: bytes, content_type: str) -> list[bytes]:
    """The payloads of a multipart/related body."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(chunk.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n"))
    return parts


# ---------------------------------------------------------------------------------------------
# report


def spread(values: Sequence[float]) -> str:
    """Median with the range of the rounds, when there were several."""
    middle = statistics.median(values)
    if len(values) == 1:
        return _number(middle)
    return f"{_number(middle)} ({_number(min(values))}-{_number(max(values))})"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


@dataclass
class Table:
    """Rows of: measure, ours, peer, ratio, what measured it."""

    title: str
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def add(
        self, measure: str, ours: str, peer: str = "", ratio: float | None = None, tool: str = ""
    ) -> None:
        shown = "" if ratio is None else f"{ratio:.2f}"
        self.rows.append((measure, ours, peer, shown, tool))
        print(f"  {measure}: ours {ours}  peer {peer}  ratio {shown}", flush=True)

    def print(self) -> None:
        heads = ("measure", "dicomweb-proxy", "peer", "ratio", "measured with")
        widths = [max(len(r[i]) for r in [heads, *self.rows]) for i in range(5)]
        print(f"\n### {self.title}\n")
        for index, row in enumerate([heads, *self.rows]):
            cells = [
                row[i].ljust(widths[i]) if i in (0, 4) else row[i].rjust(widths[i])
                for i in range(5)
            ]
            print("| " + " | ".join(cells) + " |")
            if index == 0:
                print(
                    "| "
                    + " | ".join(
                        "-" * w if i in (0, 4) else "-" * (w - 1) + ":"
                        for i, w in enumerate(widths)
                    )
                    + " |"
                )
