"""Rendered images match pydicom's own pipeline applied to the source file.

Every input goes the server's way first (attributes to image-set JSON, pixels to stored frames),
then through :func:`render.render`; the reference is pydicom's ``apply_modality_lut``,
``apply_voi_lut``, ``apply_color_lut`` and ``convert_color_space`` on the source file's pixels.
PNG output must be the reference rounded (a value on a rounding tie may go either way), JPEG
within its loss.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    convert_color_space,
    pixel_array,
)
from pydicom.sequence import Sequence as DicomSequence

from dicomweb_proxy.dicom import render
from dicomweb_proxy.dicom import transfer_syntax as ts
from dicomweb_proxy.dicom.ahi_json import dataset_to_attributes
from dicomweb_proxy.dicom.frames import store_pixels
from dicomweb_proxy.dicom.render import RenderError, RenderRequest, Viewport, Window
from dicomweb_proxy.samples import generate_ct_series, generate_sample_studies


class Stored:
    """A source file as the server keeps it: merged attributes (through JSON) and frame blobs."""

    def __init__(self, ds: Dataset, *, keep_original: bool = False) -> None:
        attributes, vrs = dataset_to_attributes(ds)
        pixels = store_pixels(ds, keep_original=keep_original)
        attributes.update(pixels.changed_attributes)
        self.attributes: dict[str, Any] = orjson.loads(orjson.dumps(attributes))
        self.vrs = vrs
        self.transfer_syntax_uid = pixels.transfer_syntax_uid
        self.blobs = [frame.data for frame in pixels.frames]

    def render(self, media_type: str = render.PNG, frames=(0,), **parameters) -> bytes:
        request = RenderRequest(media_type=media_type, **parameters)
        selected = [(index, self.blobs[index]) for index in frames]
        return render.render(selected, self.transfer_syntax_uid, self.attributes, self.vrs, request)


def read(path: str | Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def bundled(name: str) -> Dataset:
    return read(get_testdata_file(name))


def decoded(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)))


def source_pixels(ds: Dataset, index: int = 0, *, raw: bool = False) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pixel_array(ds, index=index, raw=raw)


def unit_range(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """Scale pydicom's windowing output (its y_min..y_max, from Bits Stored and the rescale) to
    0..1: y_min and y_max are the outputs for values far below and above any window."""
    with np.errstate(over="ignore"):
        low, high = apply_voi_lut(np.array([-1e12, 1e12]), ds, prefer_lut=False)
    return (values - low) / (high - low)


def reference_grey(ds: Dataset, window: Window | None = None, index: int = 0) -> np.ndarray:
    """pydicom's grayscale pipeline, 0..255 unrounded; a window overrides the file's, and none at
    all spans the values."""
    ds = copy.deepcopy(ds)
    values = apply_modality_lut(source_pixels(ds, index), ds)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window.center, window.width
        ds.VOILUTFunction = window.function
    if "WindowCenter" in ds:
        unit = unit_range(apply_voi_lut(values, ds, prefer_lut=False), ds)
    else:
        unit = (values - values.min()) / (values.max() - values.min())
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unit = 1 - unit
    return unit * 255


def assert_same(rendered: np.ndarray, reference: np.ndarray) -> None:
    """*rendered* is *reference* rounded; a tie (x.5) may round either way."""
    assert rendered.shape == reference.shape
    assert np.abs(rendered - reference.astype(float)).max() <= 0.5 + 1e-6


def assert_close_jpeg(encoded: bytes, reference: np.ndarray) -> None:
    pixels = decoded(encoded)
    assert pixels.shape == reference.shape
    assert np.abs(pixels.astype(float) - reference).mean() < 3.0  # quality 90


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_sample_studies(tmp_path_factory.mktemp("samples"))


def sample(paths: list[Path], modality: str, transfer_syntax: str | None = None) -> Dataset:
    for path in paths:
        ds = read(path)
        if ds.Modality == modality and transfer_syntax in (None, ds.file_meta.TransferSyntaxUID):
            return ds
    raise LookupError(modality)


# --- grayscale --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "693_J2KI.dcm"]
)
def test_monochrome2_with_the_objects_window(name):
    ds = bundled(name)
    stored = Stored(ds)
    reference = reference_grey(ds)
    assert_same(decoded(stored.render()), reference)
    assert_close_jpeg(stored.render(render.JPEG), reference)


def test_signed_ct_without_a_window_spans_its_values():
    ds = bundled("CT_small.dcm")
    assert ds.PixelRepresentation == 1 and "WindowCenter" not in ds
    assert_same(decoded(Stored(ds).render()), reference_grey(ds))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_requested_window_wins_over_the_objects(function):
    ds = bundled("MR_small.dcm")
    window = Window(400.0, 300.0, function)
    rendered = decoded(Stored(ds).render(window=window))
    assert_same(rendered, reference_grey(ds, window))
    assert not np.array_equal(rendered, reference_grey(ds))


@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
def test_monochrome1_is_inverted(samples, big_endian):
    tsyntax = pydicom.uid.ExplicitVRBigEndian if big_endian else pydicom.uid.ExplicitVRLittleEndian
    ds = sample(samples, "CR", tsyntax)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    rendered = decoded(Stored(ds).render())
    assert_same(rendered, reference_grey(ds))
    # Bone (low values in MONOCHROME1) is bright: the image centre is brighter than its corner.
    assert rendered[320, 256] > rendered[5, 5]


def test_generated_ct_with_rescale_and_two_windows(samples):
    ds = sample(samples, "CT")
    assert len(ds.WindowCenter) == 2 and ds.RescaleIntercept == -1024
    assert_same(decoded(Stored(ds).render()), reference_grey(ds))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize(("center", "width"), [(0.0, 1.0), (100.5, 2.0), (-50.0, 333.3)])
def test_window_functions_match_pydicom_on_synthetic_values(function, center, width):
    if function == "LINEAR" and width < 1:
        pytest.skip("LINEAR needs a width of at least 1")
    values = np.arange(-600, 600, 0.25)
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored, ds.PixelRepresentation = 12, 1
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = center, width, function
    with np.errstate(over="ignore"):
        expected = unit_range(apply_voi_lut(values, ds), ds)
    actual = render.apply_window(values, Window(center, width, function))
    np.testing.assert_allclose(actual, expected, atol=1e-9)


def test_linear_width_one_is_a_threshold():
    values = np.array([9.0, 9.5, 10.0, 11.0])
    assert render.apply_window(values, Window(10, 1)).tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("center", "width", "function"), [(0, 0.5, "LINEAR"), (0, 0, "SIGMOID"), (0, 10, "CUBIC")]
)
def test_unusable_windows_are_refused(center, width, function):
    with pytest.raises(RenderError):
        Window(center, width, function)


def test_unusable_object_window_falls_back_to_the_value_range():
    ds = Dataset()
    ds.WindowCenter, ds.WindowWidth = 40, 0
    values = np.array([[0.0, 50.0], [100.0, 200.0]])
    assert render.to_uint8(render.voi(values, ds)).tolist() == [[0, 64], [128, 255]]


def lut_dataset(**attributes: Any) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns, ds.BitsStored, ds.PixelRepresentation = 1, 8, 12, 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def lut_item(first: int, bits: int, data: np.ndarray) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.LUTData = data.astype("<u2").tobytes()
    item["LUTData"].VR = "OW"
    return item


def test_voi_lut_sequence_through_the_image_set_json():
    lut = np.linspace(0, 4095, 100).astype(np.uint16)
    source = lut_dataset(VOILUTSequence=DicomSequence([lut_item(50, 12, lut)]))
    attributes, vrs = dataset_to_attributes(source)
    ds = render.pipeline_dataset(orjson.loads(orjson.dumps(attributes)), vrs)
    stored = np.array([0, 49, 50, 99, 149, 150, 4000, 70000], dtype=np.int64)
    expected = apply_voi_lut(np.clip(stored, 0, 4095), source) / 4095
    np.testing.assert_allclose(render.voi(stored.astype(float), ds), expected)


def test_modality_lut_sequence_through_the_image_set_json():
    lut = (np.arange(256) * 3).astype(np.uint16)
    source = lut_dataset(ModalityLUTSequence=DicomSequence([lut_item(10, 16, lut)]))
    attributes, vrs = dataset_to_attributes(source)
    ds = render.pipeline_dataset(orjson.loads(orjson.dumps(attributes)), vrs)
    stored = np.array([0, 10, 11, 200, 265, 300], dtype=np.uint16)
    np.testing.assert_array_equal(
        render.modality_lut(stored, ds), apply_modality_lut(stored, source)
    )


def test_enhanced_objects_take_the_window_and_rescale_of_each_frame():
    def groups(center: str, intercept: str) -> dict[str, Any]:
        return {
            "FrameVOILUTSequence": [{"WindowCenter": center, "WindowWidth": "100"}],
            "PixelValueTransformationSequence": [
                {"RescaleSlope": "1", "RescaleIntercept": intercept}
            ],
        }

    attributes = {
        "PhotometricInterpretation": "MONOCHROME2",
        "WindowCenter": "0",
        "WindowWidth": "1",
        "SharedFunctionalGroupsSequence": [groups("50", "0")],
        "PerFrameFunctionalGroupsSequence": [
            {"FrameVOILUTSequence": [{"WindowCenter": "500", "WindowWidth": "200"}]},
            {},
        ],
    }
    first = render.pipeline_dataset(attributes, frame_index=0)
    second = render.pipeline_dataset(attributes, frame_index=1)
    assert (first.WindowCenter, first.WindowWidth, first.RescaleIntercept) == (500, 200, 0)
    assert (second.WindowCenter, second.WindowWidth) == (50, 100)


def every_int16() -> np.ndarray:
    return np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256)


@pytest.mark.parametrize(
    ("name", "window"),
    [
        ("CT_small.dcm", Window(40, 400)),  # signed, rescaled
        ("CT_small.dcm", Window(40.5, 1, "LINEAR")),  # a threshold
        ("CT_small.dcm", Window(-100, 700, "SIGMOID")),
        ("MR_small.dcm", None),  # the object's window
        ("MR_small.dcm", Window(400, 300, "LINEAR_EXACT")),
    ],
)
@pytest.mark.parametrize("byte_order", ["=", ">"])
def test_grey_tables_give_what_the_pipeline_gives_on_the_frame(name, window, byte_order):
    ds = render.pipeline_dataset(Stored(bundled(name)).attributes)
    frame = every_int16() if ds.PixelRepresentation else every_int16().view(np.uint16)
    frame = frame.astype(frame.dtype.newbyteorder(byte_order))
    direct = render.grey_to_uint8(frame.astype(np.int32), ds, window)  # 32 bits: no table
    keyed = render.grey_to_uint8(frame, ds, window, key=("test", name))
    np.testing.assert_array_equal(render.grey_to_uint8(frame, ds, window), direct)
    np.testing.assert_array_equal(keyed, direct)
    # Kept: the same key and window find the table (a different window does not).
    np.testing.assert_array_equal(render.grey_to_uint8(frame, ds, window, ("test", name)), direct)


def test_grey_tables_of_lut_sequences_and_monochrome1(samples):
    voi = lut_dataset(
        VOILUTSequence=DicomSequence([lut_item(50, 12, np.linspace(0, 4095, 100).astype("u2"))])
    )
    modality = lut_dataset(
        ModalityLUTSequence=DicomSequence([lut_item(10, 16, (np.arange(256) * 3).astype("u2"))]),
        WindowCenter=300,
        WindowWidth=400,
    )
    cr = sample(samples, "CR")
    frame = every_int16().view(np.uint16)
    for source in (voi, modality, cr):
        attributes, vrs = dataset_to_attributes(source)
        ds, key = render.cached_pipeline(orjson.loads(orjson.dumps(attributes)), vrs)
        direct = render.grey_to_uint8(frame.astype(np.int32), ds)
        np.testing.assert_array_equal(render.grey_to_uint8(frame, ds, key=key), direct)
    # 8-bit frames have 256-entry tables.
    small = np.arange(256, dtype=np.uint8).reshape(16, 16)
    direct = render.grey_to_uint8(small.astype(np.int32), ds, Window(100, 50))
    np.testing.assert_array_equal(render.grey_to_uint8(small, ds, Window(100, 50), key), direct)


def test_a_window_spanning_the_values_is_computed_on_each_frame():
    ds = render.pipeline_dataset(Stored(bundled("CT_small.dcm")).attributes)
    assert "WindowCenter" not in ds
    low = np.array([[0, 100]], dtype=np.int16)
    high = np.array([[0, 1000]], dtype=np.int16)
    assert render.grey_to_uint8(low, ds, key="ct").tolist() == [[0, 255]]
    assert render.grey_to_uint8(high, ds, key="ct").tolist() == [[0, 255]]


def test_equal_pipeline_attributes_share_a_key_and_a_dataset():
    attributes = Stored(bundled("MR_small.dcm")).attributes
    ds, key = render.cached_pipeline(attributes, {})
    again, same_key = render.cached_pipeline(copy.deepcopy(attributes), {})
    assert same_key == key and again is ds
    other = {**attributes, "WindowCenter": ["10"]}
    other_ds, other_key = render.cached_pipeline(other, {})
    assert other_key != key and other_ds.WindowCenter == 10
    ignored = {**attributes, "PatientName": [{"Alphabetic": "Someone^Else"}]}
    assert render.cached_pipeline(ignored, {})[1] == key  # only what the pipeline reads counts


@pytest.mark.parametrize(
    "name",
    ["MR_small.dcm", "SC_rgb_small_odd.dcm", "examples_ybr_color.dcm", "examples_palette.dcm"],
)
def test_decoded_frames_are_kept_by_frame_key_and_reduction(name):
    stored = Stored(bundled(name))
    columns, rows = stored.attributes["Columns"], stored.attributes["Rows"]

    def picture(blob: bytes, **parameters) -> np.ndarray:
        request = RenderRequest(render.PNG, **parameters)
        return np.asarray(
            render.render_picture(
                0, blob, stored.transfer_syntax_uid, stored.attributes, stored.vrs, request, name
            )
        )

    first = picture(stored.blobs[0])
    np.testing.assert_array_equal(first, decoded(stored.render()))
    # Kept read-only and rendered again (another window) without the stored bytes.
    np.testing.assert_array_equal(picture(b"not a frame"), first)
    if first.ndim == 2:
        again = picture(b"not a frame", window=Window(100, 50))
        np.testing.assert_array_equal(again, decoded(stored.render(window=Window(100, 50))))
    if stored.transfer_syntax_uid in ts.HTJ2K_FAMILY:
        with pytest.raises(render.DecodeError):  # a reduced decode is another entry
            picture(b"not a frame", viewport=Viewport(max(1, columns // 3), max(1, rows // 3)))


# --- colour -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["SC_rgb_small_odd.dcm", "examples_rgb_color.dcm", "SC_rgb_rle_16bit.dcm", "SC_rgb_rle.dcm"],
)
def test_rgb(name):
    ds = bundled(name)
    reference = source_pixels(ds) * (255 / (2**ds.BitsStored - 1))
    assert_same(decoded(Stored(ds).render()), reference)


@pytest.mark.parametrize(
    "name",
    ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm", "examples_ybr_color.dcm"],
)
@pytest.mark.parametrize("keep_original", [False, True], ids=["htj2k", "original"])
def test_ybr_is_converted_to_rgb(name, keep_original):
    ds = bundled(name)
    raw = source_pixels(ds, raw=True)
    # pydicom returns YBR_FULL_422 sources upsampled, which is YBR_FULL.
    reference = convert_color_space(raw, "YBR_FULL", "RGB")
    rendered = decoded(Stored(ds, keep_original=keep_original).render())
    difference = np.abs(rendered.astype(int) - reference.astype(int))
    assert difference.max() <= 1  # JPEG decoders may round chroma upsampling differently


def test_palette_color():
    ds = bundled("examples_palette.dcm")
    rgb = apply_color_lut(source_pixels(ds), ds)
    reference = rgb * (255 / (2 ** ds.RedPaletteColorLookupTableDescriptor[2] - 1))
    assert_same(decoded(Stored(ds).render()), reference)
    assert_close_jpeg(Stored(ds).render(render.JPEG), reference)


# --- frames, viewport, media types -----------------------------------------------------------


def test_gif_animates_the_requested_frames():
    ds = bundled("examples_ybr_color.dcm")
    stored = Stored(ds)
    encoded = stored.render(render.GIF, frames=range(5))
    with Image.open(io.BytesIO(encoded)) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
        gif.seek(3)
        frame = np.asarray(gif.convert("RGB")).astype(float)
    reference = convert_color_space(source_pixels(ds, 3, raw=True), "YBR_FULL", "RGB")
    assert np.abs(frame - reference).mean() < 6  # GIF keeps 256 colours per frame


def test_jpeg_quality_trades_size_for_fidelity():
    stored = Stored(bundled("MR_small.dcm"))
    low, high = stored.render(render.JPEG, quality=10), stored.render(render.JPEG, quality=95)
    assert len(low) < len(high)
    assert Image.open(io.BytesIO(low)).format == "JPEG"


def test_viewport_keeps_the_aspect_ratio():
    image = np.zeros((100, 200), np.uint8)
    assert render.fit_viewport(image, Viewport(50, 50)).size == (50, 25)
    assert render.fit_viewport(image, Viewport(400, 400)).size == (400, 200)
    assert render.fit_viewport(image, Viewport(64, 64, 50, 0, 100, 100)).size == (64, 64)


def test_viewport_crops_and_flips_the_source_region():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4) * 10
    region = Viewport(2, 2, 1, 1, 2, 2)
    assert np.asarray(render.fit_viewport(image, region)).tolist() == [[50, 60], [90, 100]]
    flipped = Viewport(2, 2, 1, 1, -2, -2)
    assert np.asarray(render.fit_viewport(image, flipped)).tolist() == [[100, 90], [60, 50]]
    clipped = Viewport(3, 3, 2, 0)  # sw, sh default to the rest of the image
    assert np.asarray(render.fit_viewport(image, clipped)).shape == (3, 2)


@pytest.mark.parametrize(
    "viewport",
    [lambda: Viewport(0, 10), lambda: Viewport(10, 10, -1, 0), lambda: Viewport(10, 10, 0, 0, 0)],
)
def test_bad_viewports_are_refused(viewport):
    with pytest.raises(RenderError):
        viewport()


def test_source_region_outside_the_image_is_refused():
    with pytest.raises(RenderError):
        render.fit_viewport(np.zeros((10, 10), np.uint8), Viewport(5, 5, 10, 0))


@pytest.fixture(scope="module")
def ct_512(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    [path] = generate_ct_series(tmp_path_factory.mktemp("ct"), n_studies=1, slices=1, size=512)
    return read(path)


def test_htj2k_frames_decode_only_the_resolution_the_viewport_needs(ct_512):
    stored = Stored(ct_512)
    blob = stored.blobs[0]
    assert render.htj2k_levels(blob) == 5
    assert render.reduction_for(Viewport(128, 128), 512, 512) == 4
    assert render.reduction_for(Viewport(100, 100), 512, 512) == 4
    assert render.reduction_for(Viewport(128, 128, 0, 0, 256, 256), 512, 512) == 2
    assert render.reduction_for(Viewport(600, 600), 512, 512) == 1
    array = render.decode_reduced(blob, stored.transfer_syntax_uid, stored.attributes, 4)
    assert array.shape == (128, 128)
    # The wavelet low-pass keeps more noise than a box filter: close, not equal.
    small = decoded(stored.render(viewport=Viewport(128, 128)))
    assert small.shape == (128, 128)
    assert np.abs(small - scaled_reference(ct_512, (128, 128))).mean() < 8


def scaled_reference(ds: Dataset, size: tuple[int, int], box=None) -> np.ndarray:
    full = Image.fromarray(reference_grey(ds).astype(np.float32), mode="F")
    return np.asarray(full.resize(size, Image.Resampling.BOX, box=box))


def test_a_region_of_a_reduced_decode_lands_where_the_full_one_does(ct_512):
    stored = Stored(ct_512)
    viewport = Viewport(64, 64, 256, 128, 256, 256)
    small = decoded(stored.render(viewport=viewport))

    def error(dx: int, dy: int) -> float:
        box = (256 + dx, 128 + dy, 512 + dx, 384 + dy)
        return float(np.abs(small - scaled_reference(ct_512, (64, 64), box)).mean())

    assert error(0, 0) < 10
    assert error(0, 0) < min(error(-4, 0), error(0, -4), error(0, 4))


def test_other_syntaxes_decode_in_full_then_scale():
    ds = bundled("examples_ybr_color.dcm")
    stored = Stored(ds, keep_original=True)
    assert stored.transfer_syntax_uid == pydicom.uid.JPEGBaseline8Bit
    small = decoded(stored.render(viewport=Viewport(100, 100)))
    assert small.shape == (75, 100, 3)  # 320x240 fitted into 100x100


def test_htj2k_levels_of_something_else_is_zero():
    assert render.htj2k_levels(b"\xff\x4f\xff\x90\x00\x0a") == 0
    assert render.htj2k_levels(b"") == 0


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"FrameTime": "33.3"}, 33),
        ({"CineRate": "25"}, 40),
        ({"CineRate": "0"}, render.DEFAULT_FRAME_MS),
        ({}, render.DEFAULT_FRAME_MS),
    ],
)
def test_frame_duration(attributes, expected):
    assert render.frame_duration_ms(attributes) == expected


# --- bounds and decode failures -----------------------------------------------------------------


def test_output_is_bounded_before_anything_is_decoded():
    """6 frames at viewport 8192,8192 took 18.8 s and 2 GB; every frame of a long cine as GIF
    was unbounded too."""
    side = 8192
    biggest = RenderRequest(render.JPEG, viewport=Viewport(side, side))
    render.check_output(1, 512, 512, biggest)  # one frame at the largest viewport is fine
    render.check_output(1, 512, 512, RenderRequest(render.GIF, viewport=Viewport(side, side)))
    with pytest.raises(RenderError, match=r"^frames: 6 frames of 8192x8192"):
        render.check_output(6, 512, 512, RenderRequest(render.GIF, viewport=Viewport(side, side)))
    with pytest.raises(RenderError, match=r"^viewport: .* 9000x9000"):
        render.check_output(1, 9000, 9000, RenderRequest(render.PNG))  # no viewport: full size
    render.check_output(256, 64, 64, RenderRequest(render.GIF))
    with pytest.raises(RenderError, match=r"^frames: 257 frames .* 256"):
        render.check_output(257, 64, 64, RenderRequest(render.GIF))
    # Checked before decoding: undecodable frames are not even looked at.
    attributes = {"Columns": 64, "Rows": 64, "PhotometricInterpretation": "MONOCHROME2"}
    with pytest.raises(RenderError, match=r"^frames:"):
        render.render(
            [(i, b"junk") for i in range(300)],
            "1.2.840.10008.1.2.4.202",
            attributes,
            {},
            RenderRequest(render.GIF),
        )


def test_gif_frames_are_kept_as_one_byte_pictures_and_encode_as_before():
    ds = bundled("examples_ybr_color.dcm")
    stored = Stored(ds)
    request = RenderRequest(render.GIF)
    pictures = [
        render.render_picture(
            i, stored.blobs[i], stored.transfer_syntax_uid, stored.attributes, stored.vrs, request
        )
        for i in range(3)
    ]
    assert {picture.mode for picture in pictures} == {"P"}
    # What holding every RGB picture and letting Pillow convert them gave: the same bytes.
    rgb = [
        render.render_picture(
            i,
            stored.blobs[i],
            stored.transfer_syntax_uid,
            stored.attributes,
            stored.vrs,
            RenderRequest(render.PNG),
        )
        for i in range(3)
    ]
    assert {picture.mode for picture in rgb} == {"RGB"}
    frame_ms = render.frame_duration_ms(stored.attributes)
    assert stored.render(render.GIF, frames=range(3)) == render.encode(
        rgb, render.GIF, frame_ms=frame_ms
    )
    grey = Stored(bundled("MR_small.dcm"))
    picture = render.render_picture(
        0, grey.blobs[0], grey.transfer_syntax_uid, grey.attributes, grey.vrs, request
    )
    assert picture.mode == "L"


def test_large_gif_frames_take_their_palette_from_a_reduced_copy():
    y, x = np.mgrid[0:1536, 0:2048]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    picture = Image.fromarray(rgb)
    assert picture.width * picture.height > render.PALETTE_SAMPLE_PIXELS
    paletted = render.gif_picture(picture)
    assert paletted.mode == "P" and paletted.size == picture.size
    back = np.asarray(paletted.convert("RGB")).astype(float)
    assert np.abs(back - rgb).mean() < 12  # 256 colours for a 3-D gradient
    small = picture.resize((512, 384))
    assert (
        render.gif_picture(small).tobytes()
        == small.convert("P", palette=Image.Palette.ADAPTIVE).tobytes()
    )
    grey = Image.fromarray(rgb[..., 0])
    assert render.gif_picture(grey) is grey


def test_undecodable_frames_raise_decode_error_naming_the_syntax(ct_512):
    stored = Stored(ct_512)
    # Not a codestream; the main header of one cut short.
    for blob in (b"\x00" * 64, stored.blobs[0][:40]):
        with pytest.raises(render.DecodeError, match=r"High-Throughput JPEG 2000.*4\.202"):
            stored.blobs = [blob]
            stored.render()
    # pydicom's 12-bit JPEG Extended file: no installed plugin decodes it (unless GDCM is).
    ds = bundled("JPEG-lossy.dcm")
    extended = Stored(ds, keep_original=True)
    assert extended.transfer_syntax_uid == pydicom.uid.JPEGExtended12Bit
    try:
        source_pixels(ds)
    except Exception:
        with pytest.raises(render.DecodeError, match=r"^cannot decode .*JPEG Extended"):
            extended.render()
    else:
        extended.render()
