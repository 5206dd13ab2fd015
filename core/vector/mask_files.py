"""Mask files to building files and footprint files to label files, in bounded memory.

* :func:`vectorize_mask_file` (``rooftop vectorize``): a mask (a GeoTIFF from ``rooftop predict``,
  or a PNG) to a GeoPackage or GeoJSON of buildings; a raster is read strip by strip and
  vectorised with :class:`core.vector.StripVectorizer`, pixels outside its valid data are not
  roof, and an optional probability raster gives each building its mean probability.
* :func:`rasterize_footprints_file` (``rooftop rasterize``): footprints (GeoPackage, GeoJSON,
  Shapefile) burnt into a label on an image's grid: a GeoTIFF mask (strip by strip) on the image's
  grid, or a PNG (0/255) of the image's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ConfigError
from core.progress import Progress, ProgressCallback, StopCheck, check_stop, report
from core.vector.files import (
    burn_footprints,
    no_overlap_error,
    prepare_footprints,
    read_footprints,
    write_buildings,
)
from core.vector.polygons import BuildingSet, StripVectorizer, vectorize

#: Rows read per strip (a multiple of the 512 px blocks our rasters are written in).
STRIP_ROWS = 1024
PNG_SUFFIXES = (".png",)


@dataclass(frozen=True)
class VectorizedFile:
    path: Path
    buildings: int
    total_area: float
    unit: str  # "m" (areas in m²) or "px"


def _raster_suffix(path: Path) -> bool:
    from core.raster import RASTER_SUFFIXES

    return path.suffix.lower() in RASTER_SUFFIXES


def vectorize_mask_file(
    mask_path: str | Path,
    out_path: str | Path,
    *,
    probability_path: str | Path | None = None,
    min_area: float = 0.0,
    simplify: float = 0.0,
    regularize: bool = False,
    gsd: float | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> VectorizedFile:
    """Write the buildings of the mask at ``mask_path`` (non-zero = roof) to ``out_path``."""
    mask_path, out_path = Path(mask_path), Path(out_path)
    if not _raster_suffix(mask_path):
        from core.io import read_mask

        if probability_path is not None:
            raise ConfigError(
                "a probability map comes with a GeoTIFF mask (rooftop predict "
                "--probabilities on an orthophoto)",
                probability_path,
            )
        mask = read_mask(mask_path)
        buildings = vectorize(
            mask, min_area=min_area, simplify=simplify, regularize=regularize, gsd=gsd
        )
        report(on_progress, Progress(mask.size, mask.size, mask_path.name, unit="pixels"))
        written = write_buildings(out_path, buildings)
        return VectorizedFile(written, len(buildings), float(buildings.total_area), buildings.unit)
    from core.raster import PROBABILITY_SCALE, open_raster

    with open_raster(mask_path, bands=(1,)) as mask_source:
        prob_source = open_raster(probability_path, bands=(1,)) if probability_path else None
        try:
            if prob_source is not None and (prob_source.width, prob_source.height) != (
                mask_source.width,
                mask_source.height,
            ):
                raise ConfigError(
                    f"the probability raster is {prob_source.width} x "
                    f"{prob_source.height}, the mask {mask_source.width} x "
                    f"{mask_source.height}",
                    probability_path,
                )
            width, height = mask_source.width, mask_source.height
            strips = StripVectorizer(
                width,
                mask_source.transform,
                mask_source.crs,
                height=height,
                min_area=min_area,
                simplify=simplify,
                regularize=regularize,
                gsd=gsd,
            )
            found = []
            for row in range(0, height, STRIP_ROWS):
                check_stop(should_stop, "vectorising")
                rows = min(STRIP_ROWS, height - row)
                rgb, valid = mask_source.read_window(row, 0, rows, width)
                prob = None
                if prob_source is not None:  # p * 254 where valid (255 = no data)
                    codes, known = prob_source.read_window(row, 0, rows, width)
                    prob = np.where(
                        known, codes[..., 0] / np.float32(PROBABILITY_SCALE), np.float32(np.nan)
                    )
                found.extend(strips.add_strip(row, (rgb[..., 0] > 0) & valid, prob))
                report(
                    on_progress,
                    Progress((row + rows) * width, height * width, mask_path.name, unit="pixels"),
                )
            found.extend(strips.finish())
        finally:
            if prob_source is not None:
                prob_source.close()
        buildings = BuildingSet(found, mask_source.crs, strips.unit)
    written = write_buildings(out_path, buildings)
    return VectorizedFile(written, len(buildings), float(buildings.total_area), buildings.unit)


@dataclass(frozen=True)
class RasterizedFile:
    path: Path
    footprints: int
    roof_fraction: float


def rasterize_footprints_file(
    image_path: str | Path,
    footprints_path: str | Path,
    out_path: str | Path,
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> RasterizedFile:
    """Burn the footprints of ``footprints_path`` into a label on the grid of ``image_path``:
    ``out_path`` ``.tif`` (a mask raster on the image's grid, strip by strip) or ``.png``."""
    image_path, out_path = Path(image_path), Path(out_path)
    geoms, footprint_crs = read_footprints(footprints_path)
    width, height, transform, crs, like = _grid(image_path)
    geoms = prepare_footprints(geoms, footprint_crs, crs, source=footprints_path)
    suffix = out_path.suffix.lower()
    if suffix in PNG_SUFFIXES:
        from core.io import write_mask

        mask = burn_footprints(geoms, (height, width), transform)
        if not mask.any():
            raise no_overlap_error(geoms, (height, width), transform, crs, source=footprints_path)
        write_mask(out_path, mask)
        report(on_progress, Progress(mask.size, mask.size, image_path.name, unit="pixels"))
        return RasterizedFile(out_path, len(geoms), float(mask.mean()))
    if not _raster_suffix(out_path):
        raise ConfigError("a label is written as .tif (on the image's grid) or .png", out_path)
    if like is None:
        raise ConfigError(
            "a GeoTIFF label needs a raster image (GeoTIFF, JPEG 2000, VRT...) to "
            "take its grid from; write a .png label for this image",
            image_path,
        )
    from affine import Affine

    from core.raster_writer import RasterWriter

    roof = 0
    with RasterWriter(out_path, like, kind="mask") as writer:
        for row in range(0, height, STRIP_ROWS):
            check_stop(should_stop, "rasterising")
            rows = min(STRIP_ROWS, height - row)
            strip = burn_footprints(geoms, (rows, width), transform @ Affine.translation(0, row))
            roof += int(strip.sum())
            writer.write_rows(row, strip)
            report(
                on_progress,
                Progress((row + rows) * width, height * width, image_path.name, unit="pixels"),
            )
        if roof == 0:
            raise no_overlap_error(geoms, (height, width), transform, crs, source=footprints_path)
    return RasterizedFile(out_path, len(geoms), roof / (width * height))


def _grid(image_path: Path):
    """``(width, height, transform, crs, like)`` of an image: a raster's own grid (``like`` its
    profile for a writer), or a plain image's size in pixel coordinates (``like`` None)."""
    if _raster_suffix(image_path):
        from core.raster import open_raster

        with open_raster(image_path) as source:
            return (source.width, source.height, source.transform, source.crs, dict(source.profile))
    from affine import Affine

    from core.io import image_size

    width, height = image_size(image_path)
    return width, height, Affine.identity(), None, None
