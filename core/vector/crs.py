"""Coordinate systems for core.vector: CRS and geotransform arguments, reprojection through
rasterio (PROJ), and the metric frame areas are measured in (see the package docstring)."""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform as warp_transform

from core.errors import ConfigError

WGS84 = CRS.from_epsg(4326)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def as_crs(crs) -> CRS | None:
    if crs is None or isinstance(crs, CRS):
        return crs
    try:
        return CRS.from_user_input(crs)
    except CRSError as exc:
        raise ConfigError(
            f"not a known coordinate reference system: {crs!r} ({one_line(exc)})"
        ) from exc


def as_transform(transform) -> Affine:
    if transform is None:
        return Affine.identity()
    t = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
    if t.determinant == 0:
        raise ValueError(f"the geotransform {tuple(t)[:6]} is not invertible")
    return t


def reproject(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Geometries moved vertex by vertex from ``src`` to ``dst`` (x = easting/longitude)."""

    def move(coords: np.ndarray) -> np.ndarray:
        if len(coords) == 0:
            return coords
        xs, ys = warp_transform(src, dst, coords[:, 0], coords[:, 1])
        out = np.column_stack([np.asarray(xs, float), np.asarray(ys, float)])
        if not np.isfinite(out).all():
            raise ConfigError(f"some coordinates cannot be converted from {src} to {dst}")
        return out

    return shapely.transform(geoms, move)


def apply_affine(geoms: np.ndarray, t: Affine) -> np.ndarray:
    if t.is_identity:
        return geoms
    m = np.array([[t.a, t.b], [t.d, t.e]])
    return shapely.transform(geoms, lambda c: c @ m.T + (t.c, t.f))


def crs_text(crs: CRS | None) -> str | None:
    """``EPSG:<code>`` when the CRS has one (what GIS tools show), else its WKT."""
    if crs is None:
        return None
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs.to_wkt()


def _is_mercator(crs: CRS) -> bool:
    wkt = crs.to_wkt().lower()
    return "mercator" in wkt and "transverse" not in wkt and "oblique" not in wkt


class MetricFrame:
    """The frame areas are measured in: image coordinates times ``k``, or per-building UTM."""

    def __init__(self, transform: Affine, crs: CRS | None, gsd: float | None):
        self.crs, self.utm, self.k, self.unit = crs, False, 1.0, "m"
        if crs is None:
            self.unit = "m" if gsd else "px"
            self.k = (gsd or 1.0) / math.sqrt(abs(transform.determinant))
        elif crs.is_projected and not _is_mercator(crs):
            try:
                self.k = float(crs.linear_units_factor[1])
            except CRSError:
                self.utm = True
        elif crs.is_geographic or crs.is_projected:
            self.utm = True
        else:
            raise ConfigError(
                f"the CRS {crs} is neither projected nor geographic: cannot measure areas in it"
            )

    def forward(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.utm:
            if self.k == 1.0:
                return geoms, None
            return shapely.transform(geoms, lambda c: c * self.k), None
        cen = shapely.get_coordinates(shapely.centroid(geoms))
        lon, lat = (
            np.asarray(v, float) for v in warp_transform(self.crs, WGS84, cen[:, 0], cen[:, 1])
        )
        zone = np.clip(np.floor((lon + 180.0) / 6.0).astype(int) + 1, 1, 60)
        epsg = np.where(lat >= 0, 32600, 32700) + zone
        out = np.empty_like(geoms)
        for code in np.unique(epsg):
            sel = epsg == code
            out[sel] = reproject(geoms[sel], self.crs, CRS.from_epsg(int(code)))
        return out, epsg

    def back(self, geoms: np.ndarray, epsg: np.ndarray | None) -> np.ndarray:
        if not self.utm:
            return geoms if self.k == 1.0 else shapely.transform(geoms, lambda c: c / self.k)
        out = np.empty_like(geoms)
        for code in np.unique(epsg):
            sel = epsg == code
            out[sel] = reproject(geoms[sel], CRS.from_epsg(int(code)), self.crs)
        return out
