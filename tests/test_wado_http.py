"""WADO-RS over HTTP against the real server, on the imported samples (generated + pydicom's).

Lossless paths are checked bit for bit against pydicom's decoding of the source files.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.pixels.utils import pack_bits

from dicomweb_proxy.dicom import transfer_syntax as ts
from dicomweb_proxy.dicom.part10 import IMPLEMENTATION_CLASS_UID
from dicomweb_proxy.ingest.importer import image_set_id_for
from dicomweb_proxy.stores.local import LocalStore

from .sample_data import ImportedSamples, url
from .test_ahi_json import assert_same_elements
from .test_frames import source_frames

pytestmark = pytest.mark.parametrize("imported_samples", ["sqlite", "ahi"], indirect=True)

OCTET = "application/octet-stream"
OHIF_QUOTED = f'multipart/related; type="{OCTET}"; transfer-syntax="*"'
OHIF_UNQUOTED = f"multipart/related; type={OCTET}; transfer-syntax=*"
EXPLICIT = ((OCTET, ts.EXPLICIT_VR_LE),)
DICOM_LE = (("application/dicom", ts.EXPLICIT_VR_LE),)
#: Source encodings whose decoding pydicom and the server may do differently (lossy codecs).
LOSSY = frozenset({ts.JPEG_BASELINE, ts.JPEG_EXTENDED, ts.JPEG_2000, ts.JPEG_LS_NEAR_LOSSLESS})
#: Attributes the importer rewrites to describe the decoded frames (PS3.5 8.2).
REWRITTEN = ("PhotometricInterpretation", "PlanarConfiguration")


@dataclass
class Server:
    base: str
    http: httpx.Client
    client: DICOMwebClient
    store: LocalStore
    sources: dict[str, Dataset]  # SOP Instance UID -> the only source file holding it

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(f"{self.base}{path}", **kwargs)

    def find(self, modality: str, **attributes) -> Dataset:
        for ds in self.sources.values():
            if ds.Modality == modality and all(ds.get(k) == v for k, v in attributes.items()):
                return ds
        raise LookupError(modality)

    def stored_frame(self, ds: Dataset, number: int) -> bytes:
        image_set_id = image_set_id_for(ds.StudyInstanceUID, ds.SeriesInstanceUID)
        metadata = self.store.get_image_set_metadata(image_set_id)
        series = metadata["Study"]["Series"][ds.SeriesInstanceUID]
        frame = series["Instances"][ds.SOPInstanceUID]["ImageFrames"][number - 1]
        return self.store.get_image_frame(image_set_id, frame["ID"])


@pytest.fixture(scope="module")
def server(imported_samples: ImportedSamples, samples_server: str) -> Iterator[Server]:
    holders: dict[str, list[Dataset]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in imported_samples.files:
            ds = pydicom.dcmread(path)
            holders.setdefault(str(ds.SOPInstanceUID), []).append(ds)
    sources = {uid: files[0] for uid, files in holders.items() if len(files) == 1}
    store = LocalStore(imported_samples.data_dir / "store", imported_samples.datastore_id)
    with httpx.Client(timeout=60) as http:
        yield Server(samples_server, http, DICOMwebClient(samples_server), store, sources)


def with_pixels(server: Server) -> list[tuple[Dataset, list[np.ndarray]]]:
    found = []
    for ds in server.sources.values():
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = source_frames(ds)
        if expected is not None:
            found.append((ds, expected))
    return found


def as_frame(data: bytes, reference: np.ndarray, ds: Dataset) -> np.ndarray | bytes:
    """Interpret native frame bytes like *reference* (1-bit frames: compare packed bits)."""
    if ds.get("BitsAllocated") == 1:
        return data
    return np.frombuffer(data, reference.dtype.newbyteorder("<")).reshape(reference.shape)


def assert_frame(data: bytes, reference: np.ndarray, ds: Dataset, where: str) -> None:
    if ds.get("BitsAllocated") == 1:
        assert data == pack_bits(reference), where
    else:
        np.testing.assert_array_equal(as_frame(data, reference, ds), reference, err_msg=where)


# --- lossless paths, every instance -------------------------------------------------------------


def test_frames_as_explicit_vr_little_endian_equal_pydicom_decoding(server):
    checked = 0
    for ds, expected in with_pixels(server):
        numbers = list(range(1, len(expected) + 1))
        frames = server.client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, numbers, EXPLICIT
        )
        assert len(frames) == len(expected), ds.filename
        for number, (data, reference) in enumerate(zip(frames, expected, strict=True), 1):
            assert_frame(data, reference, ds, f"{Path(ds.filename).name} frame {number}")
        checked += 1
    assert checked > 60


def test_retrieved_instances_carry_every_source_attribute_and_the_pixels(server):
    for ds, expected in with_pixels(server):
        name = Path(ds.filename).name
        copy = server.client.retrieve_instance(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=DICOM_LE
        )
        assert copy.file_meta.TransferSyntaxUID == ts.EXPLICIT_VR_LE
        assert copy.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert copy.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_same_elements(without_rewritten(ds), without_rewritten(copy), name)
            if ds.get("BitsAllocated") == 1:
                continue
            decoded = source_frames(copy)
        assert decoded is not None, name
        for number, (frame, reference) in enumerate(zip(decoded, expected, strict=True), 1):
            np.testing.assert_array_equal(frame, reference, err_msg=f"{name} frame {number}")


def without_rewritten(ds: Dataset) -> Dataset:
    trimmed = Dataset()
    for element in ds:
        if element.keyword not in REWRITTEN:
            trimmed.add(element)
    return trimmed


# --- transfer syntaxes --------------------------------------------------------------------------


def test_ohif_accept_gets_the_stored_htj2k_bytes(server):
    ct = server.find("CT", Rows=256)
    for accept in (OHIF_QUOTED, OHIF_UNQUOTED):
        response = server.get(f"{url(ct)}/frames/1", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(f'multipart/related; type="{OCTET}"')
        (part,) = _parts(response)
        assert part[0] == f"{OCTET}; transfer-syntax={ts.HTJ2K_LOSSLESS_RPCL}"
        assert part[1] == server.stored_frame(ct, 1)


@pytest.mark.parametrize(
    ("media_type", "syntax"),
    [
        ("image/jp2", ts.JPEG_2000_LOSSLESS),
        ("image/jphc", ts.HTJ2K_LOSSLESS),
        ("image/jphc", ts.HTJ2K_LOSSLESS_RPCL),
        (OCTET, ts.EXPLICIT_VR_LE),
    ],
)
def test_frames_in_lossless_syntaxes_decode_exactly(server, media_type, syntax):
    ct = server.find("CT", Rows=256)
    expected = source_frames(ct)[0]
    accept = f'multipart/related; type="{media_type}"; transfer-syntax={syntax}'
    ((content_type, frame),) = _parts(server.get(f"{url(ct)}/frames/1", headers={"Accept": accept}))
    assert content_type == f"{media_type}; transfer-syntax={syntax}"
    if syntax == ts.EXPLICIT_VR_LE:
        decoded = as_frame(frame, expected, ct)
    else:
        import imagecodecs

        decoded = imagecodecs.imread(bytes(frame))
    np.testing.assert_array_equal(decoded, expected)


def test_instances_in_several_syntaxes(server):
    ct = server.find("CT", Rows=256)
    expected = source_frames(ct)[0]
    for syntax in (ts.JPEG_2000_LOSSLESS, ts.HTJ2K_LOSSLESS_RPCL, ts.HTJ2K_LOSSLESS):
        accept = f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'
        ((content_type, payload),) = _parts(server.get(url(ct), headers={"Accept": accept}))
        assert content_type == f"application/dicom; transfer-syntax={syntax}"
        copy = pydicom.dcmread(io.BytesIO(payload))
        assert copy.file_meta.TransferSyntaxUID == syntax
        np.testing.assert_array_equal(copy.pixel_array, expected)


def test_any_syntax_keeps_what_is_stored_and_jpeg_baseline_only_when_named(server):
    cine = server.find("US", PhotometricInterpretation="RGB")
    copy = server.client.retrieve_instance(
        cine.StudyInstanceUID,
        cine.SeriesInstanceUID,
        cine.SOPInstanceUID,
        media_types=(("application/dicom", "*"),),
    )
    assert copy.file_meta.TransferSyntaxUID == ts.HTJ2K_LOSSLESS_RPCL
    np.testing.assert_array_equal(copy.pixel_array, cine.pixel_array)
    lossy = server.client.retrieve_instance(
        cine.StudyInstanceUID,
        cine.SeriesInstanceUID,
        cine.SOPInstanceUID,
        media_types=(("application/dicom", ts.JPEG_BASELINE),),
    )
    assert lossy.file_meta.TransferSyntaxUID == ts.JPEG_BASELINE
    assert lossy.PhotometricInterpretation == "YBR_FULL_422"
    assert lossy.LossyImageCompression == "01"
    assert np.abs(lossy.pixel_array.astype(int) - cine.pixel_array).mean() < 8
    ct = server.find("CT", Rows=256)  # 16 bits: no JPEG baseline
    response = server.get(f"{url(ct)}/frames/1", headers={"Accept": "image/jpeg"})
    assert response.status_code == 406
    assert ts.JPEG_2000_LOSSLESS in response.text


def test_single_part_frame_with_alias_and_query_accept(server):
    ct = server.find("CT", Rows=256)
    response = server.get(f"{url(ct)}/frames/1", params={"accept": "image/jhc"})
    assert response.status_code == 200
    assert (
        response.headers["content-type"] == f"image/jphc; transfer-syntax={ts.HTJ2K_LOSSLESS_RPCL}"
    )
    assert response.content == server.stored_frame(ct, 1)
    native = server.get(f"{url(ct)}/frames/1", headers={"Accept": OCTET})
    assert native.headers["content-type"] == f"{OCTET}; transfer-syntax={ts.EXPLICIT_VR_LE}"
    assert_frame(native.content, source_frames(ct)[0], ct, "single part")


def test_several_frames_come_in_the_order_asked(server):
    cine = server.find("US", PhotometricInterpretation="RGB")
    response = server.get(f"{url(cine)}/frames/3,1,2", headers={"Accept": OHIF_QUOTED})
    payloads = [payload for _, payload in _parts(response)]
    assert payloads == [server.stored_frame(cine, n) for n in (3, 1, 2)]


# --- series, studies, metadata, bulk data -------------------------------------------------------


def test_series_and_study_retrieve_stream_every_instance(server):
    ct = server.find("CT", Rows=256)
    series = server.client.retrieve_series(ct.StudyInstanceUID, ct.SeriesInstanceUID, DICOM_LE)
    members = [ds for ds in server.sources.values() if ds.SeriesInstanceUID == ct.SeriesInstanceUID]
    assert [int(ds.InstanceNumber) for ds in series] == sorted(
        int(m.InstanceNumber) for m in members
    )
    us = server.find("US", PhotometricInterpretation="RGB")
    study = server.client.retrieve_study(us.StudyInstanceUID, DICOM_LE)
    assert {ds.Modality for ds in study} == {"US", "SR"}
    assert all(ds.file_meta.TransferSyntaxUID == ts.EXPLICIT_VR_LE for ds in study)
    for ds in study:
        if "PixelData" in ds:
            assert ds.pixel_array.shape[0] == ds.NumberOfFrames


def test_metadata_levels_transfer_syntax_and_pixel_bulk_data(server):
    mr = server.find("MR", Modality="MR", SeriesNumber=3)
    study = server.client.retrieve_study_metadata(mr.StudyInstanceUID)
    series = server.client.retrieve_series_metadata(mr.StudyInstanceUID, mr.SeriesInstanceUID)
    assert len(study) > len(series) > 1
    # dicomweb-client sends "Host" without the port, so absolute URIs are checked with httpx.
    instance = server.get(f"{url(mr)}/metadata").json()[0]
    assert instance in series or instance["00080018"] in [one["00080018"] for one in series]
    assert instance["00020010"]["Value"] == [ts.HTJ2K_LOSSLESS_RPCL]
    assert instance["00083002"]["Value"] == [ts.HTJ2K_LOSSLESS_RPCL]
    assert not any(tag.startswith("0002") and tag != "00020010" for tag in instance)
    assert instance["00100010"]["Value"] == [{"Alphabetic": str(mr.PatientName)}]
    pixel_uri = instance["7FE00010"]["BulkDataURI"]
    assert pixel_uri.startswith(server.base) and pixel_uri.endswith("/bulk/7FE00010")
    (frame,) = server.client.retrieve_bulkdata(pixel_uri, media_types=EXPLICIT)
    assert_frame(frame, source_frames(mr)[0], mr, "pixel bulk data")


def test_large_binary_values_are_bulk_data_uris(server):
    uris = 0
    for ds in server.sources.values():
        (instance,) = server.get(f"{url(ds)}/metadata").json()
        for tag, element in instance.items():
            uri = element.get("BulkDataURI")
            if uri is None or tag.startswith("7FE0"):
                continue
            (value,) = server.client.retrieve_bulkdata(uri)
            source = ds[int(tag, 16)].value
            assert len(source) > 1024
            if ds.file_meta.TransferSyntaxUID != ts.EXPLICIT_VR_BE:
                assert value == source, f"{Path(ds.filename).name} {tag}"
            uris += 1
    assert uris > 0


def test_metadata_etag_gzip_and_not_modified(server):
    ct = server.find("CT", Rows=256)
    path = f"{url(ct, 'series')}/metadata"
    plain = server.get(path, headers={"Accept-Encoding": "identity"})
    zipped = server.get(path, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == plain.json()
    assert zipped.num_bytes_downloaded < len(plain.content) / 3
    assert plain.headers["etag"] != zipped.headers["etag"]
    again = server.get(
        path,
        headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["etag"]},
    )
    assert again.status_code == 304 and again.headers["etag"] == plain.headers["etag"]
    assert server.get(path, headers={"Accept": "application/dicom"}).status_code == 406


def test_frames_are_immutable_with_etag(server):
    ct = server.find("CT", Rows=256)
    response = server.get(f"{url(ct)}/frames/1", params={"accept": "image/jphc"})
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = server.get(
        f"{url(ct)}/frames/1",
        params={"accept": "image/jphc"},
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304


# --- byte ranges and errors ---------------------------------------------------------------------


def test_byte_ranges_on_a_frame_like_cornerstone(server):
    ct = server.find("CT", Rows=256)
    stored = server.stored_frame(ct, 1)
    path = f"{url(ct)}/frames/1"
    first = server.get(path, params={"accept": "image/jhc"}, headers={"Range": "bytes=0-4000"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-4000/{len(stored)}"
    assert first.headers["content-type"] == f"image/jphc; transfer-syntax={ts.HTJ2K_LOSSLESS_RPCL}"
    rest = server.get(
        path, params={"accept": "image/jhc"}, headers={"Range": f"bytes=4001-{len(stored) + 99}"}
    )
    assert rest.status_code == 206
    assert first.content + rest.content == stored
    beyond = server.get(
        path, params={"accept": "image/jhc"}, headers={"Range": f"bytes={len(stored)}-"}
    )
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(stored)}"


def test_unknown_uids_malformed_lists_and_missing_frames(server):
    ct = server.find("CT", Rows=256)
    other = server.find("MR")
    assert server.get("/studies/1.2.3/metadata").status_code == 404
    assert server.get(f"/studies/{ct.StudyInstanceUID}/series/1.2.3").status_code == 404
    wrong_series = (
        f"/studies/{ct.StudyInstanceUID}/series/{other.SeriesInstanceUID}"
        f"/instances/{ct.SOPInstanceUID}/frames/1"
    )
    response = server.get(wrong_series)
    assert response.status_code == 404 and "Traceback" not in response.text
    for bad in ("0", "1,x", "", "1,,2", "-1"):
        assert server.get(f"{url(ct)}/frames/{bad}").status_code in (400, 404), bad
    assert server.get(f"{url(ct)}/frames/1,x").status_code == 400
    response = server.get(f"{url(ct)}/frames/2")
    assert response.status_code == 404 and "has 1" in response.text
    response = server.get(f"{url(ct)}/frames/1", headers={"Accept": "image/png"})
    assert response.status_code == 406 and "image/jphc" in response.text
    assert server.get(f"{url(ct)}/bulk/00091001").status_code == 404


# --- hostile and malformed input: a 4xx naming the problem, never a 500 --------------------------


@pytest.mark.parametrize("how", ["header", "query"])
def test_empty_accept_elements_on_every_route(server, how):
    """``Accept: ;`` was a 500 everywhere (an empty element unpacked)."""
    ct = server.find("CT", Rows=256)
    paths = [
        "/studies",
        f"{url(ct, 'series')}/metadata",
        f"{url(ct)}/rendered",
        "/capabilities",
        f"{url(ct)}/frames/1",
    ]
    for accept in (";", ";, ;;", ";, image/png"):
        for path in paths:
            if how == "header":
                response = server.get(path, headers={"Accept": accept})
            else:
                response = server.get(path, params={"accept": accept})
            if "image/png" in accept and not path.endswith("/rendered"):
                assert response.status_code in (200, 406), (accept, path)
            else:
                assert response.status_code == 200, (accept, path, response.text)


@pytest.mark.parametrize(
    ("frames", "named"),
    [
        ("1_0", "'1_0'"),
        ("+1", "'+1'"),
        ("%201", "' 1'"),
        ("%D9%A1", "'\u0661'"),  # ARABIC-INDIC DIGIT ONE: int() reads it
        ("1,,2", "''"),
        ("0", "'0'"),
        ("1,x", "'x'"),
        ("9" * 5000, "'99999999999999999999...'"),
    ],
)
def test_frame_list_items_must_be_decimal_numbers(server, frames, named):
    ct = server.find("CT", Rows=256)
    for suffix in ("", "/rendered"):
        response = server.get(f"{url(ct)}/frames/{frames}{suffix}")
        assert response.status_code == 400, (frames, suffix)
        assert response.text.startswith(f"frames: {named} is not a frame number"), response.text


def test_frame_lists_are_no_longer_than_the_instance(server):
    """A 40 KB list of 1,1,1... returned 2.6 GB."""
    cine = server.find("US", PhotometricInterpretation="RGB")
    count = int(cine.NumberOfFrames)
    repeated = ",".join(["1"] * (count + 1))
    for suffix in ("", "/rendered"):
        response = server.get(f"{url(cine)}/frames/{repeated}{suffix}")
        assert response.status_code == 400
        assert f"more than the {count} of instance" in response.text
    huge = server.get(f"{url(cine)}/frames/{','.join(['1'] * 20_000)}", headers={"Accept": OCTET})
    assert huge.status_code in (400, 414) and len(huge.content) < 1000
    everything = ",".join(["1"] * count)  # as many as the instance has: allowed
    response = server.get(f"{url(cine)}/frames/{everything}", headers={"Accept": OHIF_QUOTED})
    assert len(_parts(response)) == count


def test_byte_range_positions_of_any_length(server):
    """``bytes=<5000 digits>-`` was a 500 (int() refuses more than 4300 digits)."""
    ct = server.find("CT", Rows=256)
    stored = server.stored_frame(ct, 1)
    path, accept = f"{url(ct)}/frames/1", {"accept": "image/jhc"}
    digits = "9" * 5000
    past = server.get(path, params=accept, headers={"Range": f"bytes={digits}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(stored)}"
    whole = server.get(path, params=accept, headers={"Range": f"bytes=0-{digits}"})
    assert whole.status_code == 206 and whole.content == stored
    for malformed in ("bytes=1_0-", "bytes=\u0661-".encode(), "bytes=x-"):
        response = server.get(path, params=accept, headers={"Range": malformed})
        assert response.status_code == 200 and response.content == stored, malformed


def test_multi_frame_pixel_bulk_data_as_single_part_octet_stream(server):
    """PS3.18 allows single-part application/octet-stream for bulk data: it was a 406."""
    cine = server.find("US", PhotometricInterpretation="RGB")
    path = f"{url(cine)}/bulk/7FE00010"
    single = server.get(path, headers={"Accept": OCTET})
    assert single.status_code == 200, single.text
    assert single.headers["content-type"] == f"{OCTET}; transfer-syntax={ts.EXPLICIT_VR_LE}"
    expected = source_frames(cine)
    assert len(single.content) == sum(frame.nbytes for frame in expected)
    assert int(single.headers["content-length"]) == len(single.content)
    assert single.content == b"".join(
        frame.astype(frame.dtype.newbyteorder("<")).tobytes() for frame in expected
    )
    parts = _parts(server.get(path, headers={"Accept": f'multipart/related; type="{OCTET}"'}))
    assert b"".join(payload for _, payload in parts) == single.content
    default = server.get(path)  # */*: multipart, as before
    assert default.headers["content-type"].startswith("multipart/related")
    again = server.get(path, headers={"Accept": OCTET, "If-None-Match": single.headers["etag"]})
    assert again.status_code == 304
    # Several frames on the frames route stay multipart.
    assert server.get(f"{url(cine)}/frames/1,2", headers={"Accept": OCTET}).status_code == 406


def _jpeg_extended(imported_samples: ImportedSamples) -> Dataset:
    """pydicom's 12-bit JPEG Extended file, stored as it is (lossy)."""
    for path in imported_samples.files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        if ds.file_meta.get("TransferSyntaxUID") == ts.JPEG_EXTENDED:
            return ds
    raise LookupError("JPEG Extended sample")


