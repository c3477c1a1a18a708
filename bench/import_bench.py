"""Import throughput on generated 512x512 CT, beside Orthanc's REST ingest of the same files.

Measured in one run, best of --rounds each (a shared machine only ever slows a run down):

- `Importer.run` (what `dicomweb-proxy import` runs) transcoding to HTJ2K, and with
  `--keep-original`; with the CPU time per instance of its worker processes (parsing, encoding,
  writing and indexing series) and of the parent process;
- Orthanc (`apt-get install orthanc`) ingesting the same files through `POST /instances` from
  --clients concurrent clients, with its index and storage in a temporary folder;
- the HTJ2K encode rate of one core on the same frames (`encode_htj2k`, as the importer calls
  it), and which fraction of --jobs times that rate the import reaches;
- where one instance's time goes on one core, stage by stage.

    .venv/bin/python bench/import_bench.py [--studies 4] [--slices 100] [--jobs N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.dicom.ahi_json import Memo, dataset_to_attributes
from dicomweb_proxy.dicom.frames import encode_htj2k, store_pixels
from dicomweb_proxy.ingest.importer import Importer, find_files, image_set_id_for, write_series
from dicomweb_proxy.ingest.parse import ParsedFile, parse_file
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.services import Services, open_services
from tests.pydicom_files import bundled_files


@dataclass(frozen=True)
class Run:
    rate: float  # instances/s
    cpu_ms: dict[str, float]  # CPU milliseconds per instance, by process kind


def open_data_dir(data_dir: Path, *, keep_original: bool = False) -> Services:
    return open_services(
        load_settings({"data_dir": data_dir, "keep_original": keep_original}, environ={})
    )


def import_folder(folder: Path, data_dir: Path, jobs: int, *, keep_original: bool) -> Run:
    """Import every file under *folder* into a new data folder, as `dicomweb-proxy import`;
    the CPU time counted is the run's, without opening the index."""
    services = open_data_dir(data_dir, keep_original=keep_original)
    try:
        importer = Importer(
            services.store, services.index, keep_original=keep_original, workers=jobs
        )
        parent, children = time.process_time(), _children_cpu()
        report = importer.run(find_files([folder]))
        parent, children = time.process_time() - parent, _children_cpu() - children
    finally:
        services.close()
    assert report.ok, report.failures[:3]
    cpu = {"workers": children, "parent": parent}
    per_instance = {kind: seconds * 1000 / report.imported for kind, seconds in cpu.items()}
    return Run(report.imported / report.seconds, per_instance)


