"""Rendered JPEG and thumbnail latency over HTTP on generated 512x512 CT.

Imports one generated CT series, starts the real server (one worker) and times sequential GETs,
each instance once: ``/rendered`` (full size, and fitted to 128x128), ``/thumbnail`` the first
time (rendered) and again (served from the thumbnail cache), and series / study thumbnails.
The in-process time of :func:`render.render` for the same frames is the ceiling the HTTP figures
are measured against.

    .venv/bin/python bench/render_bench.py [--slices 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dicomweb_proxy.config import load_settings
from dicomweb_proxy.dicom import render
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.retrieve.resolver import Resolver
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.services import open_services
from tests.live_server import live_server


def percentiles(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   (n={len(ms)})"


def timed(get: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = get()
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def in_process(data_dir: Path, uids: list[tuple[str, str, str]], viewport) -> list[float]:
    """render.render alone (stored frame already read), per instance."""
    services = open_services(load_settings({"data_dir": data_dir}, environ={}))
    try:
        resolver = Resolver(services.store, services.reader)
        times = []
        for key in uids:
            record = resolver.instance(*key)
            blob = services.store.get_image_frame(record.image_set_id, record.frame_ids[0])
            request = render.RenderRequest(viewport=viewport)
            started = time.perf_counter()
            render.render(
                [(0, blob)], record.transfer_syntax, record.attributes, record.vrs, request
            )
            times.append(time.perf_counter() - started)
        return times
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=50)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="dwp-render-bench-"))
    try:
        files = generate_ct_series(work / "ct", n_studies=1, slices=args.slices, size=512)
        data_dir = work / "data"
        services = open_services(load_settings({"data_dir": data_dir}, environ={}))
        try:
            report = Importer(services.store, services.index, workers=os.cpu_count()).run(files)
            assert report.ok, report.failures[:3]
        finally:
            services.close()
        headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
        uids = [(h.StudyInstanceUID, h.SeriesInstanceUID, h.SOPInstanceUID) for h in headers]
        small = render.Viewport(128, 128)
        full_ceiling = in_process(data_dir, uids, None)
        small_ceiling = in_process(data_dir, uids, small)
        with live_server(data_dir) as base, httpx.Client(timeout=60) as http:
            instance = [f"{base}/studies/{s}/series/{se}/instances/{i}" for s, se, i in uids]
            series = f"{base}/studies/{uids[0][0]}/series/{uids[0][1]}"
            http.get(f"{instance[0]}/rendered").raise_for_status()  # warm up the worker
            results = {
                "rendered JPEG 512x512": [
                    timed(lambda u=u: http.get(f"{u}/rendered")) for u in instance
                ],
                "rendered JPEG viewport=128,128": [
                    timed(lambda u=u: http.get(f"{u}/rendered", params={"viewport": "128,128"}))
                    for u in instance
                ],
                "instance thumbnail, first": [
                    timed(lambda u=u: http.get(f"{u}/thumbnail")) for u in instance
                ],
                "instance thumbnail, cached": [
                    timed(lambda u=u: http.get(f"{u}/thumbnail")) for u in instance
                ],
                "series thumbnail": [
                    timed(lambda: http.get(f"{series}/thumbnail")) for _ in instance
                ],
                "study thumbnail": [
                    timed(lambda: http.get(f"{base}/studies/{uids[0][0]}/thumbnail"))
                    for _ in instance
                ],
            }
        print(f"CT 512x512 int16 stored as HTJ2K, {len(uids)} instances, 1 server worker")
        for name, seconds in results.items():
            print(f"  {name:32} {percentiles(seconds)}")
        print("  in process, no HTTP (render.render on the stored frame):")
        print(f"  {'  full size':32} {percentiles(full_ceiling)}")
        print(f"  {'  fitted to 128x128':32} {percentiles(small_ceiling)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
