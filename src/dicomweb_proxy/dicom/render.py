"""Render stored frames for display: WADO-RS Retrieve Rendered and Thumbnail (PS3.18 8.3.5).

The pipeline of PS3.4 N.2 as small functions on numpy arrays: Modality LUT, VOI LUT or window,
MONOCHROME1 inversion, palette and YBR to RGB; pydicom's LUT helpers do the table look-ups. Grey
frames of up to 16 bits go through a table of every stored value's display value, built by the
same functions (:func:`grey_to_uint8`). Then the viewport (crop, flip, scale keeping the aspect
ratio) and the rendered media types. HTJ2K frames are decoded only at the resolution level the
viewport needs. Each worker process keeps decoded frames, grey tables and pipeline datasets
(byte- or count-bounded LRUs), so a frame rendered again is not decoded again and the slices
of a series share their tables. No HTTP here: a request this image cannot satisfy raises
:class:`RenderError`, a stored frame no installed codec can decode :class:`DecodeError`.

Work is bounded before anything is decoded (:func:`check_output`): at most
:data:`MAX_RENDERED_PIXELS` output pixels over all frames of a response and at most
:data:`MAX_ANIMATION_FRAMES` frames in an animated GIF. Frames are rendered one at a time
(:func:`render_picture`); a GIF keeps each as a 1-byte-per-pixel palette or grey picture, never
the decoded arrays of every frame.
"""

from __future__ import annotations

import io
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, convert_color_space
from pydicom.uid import UID, ExplicitVRLittleEndian

from ..cache import SizedLRU
from . import transfer_syntax as ts
from .ahi_json import attributes_to_dataset
from .frames import decode_frame

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
#: Media types a rendered image can take, the default first.
RENDERED_MEDIA_TYPES = (JPEG, PNG, GIF)
DEFAULT_QUALITY = 90
#: GIF frame duration when the instance gives no Frame Time or Cine Rate.
DEFAULT_FRAME_MS = 100
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
#: Most output pixels one rendered response may hold over all its frames: one frame at the
#: largest viewport (8192 x 8192, 64 Mi pixels). About 200 MB of RGB while one frame is resized.
MAX_RENDERED_PIXELS = 8192 * 8192
#: Most frames an animated GIF may hold.
MAX_ANIMATION_FRAMES = 256
#: Larger GIF frames take their palette from a reduced copy (see gif_picture).
PALETTE_SAMPLE_PIXELS = 1024 * 1024

#: Attributes the pipeline reads; anything else in an instance is never converted.
_PIPELINE_KEYWORDS = (
    "PhotometricInterpretation",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    *(
        f"{colour}PaletteColorLookupTable{part}"
        for colour in ("Red", "Green", "Blue", "Alpha")
        for part in ("Descriptor", "Data")
    ),
    *(f"Segmented{colour}PaletteColorLookupTableData" for colour in ("Red", "Green", "Blue")),
)
#: Functional group macros of enhanced objects that override the pipeline attributes per frame.
_FRAME_MACROS = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction"),
}
_COD_MARKER = 0xFF52
_SOT_MARKER = 0xFF90


