"""Rendered JPEG and thumbnail latency on generated 512x512 CT stored as HTJ2K: per stage in
process, then over HTTP against the real server (one worker).

In process, each stored frame once, per stage: read (the store), decode, window (stored values
to display values: a kept grey table, and the per-pixel float64 pipeline it replaced as the
baseline), resize (the viewport), encode. Over HTTP, sequential GETs: /health (the floor of any
request), /rendered the first time for each frame (after each instance was resolved once, so
it times rendering, not first look-ups), again (the decoded frame is kept), with another
window, fitted to 128x128, /frames/1/rendered, and thumbnails.

    .venv/bin/python bench/render_bench.py [--slices 100] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import imagecodecs
import numpy as np
import pydicom
from PIL import Image

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
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):6.2f} ms   p90 {p90:6.2f} ms   (n={len(ms)})"


def clocked(into: list[float], function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    into.append(time.perf_counter() - started)
    return result


def baseline_window(frame: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """What render_frame did on grey frames before grey tables: float64 passes over the frame."""
    return render.to_uint8(render.voi(render.modality_lut(frame, ds), ds))


def stages(
    data_dir: Path, uids: list[tuple[str, str, str]], viewport
) -> tuple[dict[str, list[float]], np.ndarray]:
    """Each stage of rendering each instance's frame once, in process; the last display image."""
    services = open_services(load_settings({"data_dir": data_dir}, environ={}))
    names = ("read", "decode", "window", "window, float64 baseline", "resize", "encode")
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        resolver = Resolver(services.store, services.reader)
        request = render.RenderRequest(viewport=viewport)
        for key in uids:
            record = resolver.instance(*key)
            size = int(record.attributes["Columns"]), int(record.attributes["Rows"])
            store = services.store
            blob = clocked(
                times["read"], store.get_image_frame, record.image_set_id, record.frame_ids[0]
            )
            reduction = render.reduction_for(viewport, *size)
            array = clocked(
                times["decode"],
                render.decode_reduced,
                blob,
                record.transfer_syntax,
                record.attributes,
                reduction,
            )
            ds, pipeline = render.cached_pipeline(record.attributes, record.vrs)
            image = clocked(times["window"], render.render_frame, array, ds, None, pipeline)
            clocked(times["window, float64 baseline"], baseline_window, array, ds)
            picture = clocked(times["resize"], render.fit_viewport, image, viewport, size)
            clocked(times["encode"], render.encode_pictures, [picture], request, record.attributes)
        return times, image
    finally:
        services.close()


def timed_gets(http: httpx.Client, urls: list[str], **kwargs: Any) -> list[float]:
    times: list[float] = []
    for url in urls:
        clocked(times, http.get, url, **kwargs).raise_for_status()
    return times


def encoders(image: np.ndarray) -> dict[str, list[float]]:
    """Pillow's JPEG writer (what encode uses) and imagecodecs' libjpeg-turbo on one image."""

    def pillow() -> bytes:
        out = io.BytesIO()
        Image.fromarray(image).save(out, "JPEG", quality=render.DEFAULT_QUALITY)
        return out.getvalue()

    times: dict[str, list[float]] = {"Pillow": [], "imagecodecs.jpeg8_encode": []}
    for _ in range(200):
        clocked(times["Pillow"], pillow)
        clocked(
            times["imagecodecs.jpeg8_encode"],
            imagecodecs.jpeg8_encode,
            image,
            level=render.DEFAULT_QUALITY,
        )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="GETs of each frame after the first")
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
        full, windowed = stages(data_dir, uids, None)
        small, _ = stages(data_dir, uids, render.Viewport(128, 128))
        with live_server(data_dir) as base, httpx.Client(timeout=60) as http:
            instance = [f"{base}/studies/{s}/series/{se}/instances/{i}" for s, se, i in uids]
            series = f"{base}/studies/{uids[0][0]}/series/{uids[0][1]}"
            timed_gets(http, [f"{u}/metadata" for u in instance])  # resolve each instance
            rendered = [f"{u}/rendered" for u in instance]
            again = rendered * args.rounds
            results = {
                "/health": timed_gets(http, [f"{base}/health"] * len(again)),
                "rendered, first time": timed_gets(http, rendered),
                "rendered again": timed_gets(http, again),
                "rendered, another window": timed_gets(
                    http, rendered, params={"window": "-600,1500"}
                ),
                "rendered viewport=128,128": timed_gets(
                    http, rendered, params={"viewport": "128,128"}
                ),
                "frames/1/rendered": timed_gets(http, [f"{u}/frames/1/rendered" for u in instance]),
                "instance thumbnail, first": timed_gets(http, [f"{u}/thumbnail" for u in instance]),
                "instance thumbnail, cached": timed_gets(
                    http, [f"{u}/thumbnail" for u in instance]
                ),
                "series thumbnail": timed_gets(http, [f"{series}/thumbnail"] * len(instance)),
            }
        print(f"CT 512x512 int16 stored as HTJ2K, {len(uids)} instances")
        for title, times in (("full size", full), ("fitted to 128x128", small)):
            total = sum(statistics.median(t) for n, t in times.items() if "baseline" not in n)
            print(f"  in process, {title} (sum of medians {1000 * total:.2f} ms):")
            for name, seconds in times.items():
                print(f"    {name:28} {percentiles(seconds)}")
            ratio = statistics.median(times["window, float64 baseline"]) / statistics.median(
                times["window"]
            )
            print(f"    {'window vs baseline':28} {ratio:.1f}x faster")
        print("  JPEG encoders on a rendered 512x512 frame:")
        for name, seconds in encoders(windowed).items():
            print(f"    {name:28} {percentiles(seconds)}")
        print("  over HTTP, 1 server worker, sequential GETs (httpx keep-alive):")
        for name, seconds in results.items():
            print(f"    {name:28} {percentiles(seconds)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