def test_frames_no_codec_decodes_are_406_not_500(server, imported_samples):
    ds = _jpeg_extended(imported_samples)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.pixel_array  # noqa: B018
    except Exception:
        pass
    else:
        pytest.skip("an installed plugin decodes 12-bit JPEG Extended")
    stored = server.get(f"{url(ds)}/frames/1", params={"accept": "image/jpeg"})
    assert stored.status_code == 200  # the stored bytes need no decoding
    assert stored.headers["content-type"] == f"image/jpeg; transfer-syntax={ts.JPEG_EXTENDED}"
    for path, accept in [
        (f"{url(ds)}/frames/1", OCTET),
        (f"{url(ds)}/frames/1", OHIF_QUOTED.replace('"*"', ts.EXPLICIT_VR_LE)),
        (url(ds), "*/*"),  # Part 10 in Explicit VR LE: answered before the stream starts
        (f"{url(ds)}/bulk/7FE00010", OCTET),
        (f"{url(ds)}/rendered", "*/*"),
        (f"{url(ds)}/thumbnail", "*/*"),
    ]:
        response = server.get(path, headers={"Accept": accept})
        assert response.status_code == 406, (path, response.status_code)
        assert "cannot decode the stored frame (JPEG Extended" in response.text, path
        assert ts.JPEG_EXTENDED in response.text and "transfer-syntax=*" in response.text


def _parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, payload) of each part of a multipart/related response."""
    assert response.status_code == 200, response.text
    boundary = response.headers["content-type"].split("boundary=")[1].strip('"').encode()
    body = response.content
    assert body.startswith(b"--" + boundary + b"\r\n") and body.endswith(b"--\r\n")
    parts = []
    for chunk in body.removeprefix(b"--" + boundary).split(b"\r\n--" + boundary)[:-1]:
        head, _, payload = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        assert head.startswith(b"Content-Type: ")
        parts.append((head.decode().removeprefix("Content-Type: "), payload))
    return parts
