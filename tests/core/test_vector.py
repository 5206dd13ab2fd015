"""Building polygons from masks (core.vector): areas, validity, holes, files, footprints, strips."""

from __future__ import annotations

import json
import math

import numpy as np
import pyogrio
import pyogrio.errors
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize

from core.errors import ConfigError, ImageReadError, ImageWriteError
from core.synthetic import make_scene
from core.vector import (
    BuildingSet,
    StripVectorizer,
    rasterize_footprints,
    read_footprints,
    regularize_polygon,
    vectorize,
    write_buildings,
)
from core.vector.crs import reproject

UTM = "EPSG:32633"
T = Affine(0.3, 0, 500000, 0, -0.3, 5_000_000)
PIXEL_AREA = 0.09


@pytest.fixture(scope="module")
def scene_mask():
    return make_scene(256, seed=3)[1]


@pytest.fixture(scope="module")
def scene_buildings(scene_mask):
    return vectorize(scene_mask, T, UTM)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def right_angled(polygon) -> bool:
    d = np.diff(np.asarray(polygon.exterior.coords), axis=0)
    d /= np.linalg.norm(d, axis=1)[:, None]
    return bool(np.abs(np.sum(d * np.roll(d, -1, axis=0), axis=1)).max() < 1e-6)


def burn(polygon, shape=(200, 200), transform=T):
    return rasterize([(polygon, 1)], out_shape=shape, transform=transform).astype(bool)


# --- vectorize -------------------------------------------------------------------------------


def test_areas_are_roof_pixels_times_pixel_area(scene_mask, scene_buildings):
    bs = scene_buildings
    assert len(bs) > 5 and bs.unit == "m" and bs.crs == CRS.from_string(UTM)
    assert [b.id for b in bs] == list(range(1, len(bs) + 1))
    assert bs.total_area == pytest.approx(scene_mask.sum() * PIXEL_AREA, rel=0.01)
    for b in bs:
        assert b.area_m2 == pytest.approx(b.pixels * PIXEL_AREA, rel=1e-9)
        assert b.perimeter_m > 0 and b.mean_probability is None
    assert shapely.is_valid(bs.geometries).all()
    minx, miny, maxx, maxy = shapely.total_bounds(bs.geometries)
    assert 500000 <= minx < maxx <= 500000 + 256 * 0.3
    assert 5_000_000 - 256 * 0.3 <= miny < maxy <= 5_000_000


def test_simplify_keeps_area_within_3_percent(scene_mask, scene_buildings):
    simple = vectorize(scene_mask, T, UTM, simplify=0.5)
    assert len(simple) == len(scene_buildings)
    assert simple.total_area == pytest.approx(scene_mask.sum() * PIXEL_AREA, rel=0.03)
    assert shapely.is_valid(simple.geometries).all()
    assert (
        shapely.get_num_coordinates(simple.geometries).sum()
        < shapely.get_num_coordinates(scene_buildings.geometries).sum() / 2
    )


def test_geometries_of_a_noisy_mask_are_valid():
    mask = np.random.default_rng(0).random((64, 64)) < 0.55
    for kwargs in ({}, {"simplify": 0.5}, {"regularize": True}):
        bs = vectorize(mask, T, UTM, **kwargs)
        assert len(bs) > 0 and shapely.is_valid(bs.geometries).all(), kwargs


def test_ring_roof_keeps_its_hole():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    mask[15:25, 15:25] = False
    (b,) = vectorize(mask, T, UTM)
    assert len(b.geometry.interiors) == 1
    assert b.area_m2 == pytest.approx(mask.sum() * PIXEL_AREA)
    assert b.perimeter_m == pytest.approx((4 * 30 + 4 * 10) * 0.3)


def test_roofs_touching_only_at_a_corner_are_two_buildings():
    mask = np.zeros((10, 10), bool)
    mask[1:4, 1:4] = True
    mask[4:7, 4:7] = True
    assert len(vectorize(mask)) == 2
    mask[4, 3] = True  # an edge contact joins them
    assert len(vectorize(mask)) == 1


