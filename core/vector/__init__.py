"""Building polygons from roof masks, with areas, written to files a GIS opens. Qt-free, torch-free.

A mask is an intermediate; what a solar planner or GIS analyst hands on is one polygon per
building with its area. :func:`vectorize` turns a boolean roof mask into :class:`Building` s:

* One polygon per **4-connected** roof region, holes (courtyards) kept. Two roofs that touch only
  at a pixel corner are two buildings: such contact is nearly always two houses (or a mask
  artefact), and a polygon pinched to one point is not a valid simple polygon.
* Coordinates are the image's CRS coordinates (through its geotransform), or pixel coordinates
  (x = column, y = row, pixel corners on integers) when there is no geotransform.
* Areas and perimeters are measured in metres: in the image's CRS when it is projected (its
  linear unit converted to metres; Mercator and Web Mercator excepted, whose scale grows away from
  the equator), otherwise (a geographic CRS such as EPSG:4326, or Mercator) with each building
  reprojected to the WGS 84 UTM zone of its centroid. Without a CRS: px² and px, or m² and m when
  the ground sample distance ``gsd`` (m/px) is given (:attr:`BuildingSet.unit` says which). The
  perimeter is the length of every ring, holes included (GEOS/QGIS ``length``).
* ``simplify`` (m; px without CRS and gsd) simplifies outlines topology-preservingly (shapely
  ``simplify(preserve_topology=True)``) and ``regularize`` makes them right-angled
  (:func:`regularize_polygon`); both work in the metric frame above. ``min_area`` drops buildings
  whose final area is smaller. ``mean_probability`` is the mean of the probability map over the
  building's pixels (its finite values; None without a map).

:class:`StripVectorizer` does the same from a mask fed strip by strip (bounded memory for big
orthophotos): a building cut by strip edges comes out as one polygon, and the result equals
:func:`vectorize` of the whole mask exactly (polygons are built and merged in integer pixel
coordinates, cleaned to a canonical form, and only then placed on the map).

:func:`write_buildings` writes a GeoPackage (layer ``buildings``, the image's CRS) or an RFC 7946
GeoJSON (WGS 84 longitude/latitude, 7 decimals, about 1 cm) by the file's suffix, atomically;
:func:`read_footprints` reads polygons from a GeoPackage, GeoJSON or Shapefile, and
:func:`rasterize_footprints` burns them into a mask on an image's grid (for training labels).
Reprojection is PROJ's, through rasterio.
"""

from core.vector.files import (
    LAYER,
    READ_SUFFIXES,
    WRITE_SUFFIXES,
    rasterize_footprints,
    read_footprints,
    write_buildings,
)
from core.vector.polygons import Building, BuildingSet, StripVectorizer, vectorize
from core.vector.regularize import regularize_polygon

__all__ = [
    "Building",
    "BuildingSet",
    "LAYER",
    "READ_SUFFIXES",
    "StripVectorizer",
    "WRITE_SUFFIXES",
    "rasterize_footprints",
    "read_footprints",
    "regularize_polygon",
    "vectorize",
    "write_buildings",
]
