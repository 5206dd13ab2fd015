"""Orthophotos in the window: tiled view, map coordinates, predict visible area / whole
orthophoto (Stop leaves nothing), building polygons and their count and area."""

from __future__ import annotations

import time

import numpy as np
import pytest
import qimage2ndarray
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from core.postprocess import to_mask
from core.vector import vectorize
from rooftop_gui import raster_view
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings
from tests.factories import save_untrained_model

WIDTH, HEIGHT = 2000, 1500


def read_table(path) -> dict:
    """The features of a building file: ``{"count": n, field: values...}`` (pyogrio, no pandas)."""
    import pyogrio.raw

    meta, _fids, _geometry, fields = pyogrio.raw.read(path)
    table = {name: np.asarray(values) for name, values in zip(meta["fields"], fields, strict=True)}
    table["count"] = len(_geometry)
    return table


TRANSFORM = Affine(0.25, 0, 500_000, 0, -0.25, 5_000_000)
CRS = "EPSG:32633"


def _write_geotiff(path, data, overviews=()):
    """A tiled RGB GeoTIFF of ``data`` (3, HEIGHT, WIDTH): UTM 33N, 0.25 m pixels."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=WIDTH,
        height=HEIGHT,
        count=3,
        dtype="uint8",
        crs=CRS,
        transform=TRANSFORM,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        photometric="RGB",
    ) as ds:
        ds.write(data)
        if overviews:
            ds.build_overviews(list(overviews), Resampling.average)
    return path


@pytest.fixture
def geotiff(tmp_path):
    """A 2000 x 1500 RGB GeoTIFF (UTM 33N, 0.25 m pixels) with overviews 2, 4, 8."""
    path = tmp_path / "ortho.tif"
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (3, HEIGHT, WIDTH), dtype=np.uint8)
    data[:, 200:260, 300:380] = 250  # a bright roof
    return _write_geotiff(path, data, (2, 4, 8)), data


@pytest.fixture
def small_views(monkeypatch):
    """An overview of 512 px (a 1/4 of the test raster) and a cache of 6 tiles: small enough
    that full-resolution tiles are needed when zoomed in and the cache fills and evicts."""
    monkeypatch.setattr(raster_view, "OVERVIEW_MAX_SIDE", 512)
    monkeypatch.setattr(raster_view, "CACHE_BYTES", 6 * raster_view.TILE * raster_view.TILE * 4)


def _window(qtbot, tmp_path):
    win = MainWindow(settings=make_settings())
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    return win


def _wait_tiles(qtbot, source, timeout=20_000):
    qtbot.wait(30)  # the canvas asks for tiles from a 0 ms timer after a scroll or zoom
    qtbot.waitUntil(lambda: source.overview is not None, timeout=timeout)
    qtbot.waitUntil(lambda: not source.is_busy() and source.pending() == 0, timeout=timeout)


def _close(win):
    win.prediction.orthophoto.wait(60_000)
    win.prediction.wait_buildings()
    win.canvas.set_image(None)
    win.runner.wait_all(30_000)


def test_orthophoto_overview_then_tiles_in_a_bounded_cache(qtbot, tmp_path, geotiff, small_views):
    path, data = geotiff
    win = _window(qtbot, tmp_path)
    assert win.open_orthophoto(path)
    source = win.canvas.raster()
    qtbot.waitUntil(lambda: source.overview is not None, timeout=20_000)
    assert source.overview_factor == 4 and source.overview.width() == 500
    assert win.canvas.image_size() == (WIDTH, HEIGHT)
    assert win.canvas.image() is None  # no array of the whole image
    assert win.prediction.orthophoto.isVisibleTo(win.prediction)
    assert "UTM zone 33N" in win.prediction.orthophoto.info_label.text()
    qtbot.waitUntil(lambda: win.canvas.raster_item().painted > 0, timeout=5000)
    _wait_tiles(qtbot, source)
    # fitted: no full-resolution tile (the overview, or tiles decimated for the zoom)
    assert all(level > 0 for level, _ty, _tx in source.cache.keys())

    win.canvas.zoom_100()
    _wait_tiles(qtbot, source)
    full = [key for key in source.cache.keys() if key[0] == 0]
    assert full
    # a full-resolution tile holds the file's pixels
    level, ty, tx = full[0]
    x, y = tx * raster_view.TILE + 7, ty * raster_view.TILE + 11
    assert source.pixel_rgb(x, y) == tuple(int(v) for v in data[:, y, x])

    # pan across the whole raster: the cache stays within its bound, old tiles are evicted
    hbar, vbar = win.canvas.horizontalScrollBar(), win.canvas.verticalScrollBar()
    for fy in (0.0, 0.5, 1.0):
        for fx in (0.0, 0.5, 1.0):
            hbar.setValue(int(hbar.minimum() + fx * (hbar.maximum() - hbar.minimum())))
            vbar.setValue(int(vbar.minimum() + fy * (vbar.maximum() - vbar.minimum())))
            _wait_tiles(qtbot, source)
            assert source.cache.bytes <= source.cache.max_bytes
    assert source.cache.evicted > 0 and source.cache.peak_bytes <= source.cache.max_bytes

    # zoomed out to 1/2: tiles of level 1 (decimated by 2)
    win.canvas.set_zoom(0.5)
    _wait_tiles(qtbot, source)
    assert any(level == 1 for level, _ty, _tx in source.cache.keys())
    _close(win)


def test_status_bar_shows_map_coordinates_and_crs(qtbot, tmp_path, geotiff):
    path, _data = geotiff
    win = _window(qtbot, tmp_path)
    win.open_orthophoto(path)
    source = win.canvas.raster()
    qtbot.waitUntil(lambda: source.info is not None, timeout=20_000)
    win._cursor_moved(100, 40)
    text = win.map_label.text()
    assert win.map_label.isVisibleTo(win)
    assert "500 025.12" in text and "4 999 989.88" in text  # the pixel's centre, in metres
    assert "WGS 84 / UTM zone 33N" in text
    assert win.size_label.text() == f"{WIDTH} × {HEIGHT}"
    _close(win)


def test_raster_without_crs_says_pixel_coordinates(qtbot, tmp_path):
    path = tmp_path / "plain.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=300, height=200, count=3, dtype="uint8"
    ) as ds:
        ds.write(np.full((3, 200, 300), 90, np.uint8))
    win = _window(qtbot, tmp_path)
    win.open_orthophoto(path)
    qtbot.waitUntil(lambda: win.canvas.raster().info is not None, timeout=20_000)
    win._cursor_moved(10, 10)
    assert "pixel coordinates" in win.map_label.text()
    _close(win)


def _predict_visible_area(qtbot, tmp_path, path, model):
    """A window showing the orthophoto at ``path`` at 100 %, its visible area predicted by
    ``model``: ``(window, (x0, y0, w, h))``."""
    win = _window(qtbot, tmp_path)
    assert win.prediction.set_model(model)
    win.open_orthophoto(path)
    source = win.canvas.raster()
    qtbot.waitUntil(lambda: source.overview is not None, timeout=20_000)
    win.canvas.zoom_100()
    panel = win.prediction.orthophoto
    qtbot.waitUntil(panel.visible_button.isEnabled, timeout=5000)
    area = panel.visible_window()
    with qtbot.waitSignal(panel.window_predicted, timeout=120_000):
        assert panel.predict_visible() is not None
    assert panel.wait(60_000)
    return win, area


def test_predict_visible_area_overlays_a_prediction(qtbot, tmp_path, geotiff):
    path, _data = geotiff
    win, (x0, y0, w, h) = _predict_visible_area(
        qtbot, tmp_path, path, save_untrained_model(tmp_path)
    )
    prob = win.canvas.probability()
    assert prob.shape == (h, w) and win.canvas.probability_offset() == (x0, y0)
    shown = win.canvas.displayed_mask()
    assert np.array_equal(
        shown, to_mask(prob, win.canvas.state.threshold, win.canvas.state.dilation)
    )
    win._cursor_moved(x0 + 5, y0 + 5)
    assert f"p {prob[5, 5]:.2f}" in win.pixel_label.text()
    assert win.prediction.wait_buildings()
    assert win.prediction.buildings_label.text().startswith("Visible area: ")
    _close(win)


def test_predict_whole_orthophoto_writes_a_georeferenced_mask_and_stop_leaves_nothing(
    qtbot, tmp_path, geotiff
):
    path, _data = geotiff
    model = save_untrained_model(tmp_path)
    win = _window(qtbot, tmp_path)
    assert win.prediction.set_model(model)
    win.open_orthophoto(path)
    source = win.canvas.raster()
    qtbot.waitUntil(lambda: source.overview is not None, timeout=20_000)
    panel = win.prediction.orthophoto
    out = tmp_path / "out"
    out.mkdir()

    # Stop: nothing at the targets, no temporary folder left
    from rooftop_gui.orthophoto_panel import StripPreview

    strips_seen = []
    task = panel.predict_whole(out / "stopped.tif", probabilities=True, polygons=True)
    assert task is not None
    task.progress.connect(lambda e: isinstance(e, StripPreview) and strips_seen.append(e))
    qtbot.waitUntil(lambda: bool(strips_seen), timeout=120_000)  # stopped midway
    panel.stop()
    assert panel.wait(120_000)
    assert list(out.iterdir()) == []
    assert "nothing was written" in panel.rate_label.text()

    # the whole raster: a GeoTIFF on the input's grid, the probability raster, the buildings
    target = out / "mask.tif"
    with qtbot.waitSignal(panel.whole_done, timeout=300_000):
        panel.predict_whole(target, probabilities=True, polygons=True)
    assert panel.wait(60_000)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["mask.gpkg", "mask.tif", "mask_probability.tif"]
    with rasterio.open(target) as written, rasterio.open(path) as original:
        assert written.crs == original.crs
        assert written.transform == original.transform
        assert (written.width, written.height) == (original.width, original.height)
        mask = written.read(1)
    strips = win.canvas.mask_raster()
    assert strips is not None and strips.path == target  # the written mask is shown by tiles
    assert "Mpx" in panel.rate_label.text() or "Wrote" in panel.rate_label.text()
    count = read_table(out / "mask.gpkg")["count"]
    assert count == len(vectorize(mask > 0, TRANSFORM, CRS))
    qtbot.waitUntil(lambda: strips.info is not None, timeout=20_000)
    _close(win)


def test_whole_preview_is_drawn_as_strips_arrive(qtbot, tmp_path, geotiff):
    """The decimated preview of a whole prediction takes every strip (rows on its grid)."""
    from rooftop_gui.orthophoto_panel import StripPreview

    path, _data = geotiff
    win = _window(qtbot, tmp_path)
    win.open_orthophoto(path)
    qtbot.waitUntil(lambda: win.canvas.raster().info is not None, timeout=20_000)
    win.canvas.start_strip_preview(WIDTH, HEIGHT, 4)
    assert win.canvas.strip_preview().shape == (375, 500)
    win.canvas.add_strip_preview(10, np.ones((5, 500), np.uint8))
    preview = win.canvas.strip_preview()
    assert preview[10:15].all() and not preview[:10].any()
    assert isinstance(StripPreview(0, preview[:1]), StripPreview)
    _close(win)


def _known_probability(h: int = 300, w: int = 400) -> np.ndarray:
    """Two roofs: 40 x 40 px and 20 x 60 px (4-connected regions), the rest background."""
    prob = np.zeros((h, w), np.float32)
    prob[50:90, 60:100] = 0.9
    prob[200:220, 100:160] = 0.8
    return prob


def test_polygon_export_of_the_visible_area_matches_core_vectorize(qtbot, tmp_path, geotiff):
    path, _data = geotiff
    win = _window(qtbot, tmp_path)
    win.open_orthophoto(path)
    qtbot.waitUntil(lambda: win.canvas.raster().info is not None, timeout=20_000)
    win.layers.set_threshold(0.5)
    win.layers.set_dilation(False)
    x0, y0 = 800, 600
    win.canvas.set_window_probability(_known_probability(), x0, y0)
    win.prediction.update_buildings()
    assert win.prediction.wait_buildings()
    # 40 x 40 + 20 x 60 px of 0.25 m: 100 + 75 m²
    assert win.prediction.buildings_label.text() == "Visible area: 2 buildings · 175.0 m²"
    assert win.canvas.buildings_count() == 2
    target = tmp_path / "window.gpkg"
    task = win.prediction.export_buildings(target, "window")
    assert task is not None and task.wait(30_000)
    table = read_table(target)
    window_transform = TRANSFORM @ Affine.translation(x0, y0)
    expected = vectorize(win.canvas.displayed_mask(), window_transform, CRS)
    assert table["count"] == len(expected) == 2
    assert sorted(table["area_m2"].round(1)) == [75.0, 100.0]
    # the outlines lie on the roofs in raster pixels
    minx, miny, maxx, maxy = win.canvas._buildings_item.boundingRect().getCoords()
    assert (round(minx + 1), round(miny + 1)) == (x0 + 60, y0 + 50)
    _close(win)


def test_building_count_and_area_of_the_current_image(qtbot, tmp_path, tiny_dataset):
    win = _window(qtbot, tmp_path)
    win.open_dataset(tiny_dataset)
    win.layers.set_threshold(0.5)
    win.layers.set_dilation(False)
    win.browser.select("test", "00006.png")
    prob = np.zeros((64, 64), np.float32)
    prob[5:15, 5:15] = 1.0  # 100 px²
    prob[30:34, 40:60] = 1.0  # 80 px²
    prob[50, 50] = 1.0  # 1 px²
    win.canvas.set_probability(prob)
    win.prediction.update_buildings()
    assert win.prediction.wait_buildings()
    assert win.prediction.buildings_label.text() == "3 buildings · 181.0 px²"
    assert win.canvas.buildings_count() == 3
    win.prediction.outline_box.setChecked(False)
    assert not win.canvas.buildings_visible()
    win.prediction.outline_box.setChecked(True)
    target = tmp_path / "b.gpkg"
    task = win.prediction.export_buildings(target, "image")
    assert task.wait(30_000)
    table = read_table(target)
    assert table["count"] == len(vectorize(prob > 0.5)) == 3
    assert sorted(table["area_px"]) == [1.0, 80.0, 100.0]
    # a threshold change recounts
    win.layers.set_threshold(0.99)
    time.sleep(0.01)
    assert win.prediction.wait_buildings()
    assert win.prediction.buildings_label.text() == "3 buildings · 181.0 px²"
    _close(win)


def test_split_export_writes_one_file_per_image(qtbot, tmp_path, tiny_dataset):
    win = _window(qtbot, tmp_path)
    win.open_dataset(tiny_dataset)
    win.prediction.split_box.setCurrentIndex(win.prediction.split_box.findData("test"))
    samples = win.browser.samples("test")
    model = save_untrained_model(tmp_path)
    win.prediction.set_model(model)
    masks = {}
    for i, sample in enumerate(samples):
        prob = np.zeros((64, 64), np.float32)
        prob[2 : 10 + i, 2:10] = 1.0
        win.prediction.cache.put(win.prediction._key(sample), prob)
        masks[sample.name] = prob > 0.5
    out = tmp_path / "buildings"
    task = win.prediction.export_buildings(out, "split", ".gpkg")
    assert task.wait(30_000)
    for sample in samples:
        table = read_table(out / f"{sample.name.rsplit('.', 1)[0]}.gpkg")
        assert table["count"] == len(vectorize(masks[sample.name])) == 1
        assert float(table["area_px"][0]) == float(masks[sample.name].sum())
    _close(win)


def test_command_line_raster_argument_opens_the_orthophoto(qtbot, tmp_path, geotiff):
    path, _data = geotiff
    win = _window(qtbot, tmp_path)
    win.open_initial(path)
    assert win.canvas.raster() is not None and win.canvas.raster().path == path
    qtbot.waitUntil(lambda: win.canvas.raster().overview is not None, timeout=20_000)
    _close(win)


def test_a_raster_without_overviews_shows_its_overview_band_by_band(qtbot, tmp_path, small_views):
    """Without overviews of its own the decimated read decodes every block (30 s at 30,000 px):
    it is read in bands, each painted as it arrives, so the first shows after a fraction; the
    whole overview is kept, so the next opening shows it at once, until the file changes."""
    path = tmp_path / "plain.tif"
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (3, HEIGHT, WIDTH), dtype=np.uint8)
    _write_geotiff(path, data)
    win = _window(qtbot, tmp_path)
    assert win.open_orthophoto(path)
    source = win.canvas.raster()
    shown = []
    source.overview_ready.connect(lambda: shown.append(source.overview.copy()))
    with rasterio.open(path) as ds:
        bands = raster_view.overview_bands(HEIGHT, ds.block_shapes[0][0], 4)
    assert len(bands) >= 4
    qtbot.waitUntil(lambda: len(shown) >= len(bands), timeout=20_000)
    _wait_tiles(qtbot, source)
    qtbot.waitUntil(lambda: not source.is_busy(), timeout=20_000)
    # bands were shown before the whole (the first may come before the test listens)
    partial = [qimage2ndarray.alpha_view(image) for image in shown]
    partial = [a for a in partial if a[:4].all() and not a[-4:].any()]
    assert len(partial) >= len(bands) - 2
    whole = source.overview.copy()  # alive while its alpha is viewed
    assert qimage2ndarray.alpha_view(whole).all() and source.overview_factor == 4
    assert not source.overview_from_cache
    first = qimage2ndarray.rgb_view(whole).copy()

    # opened again: the kept overview, whole at once, the same pixels
    assert win.open_orthophoto(path)
    again = win.canvas.raster()
    qtbot.waitUntil(lambda: again.overview is not None and not again.is_busy(), timeout=20_000)
    assert again.overview_from_cache
    kept = again.overview.copy()
    assert np.array_equal(qimage2ndarray.rgb_view(kept), first)

    # the file changes: read afresh
    data[:, :200] = 0
    _write_geotiff(path, data)
    assert win.open_orthophoto(path)
    fresh = win.canvas.raster()
    qtbot.waitUntil(lambda: fresh.overview is not None and not fresh.is_busy(), timeout=20_000)
    assert not fresh.overview_from_cache
    changed = fresh.overview.copy()
    assert not qimage2ndarray.rgb_view(changed)[:50].any()
    _close(win)


@pytest.mark.parametrize("height,block,factor", [(1500, 256, 4), (30_000, 512, 15), (100, 512, 3)])
def test_overview_bands_cover_the_raster_on_whole_overview_rows(height, block, factor):
    bands = raster_view.overview_bands(height, block, factor)
    assert bands[0][0] == 0 and sum(rows for _, rows in bands) == height
    ends = [row + rows for row, rows in bands]
    assert ends[:-1] == [row for row, _ in bands[1:]]
    assert all(row % factor == 0 for row, _ in bands)
    assert bands[0][1] <= block + factor  # one row of blocks first: something shows at once
    assert max(rows for _, rows in bands) <= max(block, -(-height // 16)) + factor


def test_a_stretch_model_predicts_the_visible_area_with_the_whole_rasters_stretch(qtbot, tmp_path):
    from core.checkpoint import load_checkpoint
    from core.input_stretch import raster_stretch_table
    from core.predict import predict_probabilities
    from core.raster import open_raster

    # brighter from left to right: a window's own stretch is not the whole raster's
    rng = np.random.default_rng(0)
    ramp = np.linspace(20, 220, WIDTH)[None, None, :]
    data = np.clip(ramp + rng.integers(-20, 21, (3, HEIGHT, WIDTH)), 0, 255).astype(np.uint8)
    path = _write_geotiff(tmp_path / "ramp.tif", data, (2, 4, 8))
    model = save_untrained_model(tmp_path, metadata={"input_stretch": "percentile"})
    win, (x0, y0, w, h) = _predict_visible_area(qtbot, tmp_path, path, model)
    with open_raster(path) as raster:
        rgb, valid = raster.read_window(y0, x0, h, w)
    loaded = load_checkpoint(model)
    expected = predict_probabilities(loaded.model, rgb, stretch_table=raster_stretch_table(path))
    expected[~valid] = 0.0
    assert np.array_equal(win.canvas.probability(), expected)  # one stretch for the raster
    own = predict_probabilities(loaded.model, rgb)  # the window's own stretch differs
    assert not np.array_equal(own, expected)
    _close(win)