def test_pixel_units_without_crs_and_metres_with_gsd():
    mask = np.zeros((20, 30), bool)
    mask[2:12, 5:25] = True
    (b,) = vectorize(mask)
    assert vectorize(mask).unit == "px" and vectorize(mask).crs is None
    assert (b.area_m2, b.perimeter_m) == (200.0, 60.0)
    assert b.geometry.bounds == (5.0, 2.0, 25.0, 12.0)  # x = column, y = row
    with_gsd = vectorize(mask, gsd=0.5)
    assert with_gsd.unit == "m"
    assert (with_gsd[0].area_m2, with_gsd[0].perimeter_m) == (50.0, 30.0)
    assert len(vectorize(mask, gsd=0.5, min_area=51)) == 0


def test_mean_probability_is_the_mean_inside_each_building():
    mask = np.zeros((10, 20), bool)
    mask[1:5, 1:5] = True
    mask[1:5, 10:15] = True
    prob = np.zeros((10, 20))
    prob[1:5, 1:5] = 0.6
    prob[1:5, 10:15] = np.linspace(0.5, 1.0, 5)
    prob[0, :] = 1.0  # outside every building: no influence
    bs = vectorize(mask, probability=prob)
    assert [b.mean_probability for b in bs] == pytest.approx([0.6, 0.75])


def test_min_area_drops_small_buildings():
    mask = np.zeros((50, 50), bool)
    mask[5:25, 5:25] = True  # 400 px = 36 m²
    mask[30:33, 30:33] = True  # 9 px = 0.81 m²
    assert len(vectorize(mask, T, UTM)) == 2
    (big,) = vectorize(mask, T, UTM, min_area=1.0)
    assert big.id == 1 and big.area_m2 == pytest.approx(36.0)
    with pytest.raises(ConfigError, match="min_area"):
        vectorize(mask, T, UTM, min_area=-1)


def test_geographic_image_is_measured_in_utm():
    house = shapely.box(500030, 4_999_960, 500048, 4_999_972)  # 18 m x 12 m = 216 m²
    (in_utm,) = vectorize(burn(house), T, UTM)
    lonlat = reproject(np.array([house]), CRS.from_string(UTM), CRS.from_epsg(4326))[0]
    lon0, lat1 = lonlat.bounds[0] - 0.0002, lonlat.bounds[3] + 0.0002
    geo = Affine(0.3 / 78_900, 0, lon0, 0, -0.3 / 111_150, lat1)  # about 0.3 m at 45° N
    (in_degrees,) = vectorize(burn(lonlat, transform=geo), geo, "EPSG:4326")
    assert in_utm.area_m2 == pytest.approx(216, rel=0.01)
    assert in_degrees.area_m2 == pytest.approx(in_utm.area_m2, rel=0.01)
    assert in_degrees.perimeter_m == pytest.approx(in_utm.perimeter_m, rel=0.02)
    assert in_degrees.geometry.bounds[0] == pytest.approx(15.0, abs=0.01)  # lon/lat kept


def test_web_mercator_image_is_measured_in_utm_not_in_its_own_metres():
    house = shapely.box(500030, 4_999_960, 500048, 4_999_972)
    merc = reproject(np.array([house]), CRS.from_string(UTM), CRS.from_epsg(3857))[0]
    grid = Affine(0.3, 0, merc.bounds[0] - 10, 0, -0.3, merc.bounds[3] + 10)
    (b,) = vectorize(burn(merc, (150, 150), grid), grid, "EPSG:3857")
    assert b.area_m2 == pytest.approx(216, rel=0.02)  # its own area is about 2x at 45° N


def test_projected_crs_in_feet_gives_square_metres():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    grid = Affine(1.0, 0, 300000, 0, -1.0, 200000)  # one US survey foot per pixel
    (b,) = vectorize(mask, grid, "EPSG:2263")
    assert b.area_m2 == pytest.approx(100 * 0.3048006096**2, rel=1e-6)


# --- regularize --------------------------------------------------------------------------------

