"""Rendered and thumbnail resources over HTTP: the real server on the imported samples."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut

from dicomweb_proxy.dicom.render import Window

from .sample_data import url
from .test_render import assert_same, reference_grey, source_pixels


@dataclass
class Server:
    base: str
    http: httpx.Client
    files: dict[str, Dataset]  # SOP Instance UID -> source file

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(f"{self.base}{path}", **kwargs)

    def find(self, modality: str, **attributes) -> Dataset:
        """The first source file of *modality* with *attributes* (generated samples first)."""
        for ds in self.files.values():
            if ds.get("Modality") == modality and all(
                ds.get(k) == v for k, v in attributes.items()
            ):
                return ds
        raise LookupError(modality)

    def series_files(self, ds: Dataset) -> list[Dataset]:
        members = [f for f in self.files.values() if f.SeriesInstanceUID == ds.SeriesInstanceUID]
        return sorted(members, key=lambda f: int(f.InstanceNumber or 0))


@pytest.fixture(scope="module")
def server(imported_samples, samples_server: str) -> Iterator[Server]:
    """The shared samples server, and the source file of each imported instance."""
    files: dict[str, Dataset] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in imported_samples.files:
            ds = pydicom.dcmread(path)
            files.setdefault(str(ds.SOPInstanceUID), ds)
    with httpx.Client(timeout=30) as http:
        yield Server(samples_server, http, files)


def image(response: httpx.Response, media_type: str = "image/jpeg") -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    return np.asarray(Image.open(io.BytesIO(response.content)))


# --- rendered -----------------------------------------------------------------------------------


def test_instance_renders_as_jpeg_by_default(server):
    ct = server.find("CT", Rows=256)
    response = server.get(f"{url(ct)}/rendered")
    pixels = image(response)
    assert response.headers["vary"] == "Accept"
    assert np.abs(pixels - reference_grey(ct)).mean() < 3


@pytest.mark.parametrize("how", ["header", "query"])
def test_png_is_exact(server, how):
    ct = server.find("CT", Rows=256)
    if how == "header":
        response = server.get(f"{url(ct)}/rendered", headers={"Accept": "image/png"})
    else:
        response = server.get(f"{url(ct)}/rendered", params={"accept": "image/png"})
    assert_same(image(response, "image/png"), reference_grey(ct))


def test_monochrome1_and_palette_colour(server):
    cr = server.find("CR")
    assert cr.PhotometricInterpretation == "MONOCHROME1"
    png = {"Accept": "image/png"}
    assert_same(
        image(server.get(f"{url(cr)}/rendered", headers=png), "image/png"), reference_grey(cr)
    )
    palette = next(ds for ds in server.files.values() if "RedPaletteColorLookupTableData" in ds)
    expected = apply_color_lut(source_pixels(palette), palette) * (255 / 65535)
    rendered = image(server.get(f"{url(palette)}/rendered", headers=png), "image/png")
    assert_same(rendered, expected)


def test_window_and_viewport_parameters(server):
    ct = server.find("CT", Rows=256)
    params = {"window": "-600,1500,linear", "viewport": "128,64"}
    response = server.get(f"{url(ct)}/rendered", params=params, headers={"Accept": "image/png"})
    pixels = image(response, "image/png")
    assert pixels.shape == (64, 64)
    full = Image.fromarray(reference_grey(ct, Window(-600, 1500)).astype(np.float32), mode="F")
    expected = np.asarray(full.resize((64, 64), Image.Resampling.BOX))
    # Decoded at a quarter resolution: equal but for wavelet ringing at the scan circle's edge.
    assert np.median(np.abs(pixels - expected)) < 2


def test_a_frame_rendered_again_with_other_windows_is_right_each_time(server):
    """The later renderings reuse the decoded frame (and the series' grey tables)."""
    ct = server.find("CT", Rows=256)
    png = {"Accept": "image/png"}
    for text, window in [
        (None, None),
        ("-600,1500", Window(-600, 1500)),
        ("40,80,sigmoid", Window(40, 80, "SIGMOID")),
        (None, None),
    ]:
        params = {} if text is None else {"window": text}
        rendered = image(server.get(f"{url(ct)}/rendered", params=params, headers=png), "image/png")
        assert_same(rendered, reference_grey(ct, window))


def test_signed_ct_without_a_window(server):
    ct = server.find("CT", PatientName="CompressedSamples^CT1")
    assert ct.PixelRepresentation == 1 and "WindowCenter" not in ct
    pixels = image(server.get(f"{url(ct)}/rendered", params={"accept": "image/png"}), "image/png")
    assert_same(pixels, reference_grey(ct))


def test_multi_frame_instance_first_frame_or_animated_gif(server):
    cine = server.find("US", PhotometricInterpretation="RGB")
    first = image(server.get(f"{url(cine)}/rendered", params={"accept": "image/png"}), "image/png")
    assert_same(first, source_pixels(cine, 0).astype(float))
    gif = server.get(f"{url(cine)}/rendered", headers={"Accept": "image/gif"})
    assert gif.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(gif.content)) as animation:
        assert animation.n_frames == cine.NumberOfFrames


