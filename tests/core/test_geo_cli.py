"""The geospatial commands (issue 15): vectorize, rasterize, generate --footprints, export-onnx,
run as a user runs them, with one-line errors for bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")

from affine import Affine  # noqa: E402
from scipy import ndimage  # noqa: E402

from core.cli import main  # noqa: E402
from core.raster_writer import write_mask_raster  # noqa: E402
from core.synthetic import make_scene  # noqa: E402

CRS = "EPSG:32633"
PIXEL = 0.3
TRANSFORM = Affine(PIXEL, 0.0, 500_000.0, 0.0, -PIXEL, 5_000_000.0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """An orthophoto of the synthetic scene, its roof mask as a GeoTIFF on the same grid."""
    folder = tmp_path_factory.mktemp("geo")
    image, mask = make_scene(320, seed=7)
    ortho = folder / "ortho.tif"
    with rasterio.open(
        ortho,
        "w",
        driver="GTiff",
        width=320,
        height=320,
        count=3,
        dtype="uint8",
        crs=CRS,
        transform=TRANSFORM,
    ) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    profile = {"width": 320, "height": 320, "crs": CRS, "transform": TRANSFORM}
    mask_tif = write_mask_raster(folder / "mask.tif", profile, mask)
    return folder, ortho, mask_tif, mask


def _run(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_vectorize_a_geotiff_mask(capsys, scene, tmp_path):
    _folder, _ortho, mask_tif, mask = scene
    code, out, err = _run(
        capsys, "vectorize", mask_tif, "--out", tmp_path / "b.gpkg", "--simplify", "0"
    )
    assert code == 0, err
    _labels, components = ndimage.label(mask)  # 4-connected, as the buildings
    assert out["buildings"] == components
    assert abs(out["roof_area"] - mask.sum() * PIXEL**2) / (mask.sum() * PIXEL**2) < 0.01
    info = pyogrio.read_info(tmp_path / "b.gpkg")
    assert rasterio.crs.CRS.from_user_input(info["crs"]) == rasterio.crs.CRS.from_string(CRS)


def test_footprints_to_label_and_back(capsys, scene, tmp_path):
    folder, ortho, mask_tif, mask = scene
    assert (
        _run(capsys, "vectorize", mask_tif, "--out", tmp_path / "b.geojson", "--simplify", "0")[0]
        == 0
    )
    # GeoJSON is WGS 84: rasterising reprojects back to the orthophoto's UTM grid
    code, out, err = _run(
        capsys,
        "rasterize",
        "--image",
        ortho,
        "--footprints",
        tmp_path / "b.geojson",
        "--out",
        tmp_path / "label.tif",
    )
    assert code == 0, err
    with rasterio.open(tmp_path / "label.tif") as ds:
        assert ds.crs == rasterio.crs.CRS.from_string(CRS) and ds.transform == TRANSFORM
        back = ds.read(1) > 0
    assert _iou(back, mask) > 0.98
    code, out, err = _run(
        capsys,
        "rasterize",
        "--image",
        ortho,
        "--footprints",
        tmp_path / "b.geojson",
        "--out",
        tmp_path / "label.png",
    )
    assert code == 0 and out["footprints"] > 0


def test_generate_a_dataset_from_an_orthophoto_and_footprints(capsys, scene, tmp_path):
    _folder, ortho, mask_tif, mask = scene
    assert _run(capsys, "vectorize", mask_tif, "--out", tmp_path / "b.gpkg")[0] == 0
    code, out, err = _run(
        capsys,
        "generate",
        "--image",
        ortho,
        "--footprints",
        tmp_path / "b.gpkg",
        "--out",
        tmp_path / "ds",
        "--patch",
        "128:0.5",
        "--resize",
        "0",
    )
    assert code == 0, err
    assert out["train"] > 0 and out["test"] > 0
    labels = list((tmp_path / "ds" / "train" / "label").glob("*.png"))
    assert labels and any(np.asarray(__import__("PIL.Image").Image.open(p)).any() for p in labels)


def test_bad_footprints_get_one_line(capsys, scene, tmp_path):
    _folder, ortho, _mask_tif, _mask = scene
    far = tmp_path / "far.geojson"
    far.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [
                                    [100.0, 10.0],
                                    [100.001, 10.0],
                                    [100.001, 10.001],
                                    [100.0, 10.001],
                                    [100.0, 10.0],
                                ]
                            ],
                        },
                    }
                ],
            }
        )
    )
    (tmp_path / "junk.gpkg").write_bytes(b"not a geopackage")
    for footprints, words in (
        (far, "none of the 1 footprints overlaps"),
        (tmp_path / "junk.gpkg", "junk.gpkg"),
    ):
        code = main(
            [
                "rasterize",
                "--image",
                str(ortho),
                "--footprints",
                str(footprints),
                "--out",
                str(tmp_path / "l.tif"),
            ]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and words in err[0]
        assert not (tmp_path / "l.tif").exists()
    code = main(["generate", "--image", str(ortho), "--out", str(tmp_path / "x")])
    assert code == 2 and "--label" in capsys.readouterr().err


def test_export_onnx_from_the_command_line(capsys, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from tests.factories import save_untrained_model

    model = save_untrained_model(tmp_path)
    code, out, err = _run(
        capsys,
        "export-onnx",
        model,
        "--out",
        tmp_path / "m.onnx",
        "--tile",
        "256",
        "--resolution",
        "30",
    )
    assert code == 0, err
    assert out["metadata"]["model_type"] == "Segmentor" and out["metadata"]["resolution"] == 30
    assert (tmp_path / "m.onnx").stat().st_size > 10_000
