"""Simple anatomical phantoms (ellipses of plausible HU, MR signal or X-ray attenuation), so
windowing, rendering and codecs see image-like data rather than noise."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class Shape:
    """An axis-aligned ellipse in normalised image coordinates (-1..1, y towards the bottom).

    It exists for slice positions z0 <= z <= z1 (0..1 across the series); a tapered shape shrinks
    towards both ends like an organ, an untapered one keeps its size like a vessel or the spine.
    """

    cx: float
    cy: float
    a: float
    b: float
    tissue: str
    z0: float = -1.0
    z1: float = 2.0
    taper: bool = False

    def extent(self, z: float) -> float:
        """The ellipse's size at slice position z as a fraction of its full size."""
        if not self.z0 <= z <= self.z1:
            return 0.0
        if not self.taper:
            return 1.0
        t = (2 * z - self.z0 - self.z1) / (self.z1 - self.z0)
        return float(np.sqrt(1 - t * t))

    def scaled(self, k: float) -> Shape:
        return replace(self, cx=self.cx * k, cy=self.cy * k, a=self.a * k, b=self.b * k)


class _Part(NamedTuple):
    region: tuple[slice, slice]
    d2: np.ndarray  # squared normalised distance to the centre over the region
    shape: Shape
    value: float


class Phantom:
    """Shapes with distance fields precomputed once, so a slice costs one threshold per shape."""

    def __init__(
        self,
        shapes: Iterable[Shape],
        values: dict[str, float],
        *,
        rows: int,
        cols: int,
        background: float,
        additive: bool = False,
    ) -> None:
        self._rows, self._cols = rows, cols
        self._background = background
        self._additive = additive  # add values (X-ray attenuation) rather than paint over
        self._parts = [self._prepare(shape, values[shape.tissue]) for shape in shapes]

    def _prepare(self, shape: Shape, value: float) -> _Part:
        r0, r1, ys = _pixel_span(shape.cy, shape.b, self._rows)
        c0, c1, xs = _pixel_span(shape.cx, shape.a, self._cols)
        d2 = ((xs[None, :] - shape.cx) / shape.a) ** 2 + ((ys[:, None] - shape.cy) / shape.b) ** 2
        return _Part((slice(r0, r1), slice(c0, c1)), d2, shape, value)

    def render(self, z: float = 0.5) -> np.ndarray:
        """The float32 image at slice position z."""
        image = np.full((self._rows, self._cols), self._background, np.float32)
        for part in self._parts:
            extent = part.shape.extent(z)
            if extent <= 0:
                continue
            view = image[part.region]
            inside = part.d2 <= extent * extent
            if self._additive:
                view[inside] += part.value
            else:
                view[inside] = part.value
        return image


def _pixel_span(centre: float, half: float, n: int) -> tuple[int, int, np.ndarray]:
    """The pixel range covering centre +- half (normalised) and the pixels' normalised centres."""
    first = max(int(np.floor((centre - half + 1) / 2 * n)), 0)
    last = max(min(int(np.ceil((centre + half + 1) / 2 * n)) + 1, n), first)
    coords = (np.arange(first, last, dtype=np.float32) + 0.5) / n * 2 - 1
    return first, last, coords


class NoiseBank:
    """One large Gaussian field; each slice takes a random window of it (cheap yet varied)."""

    def __init__(self, rng: np.random.Generator, rows: int, cols: int, sigma: float) -> None:
        self._rows, self._cols = rows, cols
        self._field = rng.standard_normal((2 * rows, 2 * cols), dtype=np.float32) * sigma

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        y, x = rng.integers(0, self._rows), rng.integers(0, self._cols)
        return self._field[y : y + self._rows, x : x + self._cols]


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """A separable box filter (cumulative sums): softens ellipse edges like a system blur."""
    size = 2 * radius + 1
    out = image.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], "edge")
        sums = np.cumsum(padded, axis=axis)
        sums = np.insert(sums, 0, 0, axis=axis)
        n = out.shape[axis]
        out = (sums.take(range(size, size + n), axis) - sums.take(range(n), axis)) / size
    return out.astype(np.float32)