SHAPES = {
    "rectangle": shapely.box(-20, -12, 20, 12),
    "L": shapely.Polygon([(-20, -15), (20, -15), (20, 0), (0, 0), (0, 15), (-20, 15)]),
    "U": shapely.Polygon(
        [(-20, -15), (20, -15), (20, 15), (10, 15), (10, 0), (-10, 0), (-10, 15), (-20, 15)]
    ),
}


@pytest.mark.parametrize("angle", [0, 17, 30, 45, 71])
@pytest.mark.parametrize("name", list(SHAPES))
def test_regularized_outlines_are_right_angled_and_keep_their_area(name, angle):
    true = shapely.affinity.translate(
        shapely.affinity.rotate(SHAPES[name], angle, origin=(0, 0)), 500030, 4_999_970
    )
    (b,) = vectorize(burn(true), T, UTM, regularize=True)
    g = b.geometry
    assert g.is_valid and right_angled(g)
    assert len(g.exterior.coords) - 1 == len(SHAPES[name].exterior.coords) - 1
    assert b.area_m2 == pytest.approx(true.area, rel=0.10)
    assert shapely.symmetric_difference(g, true).area < 0.05 * true.area
    edge = np.diff(np.asarray(g.exterior.coords)[:2], axis=0)[0]
    turn = (math.degrees(math.atan2(edge[1], edge[0])) - angle) % 90
    assert min(turn, 90 - turn) < 2.0


def test_regularize_on_the_demo_scene(scene_mask, scene_buildings):
    reg = vectorize(scene_mask, T, UTM, regularize=True)
    assert len(reg) == len(scene_buildings)
    assert shapely.is_valid(reg.geometries).all()
    assert reg.total_area == pytest.approx(scene_buildings.total_area, rel=0.10)
    big = [b for b in reg if b.area_m2 > 20]
    assert big and sum(right_angled(b.geometry) for b in big) >= 0.8 * len(big)


def test_regularize_polygon_without_a_dominant_direction_is_valid():
    circle = shapely.Point(0, 0).buffer(10, 64)
    out = regularize_polygon(circle, 0.5)
    assert out.is_valid and out.area == pytest.approx(circle.area, rel=0.25)


# --- strips --------------------------------------------------------------------------------------


def strips(mask, height, probability=None, **kwargs):
    sv = StripVectorizer(mask.shape[1], T, UTM, height=mask.shape[0], **kwargs)
    out, batches = [], []
    for row in range(0, mask.shape[0], height):
        prob = None if probability is None else probability[row : row + height]
        batches.append(sv.add_strip(row, mask[row : row + height], prob))
        out += batches[-1]
    out += sv.finish()
    return out, batches


@pytest.mark.parametrize("height", [1, 2, 7, 16, 50, 256])
def test_strips_equal_the_whole_mask(scene_mask, height):
    prob = np.random.default_rng(1).random(scene_mask.shape)
    whole = vectorize(scene_mask, T, UTM, probability=prob)
    parts, _ = strips(scene_mask, height, prob)
    assert len(parts) == len(whole)

    def key(b):
        return shapely.to_wkb(shapely.normalize(b.geometry))

    a, w = sorted(parts, key=key), sorted(whole, key=key)
    assert [key(b) for b in a] == [key(b) for b in w]
    for x, y in zip(a, w, strict=True):
        assert (x.pixels, x.area_m2, x.perimeter_m) == pytest.approx(
            (y.pixels, y.area_m2, y.perimeter_m)
        )
        assert x.mean_probability == pytest.approx(y.mean_probability)
    assert sorted(b.id for b in parts) == list(range(1, len(parts) + 1))


def test_strips_with_simplify_and_regularize_equal_the_whole_mask(scene_mask):
    for kwargs in ({"simplify": 0.5}, {"regularize": True}, {"min_area": 5.0}):
        whole = vectorize(scene_mask, T, UTM, **kwargs)
        parts, _ = strips(scene_mask, 13, **kwargs)
        assert sorted(b.area_m2 for b in parts) == pytest.approx(sorted(b.area_m2 for b in whole))


