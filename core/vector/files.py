"""Building and footprint files (GeoPackage, GeoJSON, Shapefile) through pyogrio, and footprints
burnt into masks on an image's grid."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.errors
import pyogrio.raw
import shapely
from rasterio.crs import CRS
from rasterio.features import rasterize

from core.errors import ConfigError, ImageReadError, ImageWriteError
from core.io import atomic_output
from core.vector.crs import WGS84, as_crs, as_transform, crs_text, one_line, reproject
from core.vector.polygons import Building, BuildingSet

__all__ = [
    "LAYER",
    "READ_SUFFIXES",
    "WRITE_SUFFIXES",
    "rasterize_footprints",
    "read_footprints",
    "write_buildings",
]

LAYER = "buildings"
WRITE_SUFFIXES = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
READ_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp")
_OGR_ERRORS = (
    pyogrio.errors.DataSourceError,
    pyogrio.errors.DataLayerError,
    RuntimeError,
    OSError,
    ValueError,
)


def write_buildings(
    path: str | Path,
    buildings: BuildingSet | Iterable[Building],
    crs=None,
    *,
    unit: str | None = None,
) -> Path:
    """Write ``buildings`` by suffix: ``.gpkg`` (layer "buildings", in ``crs``) or ``.geojson`` /
    ``.json`` (RFC 7946: WGS 84 lon/lat). ``crs`` and ``unit`` default to the BuildingSet's.
    Fields: id, area_m2 and perimeter_m (area_px and perimeter_px in pixel units),
    mean_probability (null without a probability map). Atomic."""
    path = Path(path)
    driver = WRITE_SUFFIXES.get(path.suffix.lower())
    if driver is None:
        raise ConfigError(
            f"unknown building file type {path.suffix or '(no suffix)'!r}: use "
            + ", ".join(WRITE_SUFFIXES),
            path,
        )
    if isinstance(buildings, BuildingSet):
        crs = buildings.crs if crs is None else crs
        unit = unit or buildings.unit
    crs = as_crs(crs)
    items = list(buildings)
    unit = unit or ("m" if crs is not None else "px")
    if unit not in ("m", "px"):
        raise ValueError(f"unit must be 'm' or 'px', got {unit!r}")
    geoms = np.array([b.geometry for b in items], dtype=object)
    layer_options = None
    if driver == "GeoJSON":
        if crs is None:
            raise ConfigError(
                "GeoJSON is in longitude/latitude, but these buildings have no CRS "
                "(the image is not georeferenced): write a .gpkg instead",
                path,
            )
        if len(geoms) and crs != WGS84:
            geoms = reproject(geoms, crs, WGS84)
        crs, layer_options = WGS84, {"RFC7946": "YES"}
    multi = any(g.geom_type == "MultiPolygon" for g in geoms)
    names = ["id", f"area_{'m2' if unit == 'm' else 'px'}", f"perimeter_{unit}", "mean_probability"]
    fields = [
        np.array([b.id for b in items], np.int64),
        np.array([b.area_m2 for b in items], np.float64),
        np.array([b.perimeter_m for b in items], np.float64),
        np.array(
            [math.nan if b.mean_probability is None else b.mean_probability for b in items],
            np.float64,
        ),
    ]
    with atomic_output(path) as tmp:
        # GDAL picks and checks the format by the suffix: write under a name that keeps it, then
        # move that file onto atomic_output's temporary file.
        inner = tmp.with_name(tmp.name + path.suffix.lower())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", UserWarning)
                pyogrio.raw.write(
                    inner,
                    shapely.to_wkb(geoms) if len(geoms) else np.array([], dtype=object),
                    fields,
                    names,
                    layer=LAYER,
                    driver=driver,
                    geometry_type="MultiPolygon" if multi else "Polygon",
                    crs=crs_text(crs),
                    promote_to_multi=multi,
                    layer_options=layer_options,
                )
            os.replace(inner, tmp)
        except _OGR_ERRORS as exc:
            raise ImageWriteError(f"cannot write the buildings ({one_line(exc)})", path) from exc
        finally:
            for leftover in (
                inner,
                Path(f"{inner}-journal"),
                Path(f"{inner}-wal"),
                Path(f"{inner}-shm"),
            ):
                leftover.unlink(missing_ok=True)
    return path


def read_footprints(path: str | Path) -> tuple[np.ndarray, CRS | None]:
    """``(polygons, crs)`` of a ``.gpkg`` (layer "buildings", else its first layer), ``.geojson``
    / ``.json`` or ``.shp`` file; other geometry types and empty ones are left out. ``crs`` is
    None for a file without one (a Shapefile without .prj)."""
    path = Path(path)
    if path.suffix.lower() not in READ_SUFFIXES:
        raise ImageReadError(
            f"not a footprint file type we read ({path.suffix or 'no suffix'}): "
            "use .gpkg, .geojson or .shp",
            path,
        )
    if not path.exists():
        raise ImageReadError("file not found", path)
    if path.is_dir():
        raise ImageReadError("is a folder, not a footprint file", path)
    if path.stat().st_size == 0:
        raise ImageReadError("file is empty (0 bytes)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            layers = [str(name) for name, _ in pyogrio.list_layers(path)]
            if not layers:
                raise ImageReadError("the file has no layers", path)
            layer = LAYER if LAYER in layers else layers[0]
            meta, _, wkb, _ = pyogrio.raw.read(path, layer=layer, columns=[])
    except ImageReadError:
        raise
    except _OGR_ERRORS as exc:
        reason = one_line(exc).replace(f"'{path}' ", "").split("; It might help")[0].rstrip(".")
        raise ImageReadError(f"not a readable footprint file ({reason})", path) from exc
    geoms = shapely.from_wkb(wkb) if wkb is not None else np.array([], dtype=object)
    keep = np.isin(shapely.get_type_id(geoms), (3, 6)) & ~shapely.is_empty(geoms)
    if len(geoms) and not keep.any():
        raise ImageReadError(
            f"layer {layer!r} holds no polygons ({meta.get('geometry_type')} geometries)", path
        )
    return geoms[keep], as_crs(meta.get("crs"))


def prepare_footprints(
    geometries: Iterable, footprint_crs, crs=None, *, source: str | Path | None = None
) -> np.ndarray:
    """The polygon footprints in the image's ``crs``, ready to burn (reprojected when their CRS
    differs). Both CRSs None: they are already in the image's geotransform coordinates.
    ``source`` (the footprint file) names the errors."""
    fcrs, icrs = as_crs(footprint_crs), as_crs(crs)
    geoms = np.array([g for g in geometries if g is not None], dtype=object)
    if len(geoms):
        geoms = geoms[np.isin(shapely.get_type_id(geoms), (3, 6)) & ~shapely.is_empty(geoms)]
    if not len(geoms):
        raise ConfigError("there are no polygon footprints to rasterise", source)
    if fcrs is None and icrs is not None:
        raise ConfigError(
            f"the footprints have no CRS, the image is in {icrs}: cannot place them "
            "on it (give the footprint file a CRS, e.g. a .prj for a Shapefile)",
            source,
        )
    if fcrs is not None and icrs is None:
        raise ConfigError(
            f"the footprints are in {fcrs}, but the image has no CRS (it is not "
            "georeferenced): cannot place them on it",
            source,
        )
    if fcrs is not None and fcrs != icrs:
        geoms = reproject(geoms, fcrs, icrs)
    return geoms


def burn_footprints(geoms: np.ndarray, shape: tuple[int, int], transform=None) -> np.ndarray:
    """A boolean mask of ``shape`` with ``geoms`` (in the grid's CRS) burnt in: pixel centres
    inside (``all_touched=False``). ``transform`` places the mask's top-left pixel."""
    height, width = int(shape[0]), int(shape[1])
    return rasterize(
        ((g, 1) for g in geoms),
        out_shape=(height, width),
        transform=as_transform(transform),
        all_touched=False,
        dtype=np.uint8,
    ).astype(bool)


def no_overlap_error(
    geoms: np.ndarray,
    shape: tuple[int, int],
    transform=None,
    crs=None,
    *,
    source: str | Path | None = None,
) -> ConfigError:
    """The error for footprints of which none falls on the image, with both extents."""
    t = as_transform(transform)
    height, width = int(shape[0]), int(shape[1])
    icrs = as_crs(crs)
    cols, rows = np.array([0, width, width, 0]), np.array([0, 0, height, height])
    corners = np.column_stack([t.c + t.a * cols + t.b * rows, t.f + t.d * cols + t.e * rows])
    fb = shapely.total_bounds(geoms)
    return ConfigError(
        f"none of the {len(geoms)} footprints overlaps the image (footprints x {fb[0]:.6g}.."
        f"{fb[2]:.6g}, y {fb[1]:.6g}..{fb[3]:.6g}; image x {corners[:, 0].min():.6g}.."
        f"{corners[:, 0].max():.6g}, y {corners[:, 1].min():.6g}..{corners[:, 1].max():.6g}"
        f"{f' in {icrs}' if icrs is not None else ''})",
        source,
    )


def rasterize_footprints(
    geometries: Iterable,
    footprint_crs,
    shape: tuple[int, int],
    transform=None,
    crs=None,
    *,
    source: str | Path | None = None,
) -> np.ndarray:
    """A boolean mask of ``shape`` with the footprints burnt in (pixel centres inside;
    ``all_touched=False``), after reprojecting them to the image's ``crs``. Both CRSs None: the
    footprints are already in the image's geotransform coordinates (pixel coordinates without one).
    ``source`` (the footprint file) names the errors."""
    geoms = prepare_footprints(geometries, footprint_crs, crs, source=source)
    mask = burn_footprints(geoms, shape, transform)
    if not mask.any():
        raise no_overlap_error(geoms, shape, transform, crs, source=source)
    return mask
