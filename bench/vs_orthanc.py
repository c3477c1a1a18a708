"""dicomweb-proxy against its peers, measured in the same run: Orthanc with its DICOMweb plugin,
nginx serving the same frame bytes, and the HTJ2K codec's own single-core rates.

Generates 512x512 CT (Explicit VR Little Endian files), imports them with `dicomweb-proxy import`
(stored as HTJ2K) and POSTs the same files to a fresh Orthanc, then serves them with
`dicomweb-proxy serve --workers 2` and Orthanc side by side on 127.0.0.1. Every comparison prints
a ratio where higher is better for dicomweb-proxy: rates are ours / peer's, latencies and CPU per
answer are peer's / ours. Rounds of a comparison alternate between the servers and print the
median with the range, since other jobs share the machine. Installs orthanc, orthanc-dicomweb,
nginx and wrk with apt-get when missing. docs/benchmarks.md describes each part.

    python bench/vs_orthanc.py                  # every part, about 5-10 minutes
    python bench/vs_orthanc.py --quick          # every part, shorter runs, about 2-3 minutes
    python bench/vs_orthanc.py retrieve frames  # some parts: import metadata retrieve render frames

(run with the project's Python and PYTHONPATH=src, e.g. `PYTHONPATH=src .venv/bin/python ...`)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import imagecodecs
import peers
import pydicom
from common import (
    Imported,
    Instance,
    Load,
    OurServer,
    RssSampler,
    Service,
    Table,
    cpu_seconds,
    curl_once,
    generate_ct,
    get_all,
    latencies,
    load_average,
    multipart_parts,
    percentile,
    run_import,
    spread,
    wrk,
)

T = TypeVar("T")
PARTS = ("import", "metadata", "retrieve", "render", "frames")
DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'
FRAMES_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
FRAMES_LE = FRAMES_ANY.replace("=*", "=1.2.840.10008.1.2.1")


@dataclass
class Target:
    """What one server is asked in a comparison."""

    root: str
    paths: list[str]
    headers: dict[str, str]
    pids: Callable[[], list[int]]


@dataclass
class Run:
    """What the parts share: options, the data, the servers, the RSS sampler and the tables."""

    args: argparse.Namespace
    work: Path
    instances: list[Instance]
    ours: OurServer | None = None
    orthanc: peers.Orthanc | None = None
    orthanc_ids: dict[Path, str] = field(default_factory=dict)
    samplers: list[RssSampler] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def table(self, title: str) -> Table:
        title = f"{title} (load average at the start {load_average()})"
        print(f"\n{title}", flush=True)
        self.tables.append(Table(title))
        return self.tables[-1]

    def same(self, paths: list[str], headers: dict[str, str]) -> tuple[Target, Target]:
        """The same request to us and to Orthanc's DICOMweb plugin."""
        return (
            Target(self.ours.root, paths, headers, self.ours.pids),
            Target(self.orthanc.root, paths, headers, self.orthanc.pids),
        )

    def memory(self, table: Table) -> None:
        """Peak RSS per worker of ours (the largest, when restarts made new ones) and of
        Orthanc since the last call."""
        ours = sorted(self.samplers[0].take(), reverse=True)[: self.ours.workers]
        orthanc = max(self.samplers[1].take(), default=0.0)
        table.add(
            "peak RSS per worker process, MB (Orthanc: its one process)",
            " + ".join(f"{mb:.0f}" for mb in ours),
            f"{orthanc:.0f}",
            orthanc / sum(ours) if ours else None,
            "VmRSS in /proc/<pid>/status every 0.2 s",
        )


def rounds(run: Run, measures: dict[str, Callable[[], Load]]) -> dict[str, list[Load]]:
    """Each measure *args.rounds* times, alternating between them."""
    results: dict[str, list[Load]] = {name: [] for name in measures}
    for _ in range(run.args.rounds):
        for name, measure in measures.items():
            results[name].append(measure())
    return results