@pytest.mark.parametrize("height", [1, 4, 10])
def test_buildings_cut_by_strip_edges_are_one_polygon(height):
    mask = np.zeros((40, 40), bool)
    mask[3:17, 2:10] = True  # a plain block across edges
    mask[5:30, 14:18] = True  # a U: two legs that meet at the bottom
    mask[5:30, 26:30] = True
    mask[26:30, 14:30] = True
    mask[32:39, 2:12] = True  # a ring whose hole spans an edge
    mask[34:37, 5:9] = False
    parts, _ = strips(mask, height)
    assert len(parts) == 3
    by_size = sorted(parts, key=lambda b: b.pixels)
    assert [b.pixels for b in by_size] == [7 * 10 - 12, 14 * 8, 2 * 25 * 4 + 4 * 16 - 4 * 8]
    assert all(b.geometry.geom_type == "Polygon" and b.geometry.is_valid for b in parts)
    assert len(by_size[0].geometry.interiors) == 1
    for b in parts:
        assert b.area_m2 == pytest.approx(b.pixels * PIXEL_AREA)


def test_finished_buildings_are_emitted_at_once():
    mask = np.zeros((30, 10), bool)
    mask[2:6, 2:8] = True
    mask[12:28, 2:8] = True
    sv = StripVectorizer(10, T, UTM)
    assert sv.add_strip(0, mask[:5]) == []  # still touching the strip's last row
    (first,) = sv.add_strip(5, mask[5:10])
    assert first.id == 1 and first.pixels == 24
    assert sv.add_strip(10, mask[10:20]) == []
    (second,) = sv.add_strip(20, mask[20:30]) + sv.finish()
    assert second.id == 2 and second.pixels == 16 * 6


def test_strips_must_follow_each_other():
    sv = StripVectorizer(10, height=20)
    sv.add_strip(0, np.zeros((5, 10), bool))
    with pytest.raises(ValueError, match="expected row 5"):
        sv.add_strip(6, np.zeros((5, 10), bool))
    with pytest.raises(ValueError, match=r"\(rows, 10\)"):
        sv.add_strip(5, np.zeros((5, 9), bool))
    with pytest.raises(ValueError, match="5 of 20 rows"):
        sv.finish()


# --- files -------------------------------------------------------------------------------------


def test_geopackage_is_in_the_image_crs(tmp_path, scene_mask):
    prob = np.where(scene_mask, 0.8, 0.1)
    bs = vectorize(scene_mask, T, UTM, probability=prob)
    path = write_buildings(tmp_path / "roofs.gpkg", bs)
    info = pyogrio.read_info(path)
    assert CRS.from_user_input(info["crs"]) == CRS.from_string(UTM)
    assert info["layer_name"] == "buildings" and info["features"] == len(bs)
    assert list(info["fields"]) == ["id", "area_m2", "perimeter_m", "mean_probability"]
    _, _, wkb, fields = pyogrio.raw.read(path)
    assert fields[1] == pytest.approx([b.area_m2 for b in bs])
    assert fields[3] == pytest.approx(0.8)
    assert shapely.equals(shapely.from_wkb(wkb), bs.geometries).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roofs.gpkg"]  # no temporary left


def test_geojson_is_rfc7946_wgs84_lon_lat(tmp_path, scene_buildings):
    path = write_buildings(tmp_path / "roofs.geojson", scene_buildings)
    doc = json.loads(path.read_text())
    assert "crs" not in doc and len(doc["features"]) == len(scene_buildings)
    coords = np.concatenate(
        [np.asarray(r) for f in doc["features"] for r in f["geometry"]["coordinates"]]
    )
    lon, lat = coords[:, 0], coords[:, 1]
    assert (np.abs(lon) <= 180).all() and (np.abs(lat) <= 90).all()
    assert np.allclose(lon, 15.0, atol=0.01) and np.allclose(lat, 45.15, atol=0.01)
    assert CRS.from_user_input(pyogrio.read_info(path)["crs"]) == CRS.from_epsg(4326)
    props = doc["features"][0]["properties"]
    assert props["mean_probability"] is None and props["area_m2"] > 0


