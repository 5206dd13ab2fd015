"""Windowed prediction of georeferenced orthophotos (issue 14): same pixels as in memory,
georeferenced outputs on the input's grid, no data never roof, nothing partial left behind."""

from __future__ import annotations

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
torch = pytest.importorskip("torch")

from affine import Affine  # noqa: E402

from core.checkpoint import LoadedModel  # noqa: E402
from core.models import build_model  # noqa: E402
from core.orthophoto import predict_raster  # noqa: E402
from core.postprocess import to_mask  # noqa: E402
from core.progress import Progress, Stopped  # noqa: E402
from core.raster import decode_probability, open_raster  # noqa: E402
from core.synthetic import make_scene  # noqa: E402
from core.tiled_inference import array_reader, stream_probabilities  # noqa: E402

CRS = "EPSG:32633"
TRANSFORM = Affine(0.25, 0.0, 500_000.0, 0.0, -0.25, 5_000_000.0)


def _model(arch: str = "prescribed") -> LoadedModel:
    torch.manual_seed(0)
    model = build_model(arch).eval()
    return LoadedModel(
        model=model, arch=arch, arch_params={}, metadata={}, path=None, threshold=0.5
    )


def _geotiff(path, image, nodata=None, crs=CRS):
    h, w = image.shape[:2]
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=3,
        dtype="uint8",
        crs=crs,
        transform=TRANSFORM,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    return path


def _in_memory(loaded, image, tile, overlap):
    h, w = image.shape[:2]
    out = np.zeros((h, w), np.float32)
    for y0, strip in stream_probabilities(
        loaded.model,
        array_reader(image),
        h,
        w,
        torch.device("cpu"),
        None,
        tile=tile,
        overlap=overlap,
    ):
        out[y0 : y0 + len(strip)] = strip
    return out


@pytest.fixture(scope="module")
def scene():
    image, _mask = make_scene(1000, seed=3)
    return image[:700]  # 1000 x 700: tile edges everywhere with 256 px tiles


def test_windowed_equals_in_memory_and_keeps_the_grid(tmp_path, scene):
    loaded = _model()
    src = _geotiff(tmp_path / "ortho.tif", scene)
    events = []
    result = predict_raster(
        loaded,
        src,
        tmp_path / "out",
        tile=256,
        overlap=64,
        precision="fp32",
        probabilities=True,
        dilation=3,
        threshold=0.5,
        on_progress=events.append,
    )
    prob = _in_memory(loaded, scene, 256, 64)
    with rasterio.open(result.mask_path) as ds:
        assert ds.crs == rasterio.crs.CRS.from_string(CRS)
        assert ds.transform == TRANSFORM and (ds.width, ds.height) == (1000, 700)
        assert ds.profile["tiled"] and ds.profile["compress"].lower() == "deflate"
        assert ds.overviews(1)  # overviews for a GIS
        written = ds.read(1) > 0
    assert np.array_equal(written, to_mask(prob, 0.5, 3))
    with rasterio.open(result.probability_path) as ds:
        assert ds.crs == rasterio.crs.CRS.from_string(CRS) and ds.transform == TRANSFORM
        decoded = decode_probability(ds.read(1))
    assert np.abs(decoded - prob).max() <= 0.5 / 254 + 1e-6
    assert result.georeferenced and result.roof_fraction == pytest.approx(written.mean())
    assert all(isinstance(e, Progress) and e.unit == "pixels" for e in events)
    assert events[-1].done == events[-1].total == 1000 * 700


def test_no_data_is_never_roof(tmp_path, scene):
    image = scene.copy()
    image[:, :120] = 0  # a black collar, marked as no data
    image[:60] = 0
    src = _geotiff(tmp_path / "collar.tif", image, nodata=0)
    result = predict_raster(
        _model(),
        src,
        tmp_path / "out",
        tile=256,
        overlap=64,
        threshold=1e-4,
        dilation=5,
        precision="fp32",
    )  # all else roof
    with open_raster(result.mask_path) as out:
        rgb, valid = out.read()
    roof = rgb[..., 0] > 0
    assert not roof[:, :120].any() and not roof[:60].any()
    assert not valid[:, :120].any() and not valid[:60].any()
    assert roof[60:, 120:].all()


def test_a_stopped_prediction_leaves_nothing(tmp_path, scene):
    src = _geotiff(tmp_path / "ortho.tif", scene)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Stopped):
        predict_raster(
            _model(),
            src,
            tmp_path / "out",
            tile=256,
            overlap=64,
            probabilities=True,
            should_stop=stop,
        )
    assert (
        sorted(p.name for p in (tmp_path / "out").iterdir()) == []
        if (tmp_path / "out").exists()
        else True
    )


def test_cog_output_and_a_composite(tmp_path, scene):
    from core.raster import is_cloud_optimized

    src = _geotiff(tmp_path / "ortho.tif", scene[:300, :400])
    result = predict_raster(
        _model(), src, tmp_path / "out", tile=256, overlap=64, cog=True, composite_output=True
    )
    assert is_cloud_optimized(result.mask_path)
    assert result.composite_path is not None and result.composite_path.is_file()
