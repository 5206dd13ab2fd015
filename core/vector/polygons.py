"""Roof masks to building polygons: :class:`StripVectorizer` and :func:`vectorize`."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import shape as to_shape

from core.errors import ConfigError
from core.vector.crs import MetricFrame, apply_affine, as_crs, as_transform
from core.vector.regularize import regularize_polygon

__all__ = ["Building", "BuildingSet", "StripVectorizer", "vectorize"]


@dataclass(frozen=True)
class Building:
    """One building: ``geometry`` (shapely Polygon in the image's CRS or pixel coordinates),
    ``area_m2`` and ``perimeter_m`` (px² and px when :attr:`BuildingSet.unit` is "px"),
    ``mean_probability`` (None without a probability map) and its roof pixel count."""

    id: int
    geometry: shapely.Polygon
    area_m2: float
    perimeter_m: float
    mean_probability: float | None
    pixels: int


@dataclass(frozen=True)
class BuildingSet(Sequence):
    """The buildings of one image with their CRS (None: pixel coordinates) and length unit."""

    buildings: list[Building] = field(default_factory=list)
    crs: CRS | None = None
    unit: str = "m"  # "m" or "px"

    def __len__(self) -> int:
        return len(self.buildings)

    def __getitem__(self, index):
        return self.buildings[index]

    def __iter__(self) -> Iterator[Building]:
        return iter(self.buildings)

    @property
    def geometries(self) -> np.ndarray:
        return np.array([b.geometry for b in self.buildings], dtype=object)

    @property
    def total_area(self) -> float:
        return float(sum(b.area_m2 for b in self.buildings))


def _canonical(polygon: shapely.Polygon) -> shapely.Polygon:
    """A pixel polygon without collinear vertices, in shapely's normal form: the same polygon
    whatever the pieces it was merged from."""

    def ring(coords: np.ndarray) -> np.ndarray:
        pts = coords[:-1]
        before, after = pts - np.roll(pts, 1, 0), np.roll(pts, -1, 0) - pts
        pts = pts[before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0] != 0]
        return np.vstack([pts, pts[:1]])

    if polygon.geom_type == "MultiPolygon":  # not expected from 4-connected pixels; kept whole
        return shapely.normalize(shapely.MultiPolygon([_canonical(p) for p in polygon.geoms]))
    shell = ring(np.asarray(polygon.exterior.coords))
    holes = [ring(np.asarray(r.coords)) for r in polygon.interiors]
    return shapely.normalize(shapely.Polygon(shell, holes))


@dataclass
class _Part:
    """A building being assembled: its pixel-coordinate pieces and pixel statistics."""

    pieces: list
    pixels: int
    prob_sum: float
    prob_count: int
    first: int  # flat index (row * width + col) of its first pixel in raster order


class StripVectorizer:
    """:func:`vectorize` for a mask fed strip by strip, top to bottom.

    ``add_strip(row_off, mask_rows, probability_rows=None)`` takes the next rows (full width,
    contiguous) and returns the buildings finished by them: those with no pixel on the strip's
    last row (or all of them when the strip ends at ``height``); :meth:`finish` returns the rest.
    Parts that meet across a strip edge are merged into one polygon. Memory: the strip plus the
    buildings still open along its last row. Building ids run 1..N in the order they are
    emitted (within one call, by their first pixel in raster order).
    """

    def __init__(
        self,
        width: int,
        transform=None,
        crs=None,
        *,
        height: int | None = None,
        min_area: float = 0.0,
        simplify: float = 0.0,
        regularize: bool = False,
        gsd: float | None = None,
    ):
        for name, value in (("min_area", min_area), ("simplify", simplify)):
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be a number >= 0, got {value}")
        if gsd is not None and not (gsd > 0 and math.isfinite(gsd)):
            raise ConfigError(f"the ground sample distance must be > 0 m/px, got {gsd}")
        self.crs = as_crs(crs)
        if self.crs is not None and transform is None:
            raise ValueError("a CRS needs the image's geotransform")
        self.transform = as_transform(transform)
        self.width, self.height = int(width), height
        self.min_area, self.simplify, self.regularize = float(min_area), float(simplify), regularize
        self._frame = MetricFrame(self.transform, self.crs, gsd)
        self.unit = self._frame.unit
        self._edge = np.zeros(self.width, np.int64)  # open part per column of the last row fed
        self._open: dict[int, _Part] = {}
        self._next_part, self._next_id, self._next_row = 1, 1, 0
        self._probability: bool | None = None
        self._done = False

    def add_strip(
        self, row_off: int, mask_rows: np.ndarray, probability_rows: np.ndarray | None = None
    ) -> list[Building]:
        mask = np.asarray(mask_rows) != 0
        if self._done:
            raise ValueError("finish() was called: no more strips")
        if mask.ndim != 2 or mask.shape[1] != self.width:
            raise ValueError(f"a strip must be (rows, {self.width}), got {mask.shape}")
        if row_off != self._next_row:
            raise ValueError(
                f"strips must follow each other: expected row {self._next_row}, got {row_off}"
            )
        rows = mask.shape[0]
        if self.height is not None and row_off + rows > self.height:
            raise ValueError(f"rows {row_off}..{row_off + rows} are past the height {self.height}")
        if self._probability is not None and self._probability != (probability_rows is not None):
            raise ValueError("give a probability strip with every mask strip, or with none")
        prob = None if probability_rows is None else np.asarray(probability_rows, np.float64)
        if prob is not None and prob.shape != mask.shape:
            raise ValueError(f"the probability strip is {prob.shape}, the mask {mask.shape}")
        self._probability = prob is not None
        self._next_row += rows
        last = self.height is not None and self._next_row == self.height
        if rows == 0:
            return self.finish() if last else []
        labels, n = ndimage.label(mask)  # 4-connectivity
        flat = labels.ravel()
        pixels = np.bincount(flat, minlength=n + 1)
        prob_sum = np.zeros(n + 1)
        prob_count = np.zeros(n + 1, np.int64)
        if prob is not None:
            finite = np.isfinite(prob).ravel()
            prob_sum = np.bincount(flat, np.where(finite, prob.ravel(), 0.0), minlength=n + 1)
            prob_count = np.bincount(flat, finite, minlength=n + 1).astype(np.int64)
        first = np.full(n + 1, np.iinfo(np.int64).max)
        nz = np.flatnonzero(flat)
        np.minimum.at(first, flat[nz], nz + row_off * self.width)
        pieces = {
            int(v): to_shape(g)
            for g, v in shapes(
                labels, mask=mask, connectivity=4, transform=Affine.translation(0, row_off)
            )
        }
        # union-find over strip labels 1..n and open parts n + 1 + k
        keys = list(self._open)
        parent = list(range(n + 1 + len(keys)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        slot = {k: n + 1 + i for i, k in enumerate(keys)}
        touch = (self._edge > 0) & (labels[0] > 0)
        links = set(zip(self._edge[touch].tolist(), labels[0][touch].tolist(), strict=True))
        for part, lab in links:
            a, b = root(slot[part]), root(lab)
            if a != b:
                parent[a] = b
        groups: dict[int, list[int]] = {}
        for i in range(1, len(parent)):
            groups.setdefault(root(i), []).append(i)
        open_labels = set() if last else set(labels[-1][labels[-1] > 0].tolist())
        lut = np.zeros(n + 1, np.int64)
        finished, still_open = [], {}
        for members in groups.values():
            part = _Part([], 0, 0.0, 0, np.iinfo(np.int64).max)
            for i in members:
                if i > n:
                    old = self._open[keys[i - n - 1]]
                    part.pieces += old.pieces
                    part.pixels += old.pixels
                    part.prob_sum += old.prob_sum
                    part.prob_count += old.prob_count
                    part.first = min(part.first, old.first)
                else:
                    part.pieces.append(pieces[i])
                    part.pixels += int(pixels[i])
                    part.prob_sum += float(prob_sum[i])
                    part.prob_count += int(prob_count[i])
                    part.first = min(part.first, int(first[i]))
            strip_members = [i for i in members if i <= n]
            if any(i in open_labels for i in strip_members):
                if len(part.pieces) > 32:  # keep a tall building's piece list short
                    part.pieces = [shapely.union_all(part.pieces)]
                still_open[self._next_part] = part
                lut[strip_members] = self._next_part
                self._next_part += 1
            else:
                finished.append(part)
        self._open = still_open
        self._edge = lut[labels[-1]]
        if last:
            self._done = True
        return self._emit(finished)

    def finish(self) -> list[Building]:
        """The buildings still open (all rows must have been fed when ``height`` was given)."""
        if self.height is not None and self._next_row != self.height and not self._done:
            raise ValueError(f"only {self._next_row} of {self.height} rows were fed")
        parts = list(self._open.values())
        self._open, self._edge, self._done = {}, np.zeros_like(self._edge), True
        return self._emit(parts)

    def _emit(self, parts: list[_Part]) -> list[Building]:
        if not parts:
            return []
        parts.sort(key=lambda p: p.first)
        pixel_geoms = np.array(
            [
                _canonical(p.pieces[0] if len(p.pieces) == 1 else shapely.union_all(p.pieces))
                for p in parts
            ],
            dtype=object,
        )
        geoms = apply_affine(pixel_geoms, self.transform)
        metric, zones = self._frame.forward(geoms)
        full_area = shapely.area(metric)
        changed = bool(self.simplify or self.regularize)
        if self.simplify:
            metric = shapely.simplify(metric, self.simplify, preserve_topology=True)
        if self.regularize:
            pixel_size = np.sqrt(full_area / np.array([p.pixels for p in parts]))
            metric = np.array(
                [
                    regularize_polygon(g, max(self.simplify, 1.5 * px))
                    for g, px in zip(metric, pixel_size, strict=True)
                ],
                dtype=object,
            )
        area, perimeter = shapely.area(metric), shapely.length(metric)
        if changed:
            geoms = self._frame.back(metric, zones)
        out = []
        for i, p in enumerate(parts):
            if area[i] <= 0 or area[i] < self.min_area or shapely.is_empty(geoms[i]):
                continue
            mean = (
                None
                if not self._probability
                else (p.prob_sum / p.prob_count if p.prob_count else math.nan)
            )
            out.append(
                Building(
                    self._next_id, geoms[i], float(area[i]), float(perimeter[i]), mean, p.pixels
                )
            )
            self._next_id += 1
        return out


def vectorize(
    mask: np.ndarray,
    transform=None,
    crs=None,
    probability: np.ndarray | None = None,
    min_area: float = 0.0,
    simplify: float = 0.0,
    regularize: bool = False,
    gsd: float | None = None,
) -> BuildingSet:
    """One polygon per 4-connected roof region of ``mask``, with areas (see the module doc)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    sv = StripVectorizer(
        mask.shape[1],
        transform,
        crs,
        height=mask.shape[0],
        min_area=min_area,
        simplify=simplify,
        regularize=regularize,
        gsd=gsd,
    )
    buildings = sv.add_strip(0, mask, probability) + sv.finish()
    return BuildingSet(buildings, sv.crs, sv.unit)