def test_pixel_buildings_write_pixel_fields_and_not_geojson(tmp_path):
    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    bs = vectorize(mask)
    path = write_buildings(tmp_path / "px.gpkg", bs)
    assert list(pyogrio.read_info(path)["fields"])[1:3] == ["area_px", "perimeter_px"]
    with pytest.raises(ConfigError, match="no CRS"):
        write_buildings(tmp_path / "px.geojson", bs)
    with pytest.raises(ConfigError, match=r"px\.kml.*\.gpkg"):
        write_buildings(tmp_path / "px.kml", bs)
    empty = write_buildings(tmp_path / "empty.gpkg", BuildingSet([], CRS.from_string(UTM)))
    assert pyogrio.read_info(empty)["features"] == 0


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path, monkeypatch, scene_buildings
):
    target = tmp_path / "roofs.gpkg"
    target.write_bytes(b"old")

    def broken(path, *args, **kwargs):
        open(path, "wb").write(b"half")
        raise pyogrio.errors.DataSourceError("disk full")

    monkeypatch.setattr(pyogrio.raw, "write", broken)
    with pytest.raises(ImageWriteError, match="roofs.gpkg.*disk full"):
        write_buildings(target, scene_buildings)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["roofs.gpkg"]


# --- footprints ----------------------------------------------------------------------------------


def test_vectorized_polygons_rasterize_back_to_the_mask(tmp_path, scene_mask, scene_buildings):
    back = rasterize_footprints(scene_buildings.geometries, UTM, scene_mask.shape, T, UTM)
    assert iou(back, scene_mask) > 0.98
    for name in ("roofs.geojson", "roofs.gpkg"):  # through files, GeoJSON reprojected twice
        geoms, crs = read_footprints(write_buildings(tmp_path / name, scene_buildings))
        assert len(geoms) == len(scene_buildings)
        assert iou(rasterize_footprints(geoms, crs, scene_mask.shape, T, UTM), scene_mask) > 0.98


def test_footprints_in_another_crs_are_reprojected():
    house = shapely.box(500010, 4_999_970, 500040, 4_999_990)
    lonlat = reproject(np.array([house]), CRS.from_string(UTM), CRS.from_epsg(4326))
    mask = rasterize_footprints(lonlat, "EPSG:4326", (120, 120), T, UTM)
    assert iou(mask, burn(house, (120, 120))) > 0.98 and mask.sum() > 5000


def test_footprints_not_over_the_image_are_a_one_line_error():
    far = np.array([shapely.box(600000, 4_000_000, 600010, 4_000_010)])
    with pytest.raises(ConfigError, match="none of the 1 footprints overlaps") as err:
        rasterize_footprints(far, UTM, (100, 100), T, UTM, source="roofs.gpkg")
    assert "\n" not in str(err.value) and str(err.value).startswith("roofs.gpkg: ")


def test_footprints_and_image_must_both_have_a_crs_or_neither():
    box = np.array([shapely.box(2, 2, 8, 8)])
    with pytest.raises(ConfigError, match="footprints have no CRS"):
        rasterize_footprints(box, None, (10, 10), T, UTM)
    with pytest.raises(ConfigError, match="image has no CRS"):
        rasterize_footprints(box, UTM, (10, 10), None, None)
    assert rasterize_footprints(box, None, (10, 10)).sum() == 36  # both in pixel coordinates


def test_read_a_shapefile(tmp_path):
    geoms = np.array([shapely.box(500000, 4_999_990, 500010, 5_000_000)])
    path = tmp_path / "roofs.shp"
    pyogrio.raw.write(
        path, shapely.to_wkb(geoms), [np.array([1])], ["id"], geometry_type="Polygon", crs=UTM
    )
    read, crs = read_footprints(path)
    assert crs == CRS.from_string(UTM) and shapely.equals(read, geoms).all()


@pytest.mark.parametrize(
    "content, reason",
    [(b"not a geopackage", "not a readable footprint"), (b"", "empty"), (None, "not found")],
)
def test_unreadable_footprint_files_are_a_one_line_error(tmp_path, content, reason):
    path = tmp_path / "roofs.gpkg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as err:
        read_footprints(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    with pytest.raises(ImageReadError, match="footprint file type"):
        read_footprints(tmp_path / "roofs.txt")
