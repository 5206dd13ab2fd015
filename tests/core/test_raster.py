"""core.raster: windowed reading of georeferenced rasters and writing masks on their grid."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.io
import rasterio.shutil
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning

from core import raster, raster_writer
from core.errors import ConfigError, ImageReadError, ImageWriteError, RooftopError
from core.io import is_temp_file_name, read_image, scale_to_uint8, write_bytes_atomic
from core.raster import open_raster
from core.synthetic import make_scene

CRS = "EPSG:32633"
TRANSFORM = rasterio.Affine(0.3, 0.0, 500_000.0, 0.0, -0.3, 5_500_000.0)


def write_tif(
    path: Path,
    bands: np.ndarray,
    *,
    crs=CRS,
    transform=TRANSFORM,
    block=None,
    driver="GTiff",
    colorinterp=None,
    mask=None,
    **profile,
) -> Path:
    """A raster of ``bands`` (count, h, w), tiled in ``block`` pixels when given."""
    count, height, width = bands.shape
    options = dict(
        driver=driver,
        width=width,
        height=height,
        count=count,
        dtype=bands.dtype.name,
        crs=crs,
        transform=transform,
        **profile,
    )
    if block:
        options.update(tiled=True, blockxsize=block, blockysize=block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **options) as ds:
            if colorinterp is not None:  # before the pixels, or GTiff may not keep it
                ds.colorinterp = colorinterp
            ds.write(bands)
            if mask is not None:
                ds.write_mask(mask)
    return path


def scene_tif(tmp_path: Path, size: int = 256) -> tuple[Path, np.ndarray, np.ndarray]:
    image, mask = make_scene(size)
    path = write_tif(
        tmp_path / "scene.tif", np.moveaxis(image, -1, 0), block=128, compress="deflate"
    )
    return path, image, mask


def one_line_error(exc: BaseException, path: Path) -> str:
    text = str(exc)
    assert isinstance(exc, RooftopError)
    assert "\n" not in text
    assert text.startswith(str(path)), text
    return text


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ------------------------------------------------------------------------------------ reading
def test_scene_geotiff_reads_with_its_grid_and_writes_a_mask_on_it(tmp_path):
    path, image, mask = scene_tif(tmp_path)
    with open_raster(path) as src:
        assert (src.width, src.height, src.count) == (256, 256, 3)
        assert src.crs.to_epsg() == 32633 and src.is_georeferenced
        assert src.transform == TRANSFORM
        assert src.bands == (1, 2, 3) and src.dtype == "uint8" and src.nodata is None
        assert src.block_shape == (128, 128) and src.overview_factors() == []
        rgb, valid = src.read()
        np.testing.assert_array_equal(rgb, image)
        assert valid.all()
        out = raster_writer.write_mask_raster(tmp_path / "roofs.tif", src, mask)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == TRANSFORM
        assert (ds.width, ds.height, ds.count, ds.dtypes[0]) == (256, 256, 1, "uint8")
        assert ds.block_shapes[0] == (512, 512) and ds.compression.name == "deflate"
        assert ds.nodata is None
        values = ds.read(1)
        assert set(np.unique(values)) <= {0, 255}
        np.testing.assert_array_equal(values == 255, mask)
        assert (ds.dataset_mask() == 255).all()
    assert files_in(tmp_path) == {"scene.tif", "roofs.tif"}


def test_windows_across_tile_boundaries_reassemble_the_whole_read(tmp_path):
    rng = np.random.default_rng(1)
    bands = rng.integers(0, 256, (3, 200, 300), dtype=np.uint8)
    path = write_tif(tmp_path / "odd.tif", bands, block=64)
    win = 128
    with open_raster(path) as src:
        whole, whole_valid = src.read()
        np.testing.assert_array_equal(whole, np.moveaxis(bands, 0, -1))
        # windows from -64 to past the far edges: boundless on every side
        off = win
        canvas = np.full((200 + 3 * win, 300 + 3 * win, 3), 7, np.uint8)
        canvas_valid = np.ones(canvas.shape[:2], bool)
        covered = np.zeros(canvas_valid.shape, bool)
        for row in range(-64, 200 + 64, win):
            for col in range(-64, 300 + 64, win):
                rgb, valid = src.read_window(row, col, win, win)
                assert rgb.shape == (win, win, 3) and valid.shape == (win, win)
                where = (slice(row + off, row + off + win), slice(col + off, col + off + win))
                canvas[where], canvas_valid[where], covered[where] = rgb, valid, True
        inner = (slice(off, off + 200), slice(off, off + 300))
        assert covered[inner].all()
        np.testing.assert_array_equal(canvas[inner], whole)
        assert canvas_valid[inner].all() and whole_valid.all()
        outside = covered.copy()
        outside[inner] = False
        assert outside.sum() > 0 and not canvas_valid[outside].any()
        assert (canvas[outside] == 0).all()
        with pytest.raises(ValueError):
            src.read_window(150, 250, 128, 128, boundless=False)
        rgb, valid = src.read_window(-500, -500, 10, 10)  # wholly outside
        assert not valid.any() and not rgb.any()


def test_valid_is_false_on_nodata_alpha_internal_mask_and_outside(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.integers(1, 256, (3, 64, 80), dtype=np.uint8)
    data[:, :, :10] = 0  # a nodata collar
    data[:, 30, 40] = (255, 0, 0)  # pure red: only two bands equal nodata, still valid
    with open_raster(write_tif(tmp_path / "collar.tif", data, nodata=0)) as src:
        assert src.nodata == 0
        rgb, valid = src.read_window(-5, 0, 64, 80)
        assert not valid[:5].any() and not valid[5:, :10].any()
        assert valid[5:, 10:].all() and valid[35, 40]
        assert (rgb[~valid] == 0).all()

    alpha = np.full((64, 80), 255, np.uint8)
    alpha[:, 70:] = 0
    rgba = np.concatenate([data, alpha[None]])
    path = write_tif(
        tmp_path / "rgba.tif",
        rgba,
        colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha],
    )
    with open_raster(path) as src:
        assert src.bands == (1, 2, 3)
        _, valid = src.read_window(0, 0, 64, 90)
        np.testing.assert_array_equal(valid[:, :80], alpha == 255)
        assert not valid[:, 80:].any()

    inner = np.full((64, 80), 255, np.uint8)
    inner[50:] = 0
    with open_raster(write_tif(tmp_path / "masked.tif", data, mask=inner)) as src:
        _, valid = src.read()
        np.testing.assert_array_equal(valid, inner == 255)


def test_16_bit_four_band_scaling_is_the_same_per_window_and_whole(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 1500, (4, 200, 300), dtype=np.uint16)
    data[:3, 190:, 290:] = 4000  # 12-bit maximum in one corner only
    data[3] = 60000  # NIR: not one of the RGB bands
    path = write_tif(tmp_path / "rgbn16.tif", data, block=64)
    with open_raster(path) as src:
        assert src.count == 4 and src.bands == (1, 2, 3) and src.dtype == "uint16"
        assert src.scaling_range == (0, 4000)
        whole, _ = src.read()
        # read_image scales the first three channels of the whole file the same way
        np.testing.assert_array_equal(whole, read_image(path))
        np.testing.assert_array_equal(whole, scale_to_uint8(np.moveaxis(data[:3], 0, -1)))
        pieces = np.zeros_like(whole)
        for row in range(0, 200, 128):
            for col in range(0, 300, 128):
                rgb, _ = src.read_window(row, col, 128, 128)
                pieces[row : row + 128, col : col + 128] = rgb[: 200 - row, : 300 - col]
        np.testing.assert_array_equal(pieces, whole)
        low, _ = src.read_window(0, 0, 64, 64)  # its own maximum is < 1500, not 4000
        assert low.max() <= (1499 * 255 + 2047) // 4095
    with open_raster(path, bands=(4, 3, 2)) as src:
        assert src.bands == (4, 3, 2) and src.scaling_range == (0, 60000)
        rgb, _ = src.read_window(0, 0, 10, 10)
        assert (rgb[..., 0] == scale_to_uint8(np.array([60000], np.uint16))[0]).all()


def test_float_scaling_leaves_nodata_out_of_the_range(tmp_path):
    rng = np.random.default_rng(4)
    data = rng.random((3, 60, 70), dtype=np.float32) * 0.8
    data[:, :, :5] = -9999.0
    with open_raster(write_tif(tmp_path / "f.tif", data, nodata=-9999.0, block=32)) as src:
        assert src.scaling_range[0] == 0.0 and src.scaling_range[1] == pytest.approx(data.max())
        rgb, valid = src.read()
        assert not valid[:, :5].any() and valid[:, 5:].all()
        expected = scale_to_uint8(np.moveaxis(data[:, :, 5:], 0, -1))  # 0..1: times 255
        np.testing.assert_array_equal(rgb[:, 5:], expected)
        part, _ = src.read_window(10, 20, 16, 16)
        np.testing.assert_array_equal(part, rgb[10:26, 20:36])


def test_decimated_scaling_range_for_a_large_raster(tmp_path):
    data = np.full((3, 200, 300), 1000, np.uint16)
    data[:, ::4, ::4] = 3000
    path = write_tif(tmp_path / "big16.tif", data, block=64)
    with open_raster(path, stats_max_side=100) as src:  # "large": read 1/3 decimated
        high = src.scaling_range[1]
        assert high in (1000, 3000)
        rgb, _ = src.read_window(0, 0, 8, 8)
        assert rgb.max() <= 255
    with open_raster(path, stats_max_side=None) as src:  # every pixel
        assert src.scaling_range == (0, 3000)


def test_one_band_grey_is_replicated_like_read_image(tmp_path):
    grey = np.random.default_rng(5).integers(0, 256, (1, 40, 50), dtype=np.uint8)
    path = write_tif(tmp_path / "grey.tif", grey)
    with open_raster(path) as src:
        assert src.bands == (1,)
        rgb, valid = src.read()
        assert valid.all()
        np.testing.assert_array_equal(rgb, np.repeat(grey[0][..., None], 3, axis=2))
        np.testing.assert_array_equal(rgb, read_image(path))


def test_two_bands_grey_alpha_or_explicit_choice(tmp_path):
    grey = np.random.default_rng(6).integers(0, 256, (40, 50), dtype=np.uint8)
    alpha = np.where(np.arange(50) < 25, 255, 0).astype(np.uint8)[None].repeat(40, 0)
    path = write_tif(
        tmp_path / "ga.tif",
        np.stack([grey, alpha]),
        colorinterp=[ColorInterp.gray, ColorInterp.alpha],
    )
    with open_raster(path) as src:
        assert src.bands == (1,)
        rgb, valid = src.read()
        np.testing.assert_array_equal(valid, alpha == 255)
        np.testing.assert_array_equal(rgb[valid], np.repeat(grey[valid][:, None], 3, axis=1))

    two = write_tif(
        tmp_path / "two.tif",
        np.stack([grey, grey // 2]),
        colorinterp=[ColorInterp.undefined, ColorInterp.undefined],
    )
    with pytest.raises(ImageReadError) as info:
        open_raster(two)
    assert "bands=" in one_line_error(info.value, two)
    with open_raster(two, bands=(2,)) as src:
        np.testing.assert_array_equal(src.read()[0][..., 0], grey // 2)
    for bad in ((1, 2), (3,), (0, 1, 1)):
        with pytest.raises(ConfigError) as info:
            open_raster(two, bands=bad)
        one_line_error(info.value, two)


def test_palette_band_is_expanded(tmp_path):
    index = (np.arange(40 * 50) % 3).astype(np.uint8).reshape(1, 40, 50)
    path = tmp_path / "pal.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=50,
        height=40,
        count=1,
        dtype="uint8",
        crs=CRS,
        transform=TRANSFORM,
        photometric="palette",
    ) as ds:
        ds.write(index)
        ds.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 255, 0, 255), 2: (0, 0, 255, 255)})
    with open_raster(path) as src:
        rgb, valid = src.read()
    lut = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
    np.testing.assert_array_equal(rgb, lut[index[0]])
    assert valid.all()


def test_tiff_without_crs_and_plain_png_work_on_the_pixel_grid(tmp_path):
    image, mask = make_scene(96)
    path = write_tif(
        tmp_path / "nocrs.tif",
        np.moveaxis(image, -1, 0),
        crs=None,
        transform=rasterio.Affine.identity(),
    )
    with open_raster(path) as src:
        assert not src.is_georeferenced and src.crs is None
        assert src.transform == rasterio.Affine.identity()
        np.testing.assert_array_equal(src.read()[0], image)
        out = raster_writer.write_mask_raster(tmp_path / "nocrs_mask.tif", src, mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(out) as ds:
            assert ds.crs is None and ds.transform == rasterio.Affine.identity()
            np.testing.assert_array_equal(ds.read(1) == 255, mask)

    from core.io import write_image

    png = write_image(tmp_path / "plain.png", image)
    with open_raster(png) as src:
        assert not src.is_georeferenced and src.driver == "PNG"
        np.testing.assert_array_equal(src.read()[0], read_image(png))


def test_vrt_mosaic_and_jpeg2000(tmp_path):
    image, _ = make_scene(128)
    left = write_tif(tmp_path / "left.tif", np.moveaxis(image[:, :64], -1, 0))
    right = write_tif(
        tmp_path / "right.tif",
        np.moveaxis(image[:, 64:], -1, 0),
        transform=rasterio.Affine(0.3, 0.0, 500_000.0 + 64 * 0.3, 0.0, -0.3, 5_500_000.0),
    )
    with rasterio.open(left) as ds:
        srs = ds.crs.to_wkt()
    sources = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename>'
        f'<SourceBand>{band}</SourceBand><SrcRect xOff="0" yOff="0" xSize="64" ySize="128"/>'
        f'<DstRect xOff="{x}" yOff="0" xSize="64" ySize="128"/></SimpleSource>'
        for name, x in (("left.tif", 0), ("right.tif", 64))
        for band in [None]
    )
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}">'
        + sources.replace("<SourceBand>None</SourceBand>", f"<SourceBand>{b}</SourceBand>")
        + "</VRTRasterBand>"
        for b in (1, 2, 3)
    )
    t = TRANSFORM
    vrt = tmp_path / "mosaic.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="128" rasterYSize="128"><SRS>{srs}</SRS>'
        f"<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>"
        f"{bands}</VRTDataset>"
    )
    with open_raster(vrt) as src:
        assert src.driver == "VRT" and src.crs.to_epsg() == 32633 and src.transform == TRANSFORM
        np.testing.assert_array_equal(src.read_window(0, 32, 128, 64)[0], image[:, 32:96])
    assert right.exists()

    with rasterio.Env() as env:
        if "JP2OpenJPEG" not in env.drivers():
            pytest.skip("this GDAL has no JPEG 2000 driver")
    jp2 = tmp_path / "scene.jp2"
    rasterio.shutil.copy(left, jp2, driver="JP2OpenJPEG", REVERSIBLE="YES", QUALITY="100")
    with open_raster(jp2) as src:
        assert src.crs.to_epsg() == 32633
        np.testing.assert_array_equal(src.read()[0], image[:, :64])


def test_overview_read(tmp_path):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, (3, 200, 300), dtype=np.uint8)
    path = write_tif(tmp_path / "ovr.tif", data, block=64)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4])
    with open_raster(path) as src:
        assert src.overview_factors() == [2, 4]
        rgb, valid, factor = src.read_overview(100)
        assert factor == 3 and rgb.shape == (67, 100, 3) and valid.shape == (67, 100)
        assert valid.all()
        rgb, valid, factor = src.read_overview(1000)
        assert factor == 1
        np.testing.assert_array_equal(rgb, np.moveaxis(data, 0, -1))


# ------------------------------------------------------------------------------------ read errors
def test_read_errors_are_one_line_and_name_the_file(tmp_path):
    missing = tmp_path / "missing.tif"
    with pytest.raises(ImageReadError) as info:
        open_raster(missing)
    assert "not found" in one_line_error(info.value, missing)

    with pytest.raises(ImageReadError) as info:
        open_raster(tmp_path)
    one_line_error(info.value, tmp_path)

    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError) as info:
        open_raster(empty)
    assert "empty" in one_line_error(info.value, empty)

    text = tmp_path / "notes.tif"
    text.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageReadError) as info:
        open_raster(text)
    message = one_line_error(info.value, text)
    assert "not a raster" in message and message.count(str(text)) == 1


def test_truncated_tiff_fails_on_read_with_an_image_read_error(tmp_path):
    rng = np.random.default_rng(8)
    data = rng.integers(0, 256, (3, 256, 256), dtype=np.uint8)
    whole = write_tif(tmp_path / "whole.tif", data, block=128, compress="deflate")
    cog = tmp_path / "cut.tif"
    rasterio.shutil.copy(whole, cog, driver="COG", blocksize=128, compress="DEFLATE")
    cog.write_bytes(cog.read_bytes()[: cog.stat().st_size // 2])
    with open_raster(cog) as src:  # a COG's header comes first: it opens
        src.read_window(0, 0, 64, 64)  # the first tile is there
        with pytest.raises(ImageReadError) as info:
            src.read()
    message = one_line_error(info.value, cog)
    assert "truncated or corrupt" in message


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_unreadable_file(tmp_path, monkeypatch):
    path, _, _ = scene_tif(tmp_path, 64)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the check see what a user would
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode, **kw: Path(p) != path and real_access(p, mode, **kw)
        )
    try:
        with pytest.raises(ImageReadError) as info:
            open_raster(path)
        assert "permission" in one_line_error(info.value, path)
    finally:
        path.chmod(0o644)


def test_closed_source_refuses_reads(tmp_path):
    path, _, _ = scene_tif(tmp_path, 64)
    src = open_raster(path)
    src.close()
    assert src.closed
    with pytest.raises(ValueError):
        src.read_window(0, 0, 8, 8)


# ------------------------------------------------------------------------------------ writing
def test_cog_mask_has_overviews_tiles_and_its_no_data_mask(tmp_path):
    grid = {"width": 600, "height": 520, "crs": CRS, "transform": TRANSFORM}
    mask = np.zeros((520, 600), bool)
    mask[100:300, 200:400] = True
    valid = np.ones_like(mask)
    valid[:, :50] = False
    out = raster_writer.write_mask_raster(tmp_path / "roofs_cog.tif", grid, mask, valid, cog=True)
    assert raster.is_cloud_optimized(out)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == TRANSFORM
        assert (ds.width, ds.height) == (600, 520)
        assert ds.block_shapes[0] == (512, 512) and ds.compression.name == "deflate"
        assert ds.overviews(1) == [2, 4]
        values = ds.read(1)
        np.testing.assert_array_equal(values == 255, mask & valid)
        np.testing.assert_array_equal(ds.read_masks(1) == 255, valid)
        small = ds.read_masks(1, out_shape=(130, 150))  # from the mask's overview
        assert not small[:, :10].any() and small[:, 15:].all()
    assert files_in(tmp_path) == {"roofs_cog.tif"}

    plain = raster_writer.write_mask_raster(tmp_path / "roofs.tif", grid, mask, valid)
    assert not raster.is_cloud_optimized(plain)
    with rasterio.open(plain) as ds:
        assert ds.overviews(1) == [2, 4] and ds.block_shapes[0] == (512, 512)
        assert ds.tags(ns="rio_overview")["resampling"] == "nearest"


def test_probability_encoding(tmp_path):
    prob = np.array([[0.0, 0.5, 1.0, np.nan], [0.25, 2.0, -1.0, 0.1]], np.float32)
    valid = np.array([[True, True, True, True], [False, True, True, True]])
    grid = {"width": 4, "height": 2, "crs": CRS, "transform": TRANSFORM}
    for cog in (False, True):
        out = raster_writer.write_probability_raster(
            tmp_path / f"p{cog}.tif", grid, prob, valid, cog=cog
        )
        with rasterio.open(out) as ds:
            assert ds.nodata == 255 and ds.scales == (1 / 254,) and ds.dtypes[0] == "uint8"
            values = ds.read(1)
        np.testing.assert_array_equal(values, [[0, 127, 254, 255], [255, 254, 0, 25]])
        decoded = raster.decode_probability(values)
        assert np.isnan(decoded[0, 3]) and np.isnan(decoded[1, 0])
        assert abs(decoded[0, 1] - 0.5) <= 1 / 508
    with pytest.raises(ValueError):
        raster_writer.write_probability_raster(
            tmp_path / "int.tif", grid, np.zeros((2, 4), np.uint8)
        )
    assert not any(is_temp_file_name(n) for n in files_in(tmp_path))


def test_strips_in_any_order_and_temp_files_until_close(tmp_path):
    path, image, mask = scene_tif(tmp_path, 256)
    target = tmp_path / "strips.tif"
    with open_raster(path) as src:
        writer = raster_writer.RasterWriter(target, src, kind="mask", cog=True)
    temps = [n for n in files_in(tmp_path) if n != "scene.tif"]
    assert len(temps) == 2 and all(is_temp_file_name(n) for n in temps)  # COG: final + work
    for row in (200, 100, 0):
        writer.write_rows(row, mask[row : row + 100], np.ones((min(100, 256 - row), 256), bool))
    assert writer.rows_missing == 0
    assert writer.close() == target
    assert files_in(tmp_path) == {"scene.tif", "strips.tif"}
    with rasterio.open(target) as ds:
        np.testing.assert_array_equal(ds.read(1) == 255, mask)
        assert ds.overviews(1) == []  # 256 px: no overview needed


def test_missing_rows_exception_or_abort_leave_nothing(tmp_path):
    target = tmp_path / "t.tif"
    target.write_bytes(b"the old file")
    grid = {"width": 64, "height": 64, "crs": CRS, "transform": TRANSFORM}
    writer = raster_writer.RasterWriter(target, grid)
    writer.write_rows(0, np.ones((32, 64), bool))
    with pytest.raises(ValueError, match="never written"):
        writer.close()
    with pytest.raises(RuntimeError), raster_writer.RasterWriter(target, grid, cog=True) as w:
        w.write_rows(0, np.ones((64, 64), bool))
        raise RuntimeError("the job stopped")
    raster_writer.RasterWriter(target, grid).abort()
    with pytest.raises(ValueError):
        raster_writer.RasterWriter(target, grid).write_rows(60, np.ones((8, 64), bool))
    assert files_in(tmp_path) == {"t.tif"} and target.read_bytes() == b"the old file"
    with pytest.raises(ImageWriteError) as info:
        raster_writer.RasterWriter(tmp_path / "no" / "such.tif", grid)
    one_line_error(info.value, tmp_path / "no" / "such.tif")


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("stage", ["write", "cog"])
def test_disk_full_removes_temp_files_and_names_the_target(tmp_path, monkeypatch, stage):
    target = tmp_path / "full.tif"
    target.write_bytes(b"the old file")
    grid = {"width": 64, "height": 64, "crs": CRS, "transform": TRANSFORM}
    if stage == "write":
        monkeypatch.setattr(rasterio.io.DatasetWriter, "write", _no_space)
    else:
        monkeypatch.setattr(rasterio.shutil, "copy", _no_space)
    with pytest.raises(ImageWriteError) as info:
        raster_writer.write_mask_raster(target, grid, np.ones((64, 64), bool), cog=True)
    assert "No space left on device" in one_line_error(info.value, target)
    assert files_in(tmp_path) == {"full.tif"} and target.read_bytes() == b"the old file"


def test_file_mode_is_that_of_atomic_output(tmp_path):
    grid = {"width": 16, "height": 16, "crs": CRS, "transform": TRANSFORM}
    reference = write_bytes_atomic(tmp_path / "ref.bin", b"x")
    new = raster_writer.write_mask_raster(
        tmp_path / "new.tif", grid, np.zeros((16, 16), bool), cog=True
    )
    assert new.stat().st_mode == reference.stat().st_mode
    old_ref, old = tmp_path / "old_ref.bin", tmp_path / "old.tif"
    for p in (old_ref, old):
        p.write_bytes(b"old")
        p.chmod(0o640)
    write_bytes_atomic(old_ref, b"y")
    raster_writer.write_mask_raster(old, grid, np.zeros((16, 16), bool))
    assert old.stat().st_mode == old_ref.stat().st_mode


def test_overview_factors_for():
    assert raster.overview_factors_for(256, 100) == []
    assert raster.overview_factors_for(300, 200) == [2]
    assert raster.overview_factors_for(100_000, 20_000) == [2, 4, 8, 16, 32, 64, 128, 256, 512]


def test_module_is_torch_and_qt_free():
    code = "import sys, core.raster; print([m for m in ('torch', 'PySide6') if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_a_decimated_window_equals_the_same_window_of_the_overview(tmp_path):
    import rasterio
    from affine import Affine

    from core.raster import open_raster

    rng = np.random.default_rng(3)
    data = rng.integers(0, 255, (3, 256, 320), dtype=np.uint8)
    path = tmp_path / "d.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=320,
        height=256,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(1, 0, 0, 0, -1, 0),
    ) as ds:
        ds.write(data)
    with open_raster(path) as src:
        rgb, valid = src.read_decimated(64, 0, 128, 320, 4)
        assert rgb.shape == (32, 80, 3) and valid.all()
        whole, _valid, factor = src.read_overview(80)
        assert factor == 4 and np.array_equal(rgb, whole[16:48])
        full, _ = src.read_decimated(10, 20, 30, 40, 1)
        assert np.array_equal(full, np.moveaxis(data, 0, -1)[10:40, 20:60])
        with pytest.raises(ValueError, match="not inside"):
            src.read_decimated(250, 0, 20, 20, 2)
