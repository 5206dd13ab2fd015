"""``rooftop predict`` on georeferenced orthophotos and with building polygons (issues 14, 15):
outputs on the input's grid, polygons whose areas agree with the mask, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
torch = pytest.importorskip("torch")
pyogrio = pytest.importorskip("pyogrio")

from affine import Affine  # noqa: E402
from PIL import Image  # noqa: E402

from core.checkpoint import LoadedModel  # noqa: E402
from core.cli import main  # noqa: E402
from core.errors import ConfigError, ImageReadError  # noqa: E402
from core.predict_files import PolygonOutput, predict_files  # noqa: E402
from core.synthetic import make_scene  # noqa: E402
from tests.factories import save_untrained_model  # noqa: E402

CRS = "EPSG:32633"
PIXEL = 0.3  # m
TRANSFORM = Affine(PIXEL, 0.0, 500_000.0, 0.0, -PIXEL, 5_000_000.0)


class RedIsRoof(torch.nn.Module):
    """Probability 0.9 where the red channel is bright, 0.1 elsewhere: predicts a mask drawn in
    red exactly, so outputs can be checked against the drawing."""

    size_multiple = 1

    def forward(self, x):
        p = 0.1 + 0.8 * (x[:, :1] > 0.5).float()
        return torch.log(p / (1 - p))


def _loaded() -> LoadedModel:
    return LoadedModel(
        model=RedIsRoof(), arch="test", arch_params={}, metadata={}, path=None, threshold=0.5
    )


@pytest.fixture(scope="module")
def roofs():
    _image, mask = make_scene(384, seed=5)
    return mask[:300, :350]  # roofs cut by tile and strip edges


def _write(path, mask, crs=CRS, transform=TRANSFORM, nodata=None):
    rgb = np.repeat((mask * 255).astype(np.uint8)[None], 3, axis=0)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=mask.shape[1],
        height=mask.shape[0],
        count=3,
        dtype="uint8",
        crs=crs,
        transform=transform,
        nodata=nodata,
        tiled=True,
        blockxsize=128,
        blockysize=128,
    ) as ds:
        ds.write(rgb)
    return path


def test_a_geotiff_gives_a_mask_and_buildings_on_its_grid(tmp_path, roofs):
    src = _write(tmp_path / "town.tif", roofs)
    (result,) = predict_files(
        _loaded(),
        [src],
        tmp_path / "out",
        tile=128,
        overlap=32,
        polygons=PolygonOutput(),
        probabilities=True,
    )
    assert result.mask_path == tmp_path / "out" / "town.tif" and result.georeferenced
    with rasterio.open(result.mask_path) as ds:
        assert ds.crs == rasterio.crs.CRS.from_string(CRS) and ds.transform == TRANSFORM
        assert (ds.width, ds.height) == (350, 300)
        assert np.array_equal(ds.read(1) > 0, roofs)
    assert result.probability_path.is_file()
    info = pyogrio.read_info(result.polygons_path)
    assert rasterio.crs.CRS.from_user_input(info["crs"]) == rasterio.crs.CRS.from_string(CRS)
    assert info["features"] == result.buildings > 10
    area = np.asarray(pyogrio.raw.read(result.polygons_path, columns=["area_m2"])[3][0])
    pixel_area = roofs.sum() * PIXEL * PIXEL
    assert abs(area.sum() - pixel_area) / pixel_area < 0.03  # default simplification
    assert result.roof_area == pytest.approx(area.sum())


def test_polygons_without_simplification_match_the_mask_within_1_percent(tmp_path, roofs):
    src = _write(tmp_path / "town.tif", roofs)
    (result,) = predict_files(
        _loaded(),
        [src],
        tmp_path / "out",
        tile=128,
        overlap=32,
        polygons=PolygonOutput(format="geojson", simplify=0),
    )
    data = json.loads(result.polygons_path.read_text())
    assert "crs" not in data  # RFC 7946: WGS 84 longitude/latitude
    lon, lat = np.asarray(data["features"][0]["geometry"]["coordinates"][0][0])
    assert 12 < lon < 18 and 40 < lat < 50  # UTM 33N, near 45 N
    areas = [f["properties"]["area_m2"] for f in data["features"]]
    pixel_area = roofs.sum() * PIXEL * PIXEL
    assert abs(sum(areas) - pixel_area) / pixel_area < 0.01


def test_a_png_still_gives_a_png_and_pixel_polygons(tmp_path, roofs):
    src = tmp_path / "tile.png"
    Image.fromarray(np.repeat((roofs * 255).astype(np.uint8)[..., None], 3, axis=2)).save(src)
    (result,) = predict_files(
        _loaded(), [src], tmp_path / "out", tile=128, overlap=32, polygons=PolygonOutput(simplify=0)
    )
    assert result.mask_path.suffix == ".png" and not result.georeferenced
    assert result.area_unit == "px" and result.roof_area == pytest.approx(roofs.sum())
    with pytest.raises(ConfigError, match="GeoJSON"):
        predict_files(_loaded(), [src], tmp_path / "o2", polygons=PolygonOutput(format="geojson"))


def test_a_grid_without_crs_works_with_a_warning(tmp_path, roofs):
    src = _write(tmp_path / "nocrs.tif", roofs, crs=None)
    (result,) = predict_files(_loaded(), [src], tmp_path / "out", tile=128, overlap=32)
    assert result.mask_path.suffix == ".tif" and "no CRS" in result.warnings[0]
    with rasterio.open(result.mask_path) as ds:
        assert ds.transform == TRANSFORM and ds.crs is None


def test_bad_orthophotos_get_one_line_and_leave_nothing(tmp_path, roofs, capsys):
    empty = _write(tmp_path / "empty.tif", np.zeros((64, 64), bool), nodata=0)
    with pytest.raises(ImageReadError, match="empty.tif.*no valid pixels"):
        predict_files(_loaded(), [empty], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # the folder made for it is removed again
    src = _write(tmp_path / "town.tif", roofs)
    data = src.read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    model = save_untrained_model(tmp_path)
    code = main(
        ["predict", "--model", str(model), "--out", str(tmp_path / "o"), str(tmp_path / "cut.tif")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cut.tif" in err[0]
    assert not (tmp_path / "o").exists()
    kept = tmp_path / "kept"  # a folder that was there before stays, empty or not
    kept.mkdir()
    with pytest.raises(ImageReadError):
        predict_files(_loaded(), [empty], kept)
    assert kept.is_dir()


def test_the_cli_predicts_an_orthophoto_with_polygons(tmp_path, roofs, capsys):
    src = _write(tmp_path / "town.tif", roofs)
    model = save_untrained_model(tmp_path)
    code = main(
        [
            "predict",
            "--model",
            str(model),
            "--out",
            str(tmp_path / "o"),
            "--polygons",
            "--cog",
            "--json",
            str(src),
        ]
    )
    assert code == 0
    (out,) = json.loads(capsys.readouterr().out)["outputs"]
    assert out["mask"].endswith("town.tif") and out["polygons"].endswith("town.gpkg")
    assert out["georeferenced"] and out["area_unit"] == "m2"
    with rasterio.open(out["mask"]) as ds:
        assert ds.crs == rasterio.crs.CRS.from_string(CRS) and ds.transform == TRANSFORM


def test_the_onnxruntime_engine_predicts_what_torch_predicts(tmp_path, roofs):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from core.raster import decode_probability

    model = save_untrained_model(tmp_path, arch="liteunet")
    src = _write(tmp_path / "town.tif", roofs)
    probs = {}
    for engine in ("torch", "onnxruntime"):
        (result,) = predict_files(
            model,
            [src],
            tmp_path / engine,
            tile=128,
            overlap=32,
            device="cpu",
            precision="fp32",
            probabilities=True,
            engine=engine,
        )
        with rasterio.open(result.probability_path) as ds:
            probs[engine] = decode_probability(ds.read(1))
    assert np.abs(probs["torch"] - probs["onnxruntime"]).max() <= 1 / 254 + 1e-6
    with pytest.raises(ConfigError, match="tta"):
        predict_files(model, [src], tmp_path / "x", engine="onnxruntime", tta=True)