class RenderError(ValueError):
    """A rendering parameter this image cannot satisfy; the message starts with its name."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class DecodeError(Exception):
    """A stored frame that no installed codec can decode: a transfer syntax or variant the
    codecs lack (pydicom's 12-bit JPEG Extended without GDCM) or damaged data."""

    def __init__(self, transfer_syntax_uid: str, reason: BaseException | str) -> None:
        name = UID(transfer_syntax_uid).name if transfer_syntax_uid else "unknown"
        text = " ".join(str(reason).split())  # one line: codecs give several
        detail = (text if len(text) <= 300 else text[:300] + "...") or type(reason).__name__
        super().__init__(
            f"cannot decode the stored frame ({name}, {transfer_syntax_uid}): {detail}"
        )
        self.transfer_syntax_uid = transfer_syntax_uid
        self.syntax_name = name
        self.reason = str(reason)


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2) applied to Modality LUT output."""

    center: float
    width: float
    function: str = "LINEAR"

    def __post_init__(self) -> None:
        if self.function not in VOI_FUNCTIONS:
            raise RenderError("window", f"function {self.function!r} is not one of {VOI_FUNCTIONS}")
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise RenderError("window", "center and width must be finite numbers")
        if self.width < 1 if self.function == "LINEAR" else self.width <= 0:
            raise RenderError("window", f"width {self.width:g} is too small for {self.function}")


@dataclass(frozen=True)
class Viewport:
    """``vw,vh[,sx,sy,sw,sh]`` (PS3.18 8.3.5.1.3): the source region, flipped along an axis
    whose size is negative, scaled to fit vw x vh with its aspect ratio kept."""

    width: int
    height: int
    sx: int = 0
    sy: int = 0
    sw: int | None = None
    sh: int | None = None

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise RenderError("viewport", "width and height must be positive")
        if self.sx < 0 or self.sy < 0 or self.sw == 0 or self.sh == 0:
            raise RenderError("viewport", "source offsets must be >= 0 and sizes non-zero")

    def region(self, columns: int, rows: int) -> tuple[int, int, int, int]:
        """The source region (left, top, right, bottom) within a columns x rows image."""
        if self.sx >= columns or self.sy >= rows:
            raise RenderError(
                "viewport", f"source region starts outside the {columns}x{rows} image"
            )
        right = columns if self.sw is None else min(columns, self.sx + abs(self.sw))
        bottom = rows if self.sh is None else min(rows, self.sy + abs(self.sh))
        return self.sx, self.sy, right, bottom

    def output_size(self, columns: int, rows: int) -> tuple[int, int]:
        """The rendered image's (width, height) for a columns x rows source image."""
        left, top, right, bottom = self.region(columns, rows)
        scale = min(self.width / (right - left), self.height / (bottom - top))
        return max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale))


@dataclass(frozen=True)
class RenderRequest:
    """The rendering query parameters (PS3.18 Table 8.3.5-1) this server supports."""

    media_type: str = JPEG
    quality: int = DEFAULT_QUALITY
    window: Window | None = None
    viewport: Viewport | None = None


#: Decoded frames kept per worker process (a 512x512 CT frame is 512 KiB): a viewer changing the
#: window of a frame, or asking for it again at another size, does not decode it again.
DECODED_CACHE_BYTES = 64 * 1024 * 1024
#: Grey tables kept per worker process (64 KiB each for 16-bit frames).
GREY_TABLE_CACHE_BYTES = 8 * 1024 * 1024
#: Pipeline datasets kept per worker process, by pipeline key (see cached_pipeline).
PIPELINE_CACHE_ENTRIES = 64

_decoded: SizedLRU[tuple[Hashable, int], np.ndarray] = SizedLRU(
    DECODED_CACHE_BYTES, lambda array: array.nbytes
)
_grey_tables: SizedLRU[tuple[Hashable, str, Window | None], np.ndarray] = SizedLRU(
    GREY_TABLE_CACHE_BYTES, lambda table: table.nbytes
)
_pipelines: SizedLRU[str, Dataset] = SizedLRU(PIPELINE_CACHE_ENTRIES, lambda _: 1)


# --- the pixel pipeline ---------------------------------------------------------------------------


def pipeline_attributes(attributes: Mapping[str, Any], frame_index: int = 0) -> dict[str, Any]:
    """The attributes the pipeline reads; values of an enhanced object's functional groups
    (shared, then this frame's) win."""
    selected = {
        key: attributes[key] for key in _PIPELINE_KEYWORDS if attributes.get(key) is not None
    }
    shared = attributes.get("SharedFunctionalGroupsSequence") or []
    per_frame = attributes.get("PerFrameFunctionalGroupsSequence") or []
    for groups in [*shared[:1], *per_frame[frame_index : frame_index + 1]]:
        for macro, keywords in _FRAME_MACROS.items():
            item = (groups.get(macro) or [{}])[0]
            selected.update({k: item[k] for k in keywords if item.get(k) is not None})
    return selected