def measure_import(folder: Path, work: Path, jobs: int, *, keep_original: bool) -> Run:
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    try:
        return import_folder(folder, data_dir, jobs, keep_original=keep_original)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_orthanc(files: list[Path], work: Path, clients: int) -> Run:
    """POST every file to a fresh Orthanc from *clients* threads, one connection each."""
    folder = Path(tempfile.mkdtemp(prefix="orthanc-", dir=work))
    port = _free_port()
    config = {
        "Name": "import-bench",
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "Plugins": [],
    }
    (folder / "config.json").write_text(json.dumps(config))
    server = subprocess.Popen(
        ["Orthanc", str(folder / "config.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(port)
        local = threading.local()

        def post(path: Path) -> None:
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection("127.0.0.1", port)
            headers = {"Content-Type": "application/dicom"}
            local.connection.request("POST", "/instances", body=path.read_bytes(), headers=headers)
            response = local.connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"Orthanc answered {response.status} for {path}")

        cpu = _process_cpu(server.pid)
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(post, files))
        seconds = time.perf_counter() - started
        return Run(
            len(files) / seconds, {"Orthanc": (_process_cpu(server.pid) - cpu) * 1000 / len(files)}
        )
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/system")
            connection.getresponse().read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def encode_rate(files: list[Path], rounds: int) -> float:
    """Frames/s one core HTJ2K-encodes, the frames decoded beforehand (best of *rounds*)."""
    frames = [pydicom.dcmread(path).pixel_array for path in files]
    best = 0.0
    for _ in range(rounds):
        started = time.process_time()
        for frame in frames:
            encode_htj2k(frame)
        best = max(best, len(frames) / (time.process_time() - started))
    return best


def stage_costs(files: list[Path], work: Path) -> dict[str, float]:
    """CPU milliseconds per instance of each import stage on one core."""
    memo: Memo = {}
    stages: dict[str, Callable[[Path], object]] = {
        "read + parse (dcmread)": pydicom.dcmread,
        "attributes (dataset_to_attributes, memo)": lambda p: dataset_to_attributes(
            pydicom.dcmread(p), memo
        ),
        "frames, --keep-original (store_pixels)": lambda p: store_pixels(
            pydicom.dcmread(p), keep_original=True
        ),
        "frames, HTJ2K (store_pixels)": lambda p: store_pixels(pydicom.dcmread(p)),
    }
    costs: dict[str, float] = {}
    baseline = 0.0
    for name, stage in stages.items():
        started = time.process_time()
        for path in files:
            stage(path)
        cost = (time.process_time() - started) * 1000 / len(files)
        costs[name] = cost if not baseline else cost - baseline
        baseline = baseline or cost
    services = open_data_dir(Path(tempfile.mkdtemp(prefix="stages-", dir=work)))
    try:
        staging = services.store.staging_dir
        parsed = [parse_file(str(path), keep_original=True, staging_dir=staging) for path in files]
        by_series: dict[str, list[ParsedFile]] = {}
        for one in parsed:
            assert isinstance(one, ParsedFile), one
            key = image_set_id_for(one.entry.study_uid, one.entry.series_uid)
            by_series.setdefault(key, []).append(one)
        started = time.process_time()
        for image_set_id, batch in by_series.items():
            write_series(services.store, services.index, image_set_id, batch)
        name = "store + index, one version a series (write_series)"
        costs[name] = (time.process_time() - started) * 1000 / len(files)
    finally:
        services.close()
    return costs


def best(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="concurrent Orthanc clients")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="dwp-import-bench-"))
    try:
        source = work / "ct"
        files = generate_ct_series(source, n_studies=args.studies, slices=args.slices)
        sample = files[:100]  # most of one series: what a memo sees at import
        encode = encode_rate(sample, args.rounds)
        orthanc = shutil.which("Orthanc") is not None
        runs: dict[str, list[Run]] = {"HTJ2K": [], "--keep-original": [], "Orthanc": []}
        for _ in range(args.rounds):
            for keep, name in ((False, "HTJ2K"), (True, "--keep-original")):
                runs[name].append(measure_import(source, work, args.jobs, keep_original=keep))
            if orthanc:
                runs["Orthanc"].append(measure_orthanc(files, work, args.clients))
        results = {name: best(found) for name, found in runs.items() if found}
        print(f"CT 512x512 int16, {len(files)} instances, {args.jobs} jobs, best of {args.rounds}")
        for name, run in results.items():
            cpu = ", ".join(f"{kind} {ms:.2f}" for kind, ms in run.cpu_ms.items())
            print(f"  {name:16s} {run.rate:8.1f} instances/s   CPU ms/instance: {cpu}")
        if "Orthanc" in results:
            base = results["Orthanc"].rate
            for name, goal in (("HTJ2K", 1), ("--keep-original", 3)):
                ratio = results[name].rate / base
                print(f"  {name + ' / Orthanc':26s}{ratio:6.2f}x  (goal >= {goal})")
        else:
            print("  Orthanc: not installed (apt-get install orthanc), not compared")
        ceiling = encode * args.jobs
        print(f"  HTJ2K encode, one core    {encode:8.1f} frames/s")
        print(f"  HTJ2K import / ({args.jobs} x encode) {results['HTJ2K'].rate / ceiling:6.0%}")
        print("  one instance on one core, CPU ms:")
        for name, cost in stage_costs(sample, work).items():
            print(f"    {name:52s} {cost:6.2f}")
        bundled = work / "pydicom"
        bundled.mkdir()
        for path in bundled_files():
            shutil.copy(path, bundled / path.name)
        services = open_data_dir(work / "data-pyd")
        try:
            report = Importer(services.store, services.index, workers=args.jobs).run(
                find_files([bundled])
            )
        finally:
            services.close()
        print(f"pydicom bundled files, {len(find_files([bundled]))} files")
        print(f"  {report.summary()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