def fov_mask(size: int) -> np.ndarray:
    """Pixels outside the circular reconstruction field of view of a CT slice."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return c[None, :] ** 2 + c[:, None] ** 2 > 1


def mirror(shape: Shape) -> tuple[Shape, Shape]:
    return shape, replace(shape, cx=-shape.cx)


def _ribs() -> tuple[Shape, ...]:
    """Rib cross-sections along both sides of the chest wall, in the thoracic slices only."""
    ribs: list[Shape] = []
    for degrees in (-70, -45, -20, 5, 30, 55, 75):
        t = np.deg2rad(degrees)
        x, y = 0.72 * float(np.cos(t)), 0.05 + 0.49 * float(np.sin(t))
        ribs += mirror(Shape(x, y, 0.035, 0.03, "rib", 0, 0.6))
    return tuple(ribs)


# Thorax (z = 0) to upper abdomen (z = 1), patient supine: anterior at the top of the image.
CT_BODY: tuple[Shape, ...] = (
    Shape(0, 0.74, 0.9, 0.025, "table"),
    Shape(0, 0.05, 0.82, 0.58, "fat"),
    Shape(0, 0.05, 0.76, 0.52, "muscle"),
    *mirror(Shape(0.36, -0.02, 0.27, 0.4, "lung", -0.15, 0.65, taper=True)),
    Shape(0.08, 0.0, 0.22, 0.2, "blood", 0.1, 0.55, taper=True),
    Shape(-0.3, 0.05, 0.4, 0.34, "liver", 0.45, 1.3, taper=True),
    Shape(0.52, 0.15, 0.15, 0.2, "spleen", 0.5, 0.9, taper=True),
    Shape(0.28, -0.12, 0.16, 0.1, "gas", 0.5, 0.75, taper=True),
    *mirror(Shape(0.33, 0.3, 0.1, 0.14, "kidney", 0.7, 1.2, taper=True)),
    Shape(0.05, 0.27, 0.05, 0.05, "contrast"),
    Shape(0, -0.5, 0.06, 0.025, "cortical", 0, 0.5),
    Shape(0, 0.38, 0.1, 0.09, "cortical"),
    Shape(0, 0.38, 0.08, 0.07, "cancellous"),
    Shape(0, 0.52, 0.035, 0.035, "csf"),
    Shape(0, 0.61, 0.025, 0.05, "cortical"),
    *_ribs(),
)

# Skull base (z = 0) to vertex (z = 1): the same anatomy serves CT and MR head series.
HEAD: tuple[Shape, ...] = (
    Shape(0, 0, 0.72, 0.86, "fat", -0.3, 1.2, taper=True),
    Shape(0, 0, 0.68, 0.82, "bone", -0.3, 1.2, taper=True),
    Shape(0, 0, 0.63, 0.77, "csf", -0.3, 1.2, taper=True),
    Shape(0, 0, 0.6, 0.74, "gm", -0.3, 1.2, taper=True),
    Shape(0, 0.02, 0.48, 0.6, "wm", -0.2, 1.1, taper=True),
    *mirror(Shape(0.2, 0.05, 0.1, 0.12, "gm", 0.25, 0.6, taper=True)),
    *mirror(Shape(0.12, -0.05, 0.07, 0.25, "csf", 0.3, 0.8, taper=True)),
    Shape(0, 0.1, 0.02, 0.08, "csf", 0.3, 0.6, taper=True),
    *mirror(Shape(0.26, -0.74, 0.1, 0.1, "csf", -0.1, 0.25, taper=True)),
    Shape(0, -0.55, 0.14, 0.12, "air", -0.3, 0.2, taper=True),
)

CT_HU = {
    "table": 300.0,
    "fat": -100.0,
    "muscle": 45.0,
    "lung": -850.0,
    "blood": 40.0,
    "liver": 60.0,
    "spleen": 50.0,
    "gas": -950.0,
    "kidney": 150.0,
    "contrast": 220.0,
    "cortical": 1000.0,
    "cancellous": 250.0,
    "rib": 800.0,
    "csf": 5.0,
    "bone": 1200.0,
    "gm": 40.0,
    "wm": 28.0,
    "air": -1000.0,
}

MR_SIGNAL = {
    "T1": {"fat": 1100.0, "bone": 60.0, "csf": 250.0, "gm": 650.0, "wm": 900.0, "air": 0.0},
    "T2": {"fat": 700.0, "bone": 60.0, "csf": 1800.0, "gm": 1000.0, "wm": 700.0, "air": 0.0},
}


# Chest radiographs, PA and lateral: attenuations add up along the beam.


def _mirror_ribs() -> tuple[Shape, ...]:
    """Rib arcs as outer minus inner ellipse per hemithorax (additive attenuation)."""
    arcs = []
    for k in range(9):
        for side in (-1, 1):
            cy = -0.62 + 0.13 * k
            arcs.append(Shape(side * 0.3, cy, 0.34, 0.1, "rib"))
            arcs.append(Shape(side * 0.3, cy, 0.31, 0.075, "rib_inner"))
    return tuple(arcs)


CR_PA: tuple[Shape, ...] = (
    Shape(0, 0.15, 0.9, 1.15, "body"),
    *mirror(Shape(0.38, -0.05, 0.3, 0.6, "lung")),
    Shape(0.08, 0.2, 0.28, 0.3, "heart"),
    Shape(0, -0.3, 0.12, 0.5, "mediastinum"),
    Shape(0, 0, 0.07, 1.2, "spine"),
    Shape(0, 0.95, 0.6, 0.3, "abdomen"),
    *mirror(Shape(0.3, -0.72, 0.3, 0.04, "bone")),
    *_mirror_ribs(),
)

CR_LATERAL: tuple[Shape, ...] = (
    Shape(0, 0.15, 0.75, 1.15, "body"),
    Shape(-0.05, -0.05, 0.5, 0.6, "lung"),
    Shape(-0.25, 0.25, 0.3, 0.3, "heart"),
    Shape(0.45, 0.1, 0.09, 0.9, "spine"),
    Shape(-0.62, -0.1, 0.04, 0.4, "bone"),
    Shape(0, 0.95, 0.5, 0.3, "abdomen"),
)

CR_ATTENUATION = {
    "body": 1.0,
    "lung": -0.6,
    "heart": 0.5,
    "mediastinum": 0.3,
    "spine": 0.6,
    "abdomen": 0.4,
    "bone": 0.4,
    "rib": 0.2,
    "rib_inner": -0.2,
}