def pipeline_dataset(
    attributes: Mapping[str, Any], vrs: Mapping[str, str] | None = None, frame_index: int = 0
) -> Dataset:
    """The attributes the pipeline reads (:func:`pipeline_attributes`), as a Dataset for
    pydicom's LUT helpers."""
    return _as_dataset(pipeline_attributes(attributes, frame_index), vrs)


def _as_dataset(selected: Mapping[str, Any], vrs: Mapping[str, str] | None) -> Dataset:
    ds = attributes_to_dataset(selected, vrs)
    # The image-set metadata keeps binary values (LUT data) little endian, whatever the source.
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def pipeline_key(selected: Mapping[str, Any], vrs: Mapping[str, str] | None) -> str:
    """A key equal for equal pipeline attributes (and the VRs *vrs* gives them): frames of a
    series share it, and with it their pipeline dataset and grey tables."""
    vrs = vrs or {}
    return repr([(k, v, vrs.get(f"{tag_for_keyword(k):08X}")) for k, v in selected.items()])


def cached_pipeline(
    attributes: Mapping[str, Any], vrs: Mapping[str, str] | None, frame_index: int = 0
) -> tuple[Dataset, str]:
    """:func:`pipeline_dataset` and its :func:`pipeline_key`; the dataset is built once per
    key (about 0.1 ms) and must not be changed."""
    selected = pipeline_attributes(attributes, frame_index)
    key = pipeline_key(selected, vrs)
    ds = _pipelines.get(key)
    if ds is None:
        ds = _pipelines.put(key, _as_dataset(selected, vrs))
    return ds, key


def render_frame(
    frame: np.ndarray, ds: Dataset, window: Window | None = None, key: Hashable | None = None
) -> np.ndarray:
    """Display pixels of one decoded frame: uint8, (rows, columns) grey or (rows, columns, 3).
    *key* names what *ds* holds (see :func:`pipeline_key`): grey tables are kept under it."""
    photometric = _photometric(ds)
    if frame.ndim == 2 and photometric == "PALETTE COLOR":
        return palette_to_rgb(frame, ds)
    if frame.ndim == 2:
        return grey_to_uint8(frame, ds, window, key)
    rgb = colour_to_uint8(frame[..., :3], int(ds.get("BitsStored") or frame.dtype.itemsize * 8))
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        return convert_color_space(rgb, photometric, "RGB")
    # RGB, and YBR_ICT / YBR_RCT, which JPEG 2000 decoders already return as RGB.
    return rgb


def grey_to_uint8(
    frame: np.ndarray, ds: Dataset, window: Window | None = None, key: Hashable | None = None
) -> np.ndarray:
    """Grey stored values to display values: Modality LUT, VOI, MONOCHROME1 inversion.

    Integers of up to 16 bits go through a table of the display value of every possible stored
    value (65536 at most), computed by the same functions: one look-up a pixel instead of
    several float64 passes over the frame, with the same result. Tables are kept by *key*, the
    frame's type and the window, so the next frame of a series reuses them; a window spanning
    the frame's own values is computed on the frame.
    """
    monochrome1 = _photometric(ds) == "MONOCHROME1"

    def display(values: np.ndarray) -> np.ndarray:
        unit = voi(modality_lut(values, ds), ds, window)
        return to_uint8(1.0 - unit if monochrome1 else unit)

    tabulable = frame.dtype.kind in "iu" and frame.dtype.itemsize <= 2
    if not tabulable or (window is None and not ds.get("VOILUTSequence") and not object_window(ds)):
        return display(frame)
    # Entry i of the table is the display value of the stored value whose bytes are those of i
    # (any byte order: the frame's bytes are read the same way to index it).
    unsigned = np.dtype(f"u{frame.dtype.itemsize}")
    table_key = (key, frame.dtype.str, window)
    table = None if key is None else _grey_tables.get(table_key)
    if table is None:
        every_value = np.arange(2 ** (8 * frame.dtype.itemsize), dtype=unsigned)
        table = display(every_value.view(frame.dtype))
        if key is not None:
            _grey_tables.put(table_key, table)
    return np.take(table, frame.view(unsigned))


