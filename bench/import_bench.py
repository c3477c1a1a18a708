"""Import throughput on generated 512x512 CT data and on pydicom's bundled files.

Prints instances/s and MB/s for `Importer.run`, and, measured in the same run, the ceiling that
bounds it: one core's rate of reading a file and HTJ2K-encoding its frame, times the cores used.

    .venv/bin/python bench/import_bench.py [--studies 4] [--slices 100] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import imagecodecs
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.ingest.importer import Importer, ImportReport, find_files
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.services import open_services
from tests.pydicom_files import bundled_files


def single_core_ceiling(files: list[Path], sample: int = 40) -> float:
    """Files/s one core reads and HTJ2K-encodes, without any store or index work."""
    chosen = files[:: max(1, len(files) // sample)][:sample]
    started = time.perf_counter()
    for path in chosen:
        ds = pydicom.dcmread(path)
        imagecodecs.htj2k_encode(ds.pixel_array, rgb=False)
    return len(chosen) / (time.perf_counter() - started)


def import_folder(folder: Path, data_dir: Path, jobs: int) -> ImportReport:
    """Import every file under *folder* into a new data folder, as `dicomweb-proxy import`."""
    services = open_services(load_settings({"data_dir": data_dir}, environ={}))
    try:
        return Importer(services.store, services.index, workers=jobs).run(find_files([folder]))
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="dwp-import-bench-"))
    try:
        source = work / "ct"
        files = generate_ct_series(source, n_studies=args.studies, slices=args.slices)
        ceiling = single_core_ceiling(files) * args.jobs
        report = import_folder(source, work / "data-ct", args.jobs)
        assert report.ok, report.failures[:3]
        rate = report.imported / report.seconds
        megabytes = report.bytes_read / 1e6 / report.seconds
        print(f"CT 512x512 int16, {report.imported} instances, {args.jobs} jobs")
        print(f"  import            {rate:8.1f} instances/s {megabytes:7.1f} MB/s")
        print(f"  ceiling (read+encode x {args.jobs} cores) {ceiling:8.1f} files/s")
        print(f"  import / ceiling  {rate / ceiling:8.0%}")
        bundled = work / "pydicom"
        bundled.mkdir()
        for path in bundled_files():
            shutil.copy(path, bundled / path.name)
        report = import_folder(bundled, work / "data-pyd", args.jobs)
        print(f"pydicom bundled files, {len(find_files([bundled]))} files")
        print(f"  {report.summary()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
