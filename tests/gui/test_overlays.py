"""The canvas's fast overlay maths equals core.postprocess (what you see is what you export)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.postprocess import dilate, to_mask
from rooftop_gui import overlays


@pytest.mark.parametrize("kernel", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 31])
def test_max_filter_equals_core_dilate(kernel):
    rng = np.random.default_rng(kernel)
    prob = rng.random((37, 53)).astype(np.float32)
    assert np.array_equal(overlays.max_filter(prob, kernel), dilate(prob, kernel))
    codes = (prob > 0.7).view(np.uint8)
    assert np.array_equal(
        overlays.max_filter(codes, kernel),
        ndimage.maximum_filter(codes, kernel, mode="nearest") if kernel > 1 else codes,
    )


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.93])
@pytest.mark.parametrize("kernel", [0, 3, 5, 8])
def test_dilating_the_thresholded_mask_equals_to_mask(threshold, kernel):
    prob = np.random.default_rng(3).random((64, 48)).astype(np.float32)
    shown = overlays.max_filter((prob >= threshold).view(np.uint8), kernel).view(bool)
    assert np.array_equal(shown, to_mask(prob, threshold, kernel))


def test_heat_codes_commute_with_dilation():
    prob = np.random.default_rng(4).random((40, 40)).astype(np.float32)
    assert np.array_equal(
        overlays.max_filter(overlays.heat_codes(prob), 5), overlays.heat_codes(dilate(prob, 5))
    )
    assert overlays.heat_codes(np.array([[0.0, 1.0]], np.float32)).tolist() == [[0, 255]]


def test_error_codes():
    pred = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    assert overlays.error_codes(pred, truth).tolist() == [[3, 1, 2, 0]]
    assert len(overlays.heat_table()) == 256


# ----------------------------------------------------------------------------- issue 12: overlays
# that read at a glance: the label as an outline, a colour-blind-safe error map, a heat-map scale


def reference_outline(mask: np.ndarray, width: int = overlays.OUTLINE_WIDTH) -> np.ndarray:
    """Mask pixels with a non-mask pixel (outside the image counts) within ``width``."""
    padded = np.pad(mask, width, constant_values=False)
    eroded = ndimage.binary_erosion(padded, np.ones((2 * width + 1,) * 2, bool))
    return mask & ~eroded[width:-width, width:-width]


def blobs(shape=(70, 90), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.binary_opening(ndimage.gaussian_filter(rng.random(shape), 3) > 0.5, iterations=1)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_outline_codes_are_the_inner_boundary(width):
    mask = blobs()
    outline = overlays.outline_codes(mask.view(np.uint8), width)
    assert outline.dtype == np.uint8 and outline.shape == mask.shape
    assert np.array_equal(outline.astype(bool), reference_outline(mask, width))
    roof = np.zeros((20, 30), bool)
    roof[:8, 10:20] = True  # a roof cut by the image edge is closed along the edge
    outline = overlays.outline_codes(roof.view(np.uint8), width).astype(bool)
    inner = np.zeros_like(roof)
    inner[width : 8 - width, 10 + width : 20 - width] = True
    assert np.array_equal(outline, roof & ~inner)


def test_outline_region_equals_the_whole_outline_cut():
    mask = blobs(seed=1)
    whole = overlays.outline_codes(mask.view(np.uint8))
    rng = np.random.default_rng(1)
    for _ in range(40):
        x0, y0 = (int(v) for v in rng.integers(-5, 95, 2))
        x1, y1 = x0 + int(rng.integers(0, 30)), y0 + int(rng.integers(0, 30))
        part = overlays.outline_region(mask.view(np.uint8), x0, y0, x1, y1)
        rows = slice(min(70, max(0, y0)), min(70, max(0, y1)))
        cols = slice(min(90, max(0, x0)), min(90, max(0, x1)))
        assert np.array_equal(part, whole[rows, cols])


@pytest.fixture
def canvas(qtbot):
    from rooftop_gui.canvas import ImageCanvas

    view = ImageCanvas()
    qtbot.addWidget(view)
    view.resize(320, 260)
    rng = np.random.default_rng(7)
    view.set_image(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8))
    return view


def alpha_and_rgb(image):
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_ARGB32)
    argb = (
        np.array(image.constBits(), np.uint8)
        .reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4]
        .reshape(image.height(), image.width(), 4)
    )
    return argb[..., 3], argb[..., [2, 1, 0]]  # little-endian BGRA


def test_the_label_layer_draws_only_the_boundary(canvas):
    mask = blobs(seed=2)
    canvas.set_label(mask)
    assert canvas.label_outline()
    alpha, rgb = alpha_and_rgb(canvas._label_item.rendered())
    drawn = alpha > 0
    assert np.array_equal(drawn, reference_outline(mask))
    assert drawn.any() and (mask & ~drawn).any()  # the inside is left clear
    assert (rgb[drawn] == overlays.LABEL_COLOR).all() and (alpha[drawn] == 255).all()
    # what tools and tests read back is still the mask itself
    assert np.array_equal(canvas.shown_overlay_codes("label").astype(bool), mask)
    # the outline sits above the prediction fill and the error map, and reads at 50 % opacity
    assert canvas._label_item.zValue() > max(
        canvas._pred_item.zValue(), canvas._error_item.zValue()
    )
    canvas.set_opacity(0.5)
    assert canvas._label_item.opacity() == 1.0
    canvas.set_opacity(0.2)
    assert canvas._label_item.opacity() == pytest.approx(0.4)


def test_a_filled_label_is_still_available(canvas):
    mask = blobs(seed=3)
    canvas.set_label(mask)
    canvas.set_label_outline(False)
    alpha, _rgb = alpha_and_rgb(canvas._label_item.rendered())
    assert np.array_equal(alpha > 0, mask) and not canvas.label_outline()
    canvas.set_label_outline(True)
    alpha, _rgb = alpha_and_rgb(canvas._label_item.rendered())
    assert np.array_equal(alpha > 0, reference_outline(mask))


def test_edits_redraw_the_outline_incrementally_and_exactly(canvas, monkeypatch):
    from PySide6.QtCore import QRect

    mask = blobs(seed=4)
    canvas.set_label(mask)
    item = canvas._label_item
    uploads = []
    real = item._argb
    monkeypatch.setattr(item, "_argb", lambda codes: uploads.append(codes.shape) or real(codes))
    computed = []
    real_region = overlays.outline_region

    def region(codes, x0, y0, x1, y1, width=overlays.OUTLINE_WIDTH):
        computed.append((x1 - x0) * (y1 - y0))
        return real_region(codes, x0, y0, x1, y1, width)

    monkeypatch.setattr(overlays, "outline_region", region)
    rng = np.random.default_rng(4)
    for i in range(30):
        x0, y0 = (int(v) for v in rng.integers(-3, 68, 2))
        w, h = (int(v) for v in rng.integers(4, 12, 2))
        mask[max(0, y0) : y0 + h, max(0, x0) : x0 + w] = i % 3 != 0
        canvas.update_label_region(QRect(x0, y0, w, h))
        margin = overlays.OUTLINE_WIDTH
        assert computed[-1] <= (w + 2 * margin) * (h + 2 * margin)  # the rectangle + margin only
    assert uploads == [(1, 256)]  # the look-up row once; never the whole layer again
    alpha, _rgb = alpha_and_rgb(item.rendered())
    assert np.array_equal(alpha > 0, reference_outline(mask))


# Machado, Oliveira and Fernandes (2009), severity 1.0, on linear RGB.
CVD = {
    "normal": np.eye(3),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
}
BRICK_REDS = [(165, 70, 55), (140, 60, 50), (185, 95, 75), (120, 50, 45)]


def _linear(rgb):
    c = np.asarray(rgb, np.float64) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab_of_linear(lin):
    xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    ) @ np.clip(lin, 0, 1)
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen(rgb, vision):
    return _lab_of_linear(CVD[vision] @ _linear(rgb))


@pytest.mark.parametrize("vision", list(CVD))
def test_error_colours_stay_apart_for_colour_blind_eyes(vision):
    colours = {"TP": overlays.TP_COLOR, "FP": overlays.FP_COLOR, "FN": overlays.FN_COLOR}
    names = list(colours)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            distance = np.linalg.norm(seen(colours[a], vision) - seen(colours[b], vision))
            assert distance > 45, (a, b, vision, distance)
        for roof in BRICK_REDS:  # no error colour looks like a brick-red roof
            assert np.linalg.norm(seen(colours[a], vision) - seen(roof, vision)) > 40, (a, roof)
    # the label outline and the prediction fill never blend into one hue
    assert (
        np.linalg.norm(seen(overlays.LABEL_COLOR, vision) - seen(overlays.PREDICTION_COLOR, vision))
        > 100
    )


def test_palette_is_blue_orange_pink_and_the_tables_use_it():
    import colorsys

    def hue(rgb):
        return colorsys.rgb_to_hsv(*(np.asarray(rgb) / 255))[0] * 360

    assert 200 < hue(overlays.TP_COLOR) < 250  # blue: roof found
    assert 25 < hue(overlays.FP_COLOR) < 50  # orange: predicted, no roof
    assert 290 < hue(overlays.FN_COLOR) < 340  # pink/magenta: roof missed
    assert 45 < hue(overlays.LABEL_COLOR) < 65  # yellow outline
    assert 185 < hue(overlays.PREDICTION_COLOR) < 210  # sky-blue fill
    table = overlays.error_table()
    assert table[0] >> 24 == 0
    for code, rgb in ((1, overlays.FP_COLOR), (2, overlays.FN_COLOR), (3, overlays.TP_COLOR)):
        assert table[code] == overlays.argb(*rgb)


def test_heat_stops_follow_the_heat_table():
    stops = overlays.heat_stops()
    assert stops[0][0] == 0.0 and stops[-1][0] == 1.0 and len(stops) == 11
    table = overlays.heat_table()
    for value, rgb in stops:
        code = table[min(255, int(value * 255))]
        assert (
            np.abs(np.subtract(rgb, ((code >> 16) & 255, (code >> 8) & 255, code & 255))).max() <= 2
        )


def test_the_heat_map_scale_appears_with_the_heat_map(qtbot, tmp_path, canvas):
    from PySide6.QtCore import QSettings

    from rooftop_gui.layers_panel import LayersPanel

    panel = LayersPanel(canvas, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    assert not panel.heat_legend.isVisible()
    panel.heatmap_action.setChecked(True)
    assert panel.heat_legend.isVisible() and canvas.state.heatmap
    # the bar shows the heat map's colours from 0 (left) to 1 (right)
    image = panel.heat_legend.grab().toImage()
    bar = panel.heat_legend.bar_rect()
    ratio = image.devicePixelRatio()
    y = int((bar.top() + bar.height() / 2) * ratio)
    for value in (0.0, 0.5, 1.0):
        x = int((bar.left() + 1 + value * (bar.width() - 2)) * ratio)
        pixel = image.pixelColor(x, y)
        expected = overlays.heat_color(value)
        assert (
            max(
                abs(pixel.red() - expected[0]),
                abs(pixel.green() - expected[1]),
                abs(pixel.blue() - expected[2]),
            )
            <= 40
        ), (value, pixel.getRgb(), expected)
    panel.heatmap_action.setChecked(False)
    assert not panel.heat_legend.isVisible()
    # the setting is restored: a panel made while the heat map is on shows the scale at once
    panel.heatmap_action.setChecked(True)
    again = LayersPanel(canvas, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert not again.heat_legend.isHidden()


def test_the_error_map_is_not_hidden_under_the_label_outline(canvas):
    mask = blobs(seed=5)
    canvas.set_label(mask)
    canvas.set_layer_visible("error", True)
    assert canvas._label_item.isVisible()  # an empty error map hides nothing
    canvas.set_probability(np.roll(mask, 3, axis=1).astype(np.float32))
    assert canvas.shown_overlay_codes("error") is not None
    assert not canvas._label_item.isVisible() and canvas.is_layer_visible("label")
    canvas.set_layer_visible("error", False)
    assert canvas._label_item.isVisible()
    canvas.set_label_outline(False)  # a filled label stays under the error map, as before
    canvas.set_layer_visible("error", True)
    assert canvas._label_item.isVisible()
    assert canvas._label_item.zValue() < canvas._error_item.zValue()