def compare(
    table: Table, label: str, ours: list[Load], peer: list[Load], tool: str, unit: str = "/s"
) -> None:
    """Rows for a rate comparison: the rates, and the server CPU per answer."""
    our_rate = statistics.median(load.rate for load in ours)
    peer_rate = statistics.median(load.rate for load in peer)
    table.add(
        f"{label}, {unit}",
        spread([load.rate for load in ours]),
        spread([load.rate for load in peer]),
        our_rate / peer_rate,
        tool,
    )
    our_cpu = statistics.median(load.cpu_ms for load in ours)
    peer_cpu = statistics.median(load.cpu_ms for load in peer)
    table.add(
        f"{label}, server CPU ms per answer",
        f"{our_cpu:.2f}",
        f"{peer_cpu:.2f}",
        peer_cpu / our_cpu,
        "/proc/<pid>/stat",
    )


# ---------------------------------------------------------------------------------------------
# import


def codec_rate(code: Callable[[T], object], inputs: list[T], seconds: float) -> tuple[float, float]:
    """Run *code* over *inputs* in turn on this thread for *seconds*: (calls per second of wall
    time, CPU ms per call). The CPU time holds steadier than the rate while other jobs run."""
    count, started, cpu = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - started < seconds:
        code(inputs[count % len(inputs)])
        count += 1
    return count / (time.perf_counter() - started), 1000 * (time.thread_time() - cpu) / count