def test_frames_rendered(server):
    cine = server.find("US", PhotometricInterpretation="RGB")
    third = server.get(f"{url(cine)}/frames/3/rendered", params={"accept": "image/png"})
    assert_same(image(third, "image/png"), source_pixels(cine, 2).astype(float))
    several = server.get(f"{url(cine)}/frames/1,2,3/rendered")
    with Image.open(io.BytesIO(several.content)) as animation:
        assert (several.headers["content-type"], animation.n_frames) == ("image/gif", 3)
    as_jpeg = server.get(f"{url(cine)}/frames/1,2/rendered", headers={"Accept": "image/jpeg"})
    assert as_jpeg.status_code == 406
    assert server.get(f"{url(cine)}/frames/99/rendered").status_code == 404
    assert server.get(f"{url(cine)}/frames/0/rendered").status_code == 400


def test_series_and_study_render_the_middle_image(server):
    ct = server.find("CT", Rows=256)
    members = server.series_files(ct)
    middle = members[len(members) // 2]
    expected = server.get(f"{url(middle)}/rendered").content
    assert server.get(f"{url(ct, 'series')}/rendered").content == expected
    study_first_series = min(
        (ds for ds in server.files.values() if ds.StudyInstanceUID == ct.StudyInstanceUID),
        key=lambda ds: int(ds.SeriesNumber),
    )
    if study_first_series.SeriesInstanceUID == ct.SeriesInstanceUID:
        assert server.get(f"{url(ct, 'study')}/rendered").content == expected


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"quality": "0"}, "quality"),
        ({"quality": "high"}, "quality"),
        ({"window": "40"}, "window"),
        ({"window": "40,0,linear"}, "window"),
        ({"window": "40,400,cubic"}, "window"),
        ({"viewport": "0,10"}, "viewport"),
        ({"viewport": "10,10,5"}, "viewport"),
        ({"viewport": "10,10,-1,0,10,10"}, "viewport"),
        ({"viewport": "10,10,9999,0,,"}, "viewport"),
        ({"viewport": "99999,10"}, "viewport"),
        # Unicode digits, "_" and signs pass isdigit() or int() but are not numbers here.
        ({"quality": "\u00b2"}, "quality"),
        ({"quality": "\u0665\u0660"}, "quality"),
        ({"quality": "5_0"}, "quality"),
        ({"quality": "+50"}, "quality"),
        ({"quality": "9" * 5000}, "quality"),
        ({"viewport": "1_0,10"}, "viewport"),
        ({"viewport": "+10,10"}, "viewport"),
        ({"viewport": "\u0661\u0660,10"}, "viewport"),
        ({"viewport": "9" * 5000 + ",10"}, "viewport"),
        ({"window": "nan,400"}, "window"),
        ({"window": "40,inf"}, "window"),
        ({"window": "4_0,400"}, "window"),
        ({"window": "\u0664\u0660,400"}, "window"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(server, params, named):
    response = server.get(f"{url(server.find('CT', Rows=256))}/rendered", params=params)
    assert response.status_code == 400
    assert response.text.startswith(f"{named}:")


def test_decimal_parameters_still_accepted(server):
    ct = server.find("CT", Rows=256)
    params = {"quality": " 50", "window": "-6e2,1500.5", "viewport": "64,64,,,-128,"}
    image(server.get(f"{url(ct)}/rendered", params=params))


def test_rendering_is_bounded_before_any_frame_is_fetched(server):
    """6 frames at 8192x8192 were a 15 MB GIF after 18.8 s and 2 GB of memory."""
    cine = server.find("US", PhotometricInterpretation="RGB")
    response = server.get(
        f"{url(cine)}/frames/1,1,1,1,1,1/rendered", params={"viewport": "8192,8192"}
    )
    assert response.status_code == 400
    assert response.text.startswith("frames: 6 frames of 8192x")
    assert "pixels" in response.text and "smaller viewport" in response.text
    assert response.elapsed.total_seconds() < 2
    # One frame at the largest viewport is within the bound.
    big = server.get(f"{url(cine)}/frames/1/rendered", params={"viewport": "8192,8192"})
    assert max(image(big).shape[:2]) == 8192
    # Every frame as GIF, fitted into a viewport, still works.
    gif = server.get(
        f"{url(cine)}/rendered", headers={"Accept": "image/gif"}, params={"viewport": "64,64"}
    )
    with Image.open(io.BytesIO(gif.content)) as animation:
        assert animation.n_frames == cine.NumberOfFrames and max(animation.size) == 64


def test_annotation_is_ignored_with_a_warning(server):
    response = server.get(
        f"{url(server.find('CT', Rows=256))}/rendered", params={"annotation": "patient"}
    )
    image(response)
    assert response.headers["warning"].startswith("299 ")


def test_flipped_region_viewport(server):
    ct = server.find("CT", Rows=256)
    params = {"viewport": "64,64,0,0,-128,128", "accept": "image/png"}
    flipped = image(server.get(f"{url(ct)}/rendered", params=params), "image/png")
    params["viewport"] = "64,64,0,0,128,128"
    plain = image(server.get(f"{url(ct)}/rendered", params=params), "image/png")
    np.testing.assert_array_equal(flipped, plain[:, ::-1])


def test_unknown_uids_unsupported_types_and_non_images(server):
    ct = server.find("CT", Rows=256)
    assert server.get("/studies/1.2.3/rendered").status_code == 404
    assert server.get(f"{url(ct, 'study')}/series/1.2.3/rendered").status_code == 404
    assert server.get(f"{url(ct, 'series')}/instances/1.2.3/rendered").status_code == 404
    assert server.get("/studies/1.2.3/thumbnail").status_code == 404
    dicom = server.get(f"{url(ct)}/rendered", headers={"Accept": "application/dicom"})
    assert dicom.status_code == 406
    report = server.find("SR")
    assert server.get(f"{url(report)}/rendered").status_code == 406
    assert server.get(f"{url(report)}/thumbnail").status_code == 406


def test_head(server):
    response = server.http.head(f"{server.base}{url(server.find('CT', Rows=256))}/rendered")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"


# --- thumbnails ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_thumbnails_are_small_cacheable_jpegs(server, level):
    ct = server.find("CT", Rows=256)
    response = server.get(f"{url(ct, level)}/thumbnail")
    pixels = image(response)
    assert pixels.shape == (128, 128)
    assert "max-age" in response.headers["cache-control"]


def test_thumbnail_of_a_multi_frame_instance_is_its_middle_frame(server):
    cine = server.find("US", PhotometricInterpretation="RGB")
    middle = (cine.NumberOfFrames + 1) // 2
    thumbnail = server.get(f"{url(cine)}/thumbnail", params={"accept": "image/png"})
    frame = server.get(f"{url(cine)}/frames/{middle}/thumbnail", params={"accept": "image/png"})
    assert thumbnail.content == frame.content
    assert max(image(thumbnail, "image/png").shape[:2]) == 128


def test_thumbnail_viewport_and_no_enlarging(server):
    ct = server.find("CT", Rows=256)
    assert image(server.get(f"{url(ct)}/thumbnail", params={"viewport": "64,32"})).shape == (
        32,
        32,
    )
    small = server.find("MR", Rows=64, Columns=64)
    assert image(server.get(f"{url(small)}/thumbnail")).shape == (64, 64)
    region = server.get(f"{url(ct)}/thumbnail", params={"viewport": "64,64,0,0,10,10"})
    assert region.status_code == 400


# --- dicomweb-client ------------------------------------------------------------------------------


def test_dicomweb_client(server):
    client = DICOMwebClient(server.base)
    ct = server.find("CT", Rows=256)
    uids = (ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    jpeg = client.retrieve_instance_rendered(*uids)
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    png = client.retrieve_instance_rendered(
        *uids, media_types=("image/png",), params={"viewport": "100,100"}
    )
    assert Image.open(io.BytesIO(png)).size == (100, 100)
    cine = server.find("US", PhotometricInterpretation="RGB")
    frames = client.retrieve_instance_frames_rendered(
        cine.StudyInstanceUID,
        cine.SeriesInstanceUID,
        cine.SOPInstanceUID,
        frame_numbers=[2],
        media_types=("image/jpeg",),
        params={"quality": 50},
    )
    assert Image.open(io.BytesIO(frames)).format == "JPEG"
    series = client.retrieve_series_rendered(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, media_types=("image/gif",)
    )
    assert Image.open(io.BytesIO(series)).format == "GIF"