def _photometric(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip().upper()


def modality_lut(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values to modality values: rescale slope and intercept, or the Modality LUT."""
    return apply_modality_lut(frame, ds).astype(np.float64, copy=False)


def voi(values: np.ndarray, ds: Dataset, window: Window | None = None) -> np.ndarray:
    """Modality values to 0..1: the requested window, else the object's VOI LUT or first
    window, else a window spanning the values."""
    if window is None and ds.get("VOILUTSequence"):
        return voi_lut(values, ds)
    return apply_window(values, window or object_window(ds) or range_window(values))


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (LINEAR) and C.11.2.1.3 (LINEAR_EXACT, SIGMOID), output 0..1."""
    center, width = window.center, window.width
    if window.function == "SIGMOID":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if window.function == "LINEAR":
        center, width = center - 0.5, width - 1.0
        if width == 0:  # a width of 1 is a threshold
            return (values > center).astype(np.float64)
    return np.clip((values - center) / width + 0.5, 0.0, 1.0)


def object_window(ds: Dataset) -> Window | None:
    """The instance's first window, or None when it has none that can be used."""
    try:
        return Window(
            float(_first(ds.get("WindowCenter"))),
            float(_first(ds.get("WindowWidth"))),
            str(ds.get("VOILUTFunction") or "LINEAR").strip().upper(),
        )
    except (TypeError, ValueError):
        return None


def range_window(values: np.ndarray) -> Window:
    """A window mapping the lowest value to black and the highest to white."""
    low, high = float(values.min()), float(values.max())
    return Window((low + high) / 2, max(high - low, 1.0), "LINEAR_EXACT")


def voi_lut(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """The first VOI LUT of the instance, output scaled to 0..1 by its bits per entry."""
    count, first, bits = ds.VOILUTSequence[0].LUTDescriptor
    # Clip first: pydicom's look-up indexes with uint16 and would wrap out-of-range values.
    indices = np.clip(np.rint(values), first, first + (count or 65536) - 1).astype(np.int64)
    return apply_voi(indices, ds) / float(2**bits - 1)


def palette_to_rgb(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    rgb = apply_color_lut(frame, ds)[..., :3]
    bits = ds.RedPaletteColorLookupTableDescriptor[2]
    return to_uint8(rgb / float(2**bits - 1))


def colour_to_uint8(frame: np.ndarray, bits_stored: int) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    return to_uint8(frame / float(2**bits_stored - 1))


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """0..1 values to 0..255 display values."""
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, Sequence) and not isinstance(value, str) else value


# --- decoding at the resolution the viewport needs ----------------------------------------------


def reduction_for(viewport: Viewport | None, columns: int, rows: int) -> int:
    """The largest power of two a frame can shrink by and still cover the viewport's output."""
    if viewport is None:
        return 1
    left, top, right, bottom = viewport.region(columns, rows)
    width, height = viewport.output_size(columns, rows)
    shrink = min((right - left) / width, (bottom - top) / height)
    return 2 ** max(0, math.floor(math.log2(shrink))) if shrink >= 2 else 1


def decode_reduced(
    data: bytes, transfer_syntax_uid: str, attributes: dict[str, Any], reduction: int = 1
) -> np.ndarray:
    """Decode a frame at 1/*reduction* of its size, or larger (up to full size); DecodeError
    when it cannot be decoded.

    HTJ2K codestreams hold every resolution level: decoding a lower one skips most of the work
    (a 512x512 CT slice decodes in about a tenth of the time at 128x128). Other syntaxes decode
    in full (factor 1).
    """
    try:
        if transfer_syntax_uid in ts.HTJ2K_FAMILY and reduction > 1:
            skip = min(int(math.log2(reduction)), htj2k_levels(data))
            return imagecodecs.htj2k_decode(data, skipres=skip, planar=False)
        return decode_frame(data, transfer_syntax_uid, attributes)
    except MemoryError:
        raise
    except Exception as error:  # codecs raise RuntimeError, ValueError, their own errors...
        raise DecodeError(transfer_syntax_uid, error) from error


def htj2k_levels(codestream: bytes) -> int:
    """Number of wavelet decompositions, from the COD segment of the main header (ISO 15444-1
    A.6.1); 0 when the header cannot be read."""
    position = 2  # after SOC
    while position + 4 <= len(codestream):
        marker = int.from_bytes(codestream[position : position + 2], "big")
        length = int.from_bytes(codestream[position + 2 : position + 4], "big")
        if marker == _COD_MARKER and position + 9 < len(codestream):
            return codestream[position + 9]
        if marker == _SOT_MARKER or marker >> 8 != 0xFF:
            return 0
        position += 2 + length
    return 0


# --- viewport and encoding ---------------------------------------------------------------------


def fit_viewport(
    image: np.ndarray, viewport: Viewport | None, full_size: tuple[int, int] | None = None
) -> Image.Image:
    """Crop, flip and scale display pixels. *image* may be a reduced resolution of a frame whose
    (columns, rows) are *full_size*: the viewport's source region is in full-size pixels."""
    picture = Image.fromarray(image)
    if viewport is None:
        return picture
    columns, rows = full_size or picture.size
    left, top, right, bottom = viewport.region(columns, rows)
    x_scale, y_scale = picture.width / columns, picture.height / rows
    box = (left * x_scale, top * y_scale, right * x_scale, bottom * y_scale)
    picture = picture.resize(
        viewport.output_size(columns, rows), Image.Resampling.BILINEAR, box=box
    )
    if viewport.sw is not None and viewport.sw < 0:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if viewport.sh is not None and viewport.sh < 0:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return picture


def encode(
    pictures: Sequence[Image.Image],
    media_type: str,
    *,
    quality: int = DEFAULT_QUALITY,
    frame_ms: int = DEFAULT_FRAME_MS,
) -> bytes:
    """Encode as *media_type*; only GIF keeps more than the first picture (an animation)."""
    out = io.BytesIO()
    first = pictures[0]
    if media_type == JPEG:
        first.save(out, "JPEG", quality=quality)
    elif media_type == PNG:
        first.save(out, "PNG", compress_level=1)
    elif media_type == GIF:
        first.save(out, "GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    else:
        raise RenderError("accept", f"cannot render as {media_type}")
    return out.getvalue()


def frame_duration_ms(attributes: Mapping[str, Any]) -> int:
    """Display time of one frame of a multi-frame instance: Frame Time, else Cine Rate."""
    try:
        if attributes.get("FrameTime") is not None:
            return max(1, round(float(_first(attributes["FrameTime"]))))
        if attributes.get("CineRate") is not None:
            return max(1, round(1000 / float(_first(attributes["CineRate"]))))
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return DEFAULT_FRAME_MS


def output_size(columns: int, rows: int, viewport: Viewport | None) -> tuple[int, int]:
    """(width, height) of each rendered frame of a columns x rows image."""
    return viewport.output_size(columns, rows) if viewport else (columns, rows)


def check_output(count: int, columns: int, rows: int, request: RenderRequest) -> None:
    """Refuse, before anything is fetched or decoded, a response of *count* frames of a
    columns x rows image that would exceed the bounds: RenderError naming the parameter."""
    if request.media_type == GIF and count > MAX_ANIMATION_FRAMES:
        raise RenderError(
            "frames",
            f"{count} frames are more than the {MAX_ANIMATION_FRAMES} an animated GIF may hold;"
            " ask for fewer with .../frames/{list}/rendered",
        )
    width, height = output_size(columns, rows, request.viewport)
    total = count * width * height
    if total <= MAX_RENDERED_PIXELS:
        return
    limit = f"{MAX_RENDERED_PIXELS / 2**20:g} Mi pixels ({MAX_RENDERED_PIXELS:,})"
    if count == 1:
        raise RenderError(
            "viewport",
            f"a rendered image of {width}x{height} is more than the {limit} one may hold;"
            " ask for a smaller viewport",
        )
    raise RenderError(
        "frames",
        f"{count} frames of {width}x{height} are {total:,} pixels, more than the {limit} a"
        " rendered response may hold; ask for fewer frames or a smaller viewport",
    )


def render_picture(
    index: int,
    blob: bytes,
    transfer_syntax_uid: str,
    attributes: dict[str, Any],
    vrs: Mapping[str, str] | None,
    request: RenderRequest,
    frame_key: Hashable | None = None,
) -> Image.Image:
    """Frame *index* (0-based), given as its stored bytes, rendered and fitted to the viewport.
    For a GIF it comes already in the mode GIF keeps (a palette for colour, grey otherwise),
    one byte a pixel. A *frame_key* naming the stored frame (it must name the same bytes for
    ever) keeps the decoded frame for the next request. CPU-bound: run it off the event loop."""
    columns, rows = int(attributes["Columns"]), int(attributes["Rows"])
    reduction = reduction_for(request.viewport, columns, rows)
    array = None if frame_key is None else _decoded.get((frame_key, reduction))
    if array is None:
        array = decode_reduced(blob, transfer_syntax_uid, attributes, reduction)
        if frame_key is not None:
            array.flags.writeable = False  # shared by the requests that find it
            _decoded.put((frame_key, reduction), array)
    ds, key = cached_pipeline(attributes, vrs, index)
    image = render_frame(array, ds, request.window, key)
    picture = fit_viewport(image, request.viewport, (columns, rows))
    return gif_picture(picture) if request.media_type == GIF else picture


def gif_picture(picture: Image.Image) -> Image.Image:
    """A rendered picture in the mode a GIF keeps, one byte a pixel: grey stays grey; colour
    gets an adaptive palette, what Pillow's GIF writer would do (its ``_normalize_mode``). On
    pictures above PALETTE_SAMPLE_PIXELS the palette comes from a box-reduced copy: median cut
    on the whole picture costs about 8 bytes a pixel (400 MB at 8192 x 6144) and seconds."""
    if picture.mode != "RGB":
        return picture if picture.mode == "L" else picture.convert("L")
    pixels = picture.width * picture.height
    if pixels <= PALETTE_SAMPLE_PIXELS:
        return picture.convert("P", palette=Image.Palette.ADAPTIVE)
    factor = math.ceil(math.sqrt(pixels / PALETTE_SAMPLE_PIXELS))
    palette = picture.reduce(factor).convert("P", palette=Image.Palette.ADAPTIVE)
    return picture.quantize(palette=palette, dither=Image.Dither.NONE)


def render(
    frames: Iterable[tuple[int, bytes]],
    transfer_syntax_uid: str,
    attributes: dict[str, Any],
    vrs: Mapping[str, str] | None,
    request: RenderRequest,
) -> bytes:
    """Render frames of one instance, given as (0-based frame index, stored bytes), and encode
    them as the request asks. CPU-bound: run it off the event loop."""
    frames = list(frames)
    check_output(len(frames), int(attributes["Columns"]), int(attributes["Rows"]), request)
    pictures = [
        render_picture(index, blob, transfer_syntax_uid, attributes, vrs, request)
        for index, blob in frames
    ]
    return encode_pictures(pictures, request, attributes)


def encode_pictures(
    pictures: Sequence[Image.Image], request: RenderRequest, attributes: Mapping[str, Any]
) -> bytes:
    """Encode rendered pictures as the request asks, GIF frames timed by the instance."""
    return encode(
        pictures,
        request.media_type,
        quality=request.quality,
        frame_ms=frame_duration_ms(attributes),
    )