def load_data(run: Run, measure: bool) -> None:
    """Import into our data folder and POST to a fresh Orthanc; with *measure*, time both over
    the rounds (each round into a new folder, a new Orthanc), with --keep-original too."""
    source, files = run.work / "dicom", [instance.path for instance in run.instances]
    count = len(files)
    table = run.table(f"Import of {count} CT 512x512 files") if measure else None
    results: dict[str, list[Imported]] = {"import (HTJ2K)": [], "import --keep-original": []}
    orthanc: list[Load] = []
    for index in range(run.args.rounds if measure else 1):
        data_dir = run.work / ("data" if index == 0 else f"data-{index}")
        results["import (HTJ2K)"].append(run_import(data_dir, source))
        print(f"  import: {results['import (HTJ2K)'][-1].summary}", flush=True)
        if run.orthanc:
            run.orthanc.stop()
            shutil.rmtree(run.orthanc.folder)
        run.orthanc = peers.Orthanc(run.work / f"orthanc-{index}")
        run.orthanc.start()
        used = cpu_seconds(run.orthanc.pids())
        run.orthanc_ids, seconds = run.orthanc.upload(files, concurrency=4)
        orthanc.append(Load(count, seconds, cpu_seconds(run.orthanc.pids()) - used))
        print(f"  Orthanc POST /instances: {orthanc[-1].rate:.1f} instances/s", flush=True)
        if not measure:
            return
        if index:
            shutil.rmtree(data_dir)
        kept = run.work / f"data-original-{index}"
        results["import --keep-original"].append(run_import(kept, source, "--keep-original"))
        shutil.rmtree(kept)
    peer_rate = statistics.median(load.rate for load in orthanc)
    peer_cpu = statistics.median(load.cpu_ms for load in orthanc)
    peer = spread([load.rate for load in orthanc])
    post = "Orthanc: POST /instances from 4 threads (httpx)"
    for label, imported in results.items():
        rates = [one.rate for one in imported]
        table.add(
            f"{label}, instances/s",
            spread(rates),
            peer,
            statistics.median(rates) / peer_rate,
            f"the command's own report; {post}",
        )
        walls = [count / one.wall for one in imported]
        table.add(
            f"{label}, whole command with start-up, instances/s",
            spread(walls),
            peer,
            statistics.median(walls) / peer_rate,
            "wall clock of the subprocess",
        )
        cpu = statistics.median(1000 * one.cpu / count for one in imported)
        table.add(
            f"{label}, CPU ms per instance",
            f"{cpu:.2f}",
            f"{peer_cpu:.2f}",
            peer_cpu / cpu,
            "ours: the command and its workers; Orthanc: its process",
        )
    from dicomweb_proxy.dicom.frames import encode_htj2k

    arrays = [pydicom.dcmread(path).pixel_array for path in files[:: max(1, count // 20)]]
    single, cpu = codec_rate(encode_htj2k, arrays, run.args.codec_seconds)
    jobs = os.cpu_count() or 1
    fraction = statistics.median(one.rate for one in results["import (HTJ2K)"]) / (jobs * single)
    table.add(
        f"import (HTJ2K) / ({jobs} x one core's HTJ2K encode rate, {single:.0f}/s)",
        f"{fraction:.0%}",
        "",
        None,
        f"dicomweb_proxy.dicom.frames.encode_htj2k, same frames: {cpu:.2f} CPU ms each",
    )


# ---------------------------------------------------------------------------------------------
# metadata


def first_get(url: str) -> float:
    """Milliseconds of one GET on a new connection."""
    with httpx.Client(timeout=300, trust_env=False) as client:
        started = time.perf_counter()
        client.get(url, headers={"Accept": "application/dicom+json"}).raise_for_status()
        return 1000 * (time.perf_counter() - started)


def metadata(run: Run) -> None:
    study = run.instances[0].study
    count = sum(instance.study == study for instance in run.instances)
    table = run.table(f"Study metadata, {count} instances (gzip accepted by the client)")
    path = f"/studies/{study}/metadata"
    cold: dict[str, list[float]] = {"ours": [], "orthanc": []}
    for _ in range(run.args.restarts):
        run.ours.restart()
        cold["ours"].append(first_get(run.ours.root + path))
        run.orthanc.restart()
        cold["orthanc"].append(first_get(run.orthanc.root + path))
    warm = {}
    with httpx.Client(timeout=300, trust_env=False) as client:
        for name, root in (("ours", run.ours.root), ("orthanc", run.orthanc.root)):
            times, _ = latencies(client, [root + path] * run.args.repeat, {}, warmup=4)
            warm[name] = [1000 * t for t in times]
    for label, values, tool in (
        ("first request after a restart, ms", cold, f"{run.args.restarts} restarts, httpx"),
        ("warm, ms", warm, f"{run.args.repeat} sequential GETs, httpx keep-alive"),
    ):
        ratio = statistics.median(values["orthanc"]) / statistics.median(values["ours"])
        table.add(label, spread(values["ours"]), spread(values["orthanc"]), ratio, tool)
    run.memory(table)


# ---------------------------------------------------------------------------------------------
# retrieve


def wrk_compare(
    run: Run, table: Table, label: str, ours: Target, peer: Target, connections: int
) -> list[Load]:
    """Rounds of wrk runs against both targets, and their rows; returns our loads."""
    seconds = run.args.seconds

    def load(target: Target) -> Load:
        return wrk(
            target.root,
            target.paths,
            target.headers,
            connections=connections,
            seconds=seconds,
            server=target.pids,
        )

    results = rounds(run, {"ours": lambda: load(ours), "peer": lambda: load(peer)})
    tool = f"wrk -t2 -c{connections} -d{seconds}s over {len(ours.paths)} URLs"
    compare(table, label, results["ours"], results["peer"], tool)
    return results["ours"]


def retrieve(run: Run) -> None:
    ours, orthanc = run.ours, run.orthanc
    count = len(run.instances)
    table = run.table(f"Instance retrieve, {count} instances, concurrency 8")
    urls = [instance.url for instance in run.instances]
    multipart = {"Accept": DICOM_ANY}
    wrk_compare(
        run,
        table,
        "instance, multipart transfer-syntax=*",
        *run.same(urls, multipart),
        connections=8,
    )
    # Orthanc's plugin answers single-part application/dicom with 400: its REST API serves the
    # stored file instead, Explicit VR LE as imported, what our PS3.18 default decodes to.
    native = [f"/instances/{run.orthanc_ids[instance.path]}/file" for instance in run.instances]
    file = Target(orthanc.rest, native, {}, orthanc.pids)
    for accept, note in (
        ("application/dicom", "ours decoded to Explicit VR LE"),
        ("application/dicom; transfer-syntax=*", "ours stored HTJ2K"),
    ):
        wrk_compare(
            run,
            table,
            f"instance, single-part {accept} ({note}; Orthanc: /instances/{{id}}/file)",
            Target(ours.root, urls, {"Accept": accept}, ours.pids),
            file,
            connections=8,
        )
    series = sorted({f"/studies/{i.study}/series/{i.series}" for i in run.instances})
    requests = series * (8 // len(series) or 1)
    per_series = count / len(series)
    sizes: dict[str, int] = {}

    def stream(name: str, server: Service) -> Load:
        urls = [server.root + path for path in requests]
        load, sizes[name] = get_all(urls, multipart, concurrency=8, server=server.pids)
        return Load(round(load.requests * per_series), load.seconds, load.server_cpu)

    results = rounds(
        run, {"ours": lambda: stream("ours", ours), "orthanc": lambda: stream("orthanc", orthanc)}
    )
    compare(
        table,
        f"series, multipart transfer-syntax=*, {len(requests)} at once, instances",
        results["ours"],
        results["orthanc"],
        "httpx, 8 threads, bodies streamed",
    )
    table.add(
        "bytes per instance sent, MB",
        f"{sizes['ours'] / len(requests) / per_series / 1e6:.3f}",
        f"{sizes['orthanc'] / len(requests) / per_series / 1e6:.3f}",
        None,
        "ours: stored HTJ2K; Orthanc: the files as imported (Explicit VR LE)",
    )
    run.memory(table)


# ---------------------------------------------------------------------------------------------
# rendered


def render(run: Run) -> None:
    ours, orthanc = run.ours, run.orthanc
    sample = run.instances[: run.args.latency_requests]
    table = run.table(f"Rendered JPEG of a 512x512 CT frame ({len(sample)} sequential GETs)")
    jpeg = {"Accept": "image/jpeg"}
    sizes = {}
    with httpx.Client(timeout=60, trust_env=False) as client:
        for suffix in ("/rendered", "/frames/1/rendered"):
            measured = {}
            for name, root in (("ours", ours.root), ("orthanc", orthanc.root)):
                urls = [root + instance.url + suffix for instance in sample]
                times, sizes[name] = latencies(client, urls, jpeg)
                measured[name] = [1000 * t for t in times]
            for label, fraction in (("median", 0.5), ("p90", 0.9)):
                our_ms = percentile(measured["ours"], fraction)
                peer_ms = percentile(measured["orthanc"], fraction)
                table.add(
                    f"{suffix} latency, {label}, ms",
                    f"{our_ms:.1f}",
                    f"{peer_ms:.1f}",
                    peer_ms / our_ms,
                    "httpx keep-alive, after 5 warm-up GETs",
                )
    table.add(
        "JPEG size, bytes",
        f"{sizes['ours']:,}",
        f"{sizes['orthanc']:,}",
        None,
        "last answer of each",
    )
    urls = [instance.url + "/rendered" for instance in run.instances]
    wrk_compare(run, table, "/rendered, concurrency 8", *run.same(urls, jpeg), connections=8)
    run.memory(table)


# ---------------------------------------------------------------------------------------------
# frames


def frames(run: Run) -> None:
    ours, orthanc = run.ours, run.orthanc
    urls = [instance.url + "/frames/1" for instance in run.instances]
    table = run.table(f"Frames, {len(urls)} distinct frames")
    root = run.work / "nginx-root"
    root.mkdir(exist_ok=True)
    stored = []
    with httpx.Client(timeout=60, trust_env=False) as client:
        for index, url in enumerate(urls):
            response = client.get(ours.root + url, headers={"Accept": FRAMES_ANY})
            response.raise_for_status()
            (root / f"{index}.bin").write_bytes(response.content)
            stored += multipart_parts(response.content, response.headers["content-type"])
    seconds = run.args.codec_seconds
    before = codec_rate(imagecodecs.htj2k_decode, stored, seconds)
    decoded = []
    for _ in range(run.args.restarts):
        ours.restart()  # empty caches: every frame decoded
        run.samplers[0].take()  # the peaks of this part's workers only, not their forerunners'
        # Untimed pass over the stored frames: opens what the workers open on first use.
        curl_once(ours.root, urls, {"Accept": FRAMES_ANY}, connections=8)
        decoded.append(
            curl_once(ours.root, urls, {"Accept": FRAMES_LE}, connections=8, server=ours.pids)
        )
    # Other jobs share the machine: the ceiling is the mean of one core's rate measured before
    # and after the decoded runs.
    after = codec_rate(imagecodecs.htj2k_decode, stored, seconds)
    single, decode_ms = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    rates = [load.rate for load in decoded]
    plain = curl_once(orthanc.root, urls, {"Accept": FRAMES_LE}, connections=8, server=orthanc.pids)
    table.add(
        "decoded to Explicit VR LE, first pass, frames/s (Orthanc: stored so, no decoding)",
        spread(rates),
        f"{plain.rate:,.0f}",
        statistics.median(rates) / plain.rate,
        "curl -Z --parallel-max 8, each frame once; ours after a restart and a pass over "
        f"the stored frames (x{run.args.restarts})",
    )
    table.add(
        f"  / (2 x one core's HTJ2K decode rate, {single:.0f}/s)",
        f"{statistics.median(rates) / (2 * single):.0%}",
        "",
        None,
        "imagecodecs.htj2k_decode, same frames, before and after",
    )
    server_ms = statistics.median(load.cpu_ms for load in decoded)
    table.add(
        "  server CPU ms per decoded frame",
        f"{server_ms:.2f}",
        f"{plain.cpu_ms:.2f}",
        None,
        f"of which one decode: {decode_ms:.2f} CPU ms ({decode_ms / server_ms:.0%})",
    )
    nginx = peers.Nginx(root, run.work / "nginx", probe="/0.bin")
    nginx.start()
    try:
        files = [f"/{index}.bin" for index in range(len(urls))]
        passthrough = wrk_compare(
            run,
            table,
            "stored HTJ2K (transfer-syntax=*) vs nginx, same bytes from files",
            Target(ours.root, urls, {"Accept": FRAMES_ANY}, ours.pids),
            Target(nginx.url, files, {}, nginx.pids),
            connections=16,
        )
    finally:
        nginx.stop()
    reference = wrk(
        orthanc.root,
        urls,
        {"Accept": FRAMES_ANY},
        connections=16,
        seconds=run.args.seconds,
        server=orthanc.pids,
    )
    rate = statistics.median(load.rate for load in passthrough)
    table.add(
        "same, vs Orthanc's frames (stored Explicit VR LE, transfer-syntax=*), /s",
        f"{rate:,.0f}",
        f"{reference.rate:,.0f}",
        rate / reference.rate,
        f"wrk -t2 -c16 -d{run.args.seconds}s, one round for Orthanc",
    )
    run.memory(table)


# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help=f"what to measure: {', '.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter: 1 study, 1 round, 3 s runs, 3 restarts"
    )
    parser.add_argument("--studies", type=int, help="generated CT studies (default 2; quick 1)")
    parser.add_argument("--slices", type=int, default=300, help="instances per study (default 300)")
    parser.add_argument("--seconds", type=int, help="length of each wrk run (default 6; quick 3)")
    parser.add_argument(
        "--rounds", type=int, help="alternating rounds of each comparison (default 2; quick 1)"
    )
    parser.add_argument(
        "--restarts", type=int, help="server restarts for cold measures (default 5; quick 3)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    quick = args.quick
    defaults = {"studies": (2, 1), "seconds": (6, 3), "rounds": (2, 1), "restarts": (5, 3)}
    for name, (full, short) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    args.codec_seconds = 2.0 if quick else 3.0
    args.repeat = 10 if quick else 20
    args.latency_requests = 40 if quick else 100
    args.parts = args.parts or list(PARTS)
    return args


def main() -> None:
    args = parse_args()
    warnings.simplefilter("ignore")
    # A terminated run still stops its servers and removes its folder (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    peers.install()
    work = Path(tempfile.mkdtemp(prefix="dwp-vs-orthanc-"))
    started = time.monotonic()
    print(f"{peers.versions()}; {os.cpu_count()} cores; load average {load_average()}")
    print(f"working in {work}", flush=True)
    instances = generate_ct(work / "dicom", args.studies, args.slices)
    run = Run(args, work, instances)
    try:
        load_data(run, "import" in args.parts)
        run.ours = OurServer(work / "data")
        run.ours.start()
        run.samplers = [RssSampler(run.ours.pids), RssSampler(lambda: run.orthanc.pids())]
        for part in (metadata, retrieve, render, frames):
            if part.__name__ in args.parts:
                begun = time.monotonic()
                part(run)
                print(f"  ({part.__name__}: {time.monotonic() - begun:.0f} s)", flush=True)
    finally:
        for sampler in run.samplers:
            sampler.close()
        for server in (run.ours, run.orthanc):
            if server:
                server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{len(instances)} instances, {args.rounds} rounds, {args.seconds} s wrk runs; "
        f"load average at the end {load_average()}; {time.monotonic() - started:.0f} s in all"
    )
    print(
        "ratio: higher is better for dicomweb-proxy (rates ours/peer, latency and CPU "
        "peer/ours, RSS Orthanc/sum of our workers)"
    )
    for table in run.tables:
        table.print()


if __name__ == "__main__":
    main()
