"""Display controls for the canvas: layer toggles, heat map, opacity, threshold, dilation.

Every toggle is a checkable QAction with a shortcut (L, P, H, E, D; T for the strokes, Q for
the uncertainty layer of :mod:`rooftop_gui.stroke_layers`) so the main window can put the same
actions in its View menu and toolbar; the panel's check boxes mirror them.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QLinearGradient, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from rooftop_gui import overlays
from rooftop_gui.canvas import ImageCanvas, LayerState
from rooftop_gui.resources import icon
from rooftop_gui.settings import get_bool, get_float, get_int
from rooftop_gui.stroke_layers import extra_layers


def _swatch(rgb: tuple[int, int, int]) -> QLabel:
    label = QLabel()
    label.setFixedSize(12, 12)
    label.setStyleSheet(f"background: rgb{tuple(rgb)}; border-radius: 2px;")
    return label


def _outline_swatch(rgb: tuple[int, int, int]) -> QLabel:
    """The label layer's swatch: a square outline, as the layer is drawn."""
    label = QLabel()
    label.setFixedSize(12, 12)
    label.setStyleSheet(
        f"background: transparent; border: 2px solid rgb{tuple(rgb)}; border-radius: 2px;"
    )
    return label


class HeatLegend(QWidget):
    """The heat map's colour scale: its colour ramp from probability 0 to 1, with ticks."""

    TICKS = (0.0, 0.5, 1.0)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("heatLegend")
        self.setToolTip("Heat-map colours: the predicted probability of a roof, from 0 to 1")
        self.setMinimumWidth(120)
        self.setFixedHeight(12 + self.fontMetrics().height() + 2)

    def bar_rect(self) -> QRectF:
        margin = self.fontMetrics().horizontalAdvance("0.5") / 2 + 1
        return QRectF(margin, 1, max(1.0, self.width() - 2 * margin), 10)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        bar = self.bar_rect()
        gradient = QLinearGradient(bar.left(), 0, bar.right(), 0)
        for value, rgb in overlays.heat_stops():
            gradient.setColorAt(value, QColor(*rgb))
        painter.fillRect(bar, gradient)
        painter.setPen(self.palette().color(self.foregroundRole()))
        metrics = self.fontMetrics()
        for value in self.TICKS:
            x = bar.left() + value * bar.width()
            painter.drawLine(round(x), round(bar.bottom()), round(x), round(bar.bottom()) + 2)
            text = f"{value:g}"
            width = metrics.horizontalAdvance(text)
            painter.drawText(round(x - width / 2), round(bar.bottom()) + 2 + metrics.ascent(), text)
        painter.end()


def _key(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("shortcutKey")
    label.setToolTip(f"Shortcut: {text}")
    return label


class LayersPanel(QWidget):
    """Binds to an :class:`ImageCanvas`; persists its state in ``settings`` under ``display/``."""

    state_changed = Signal()  # threshold / dilation changed: what export would write changed

    def __init__(
        self, canvas: ImageCanvas, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("layersPanel")
        self.canvas = canvas
        self.settings = settings

        def action(text: str, key: str, tip: str, icon_name: str) -> QAction:
            act = QAction(icon(icon_name), text, self)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.setToolTip(f"{tip} ({key})")
            act.setStatusTip(tip)
            return act

        self.label_action = action("&Label", "L", "Show the label mask", "label")
        self.prediction_action = action("&Prediction", "P", "Show the prediction", "prediction")
        self.heatmap_action = action(
            "&Heat map", "H", "Show the prediction as a probability heat map", "heatmap"
        )
        self.error_action = action(
            "&Error map", "E", "Show true positives, false positives and false negatives", "errors"
        )
        self.dilation_action = action(
            "&Dilation", "D", "Dilate the probability map (max-pool) before the threshold", "dilate"
        )
        self.strokes_action = action(
            "&Strokes",
            "T",
            "Show the strokes (partial labels): roof yellow, background violet",
            "stroke-roof",
        )
        self.uncertainty_action = action(
            "&Uncertainty",
            "Q",
            "Show where the model doubts (probability close to the threshold)",
            "uncertainty",
        )
        self.extra = extra_layers(canvas)

        # widgets
        self.label_box = QCheckBox("Label")
        self.prediction_box = QCheckBox("Prediction")
        self.heatmap_box = QCheckBox("as heat map")
        self.heat_legend = HeatLegend()
        self.error_box = QCheckBox("Error map")
        self.strokes_box = QCheckBox("Strokes")
        self.uncertainty_box = QCheckBox("Uncertainty")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity_value = QLabel()
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(1, 99)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.01, 0.99)
        self.threshold_spin.setSingleStep(0.01)
        self.threshold_spin.setDecimals(2)
        self.dilation_box = QCheckBox("Dilation")
        self.kernel = QSpinBox()
        self.kernel.setRange(2, 63)
        self.kernel.setSuffix(" px")
        self.kernel.setToolTip("Kernel size of the max-pool dilation (the original used 5)")
        for widget, act in (
            (self.label_box, self.label_action),
            (self.prediction_box, self.prediction_action),
            (self.heatmap_box, self.heatmap_action),
            (self.error_box, self.error_action),
            (self.dilation_box, self.dilation_action),
            (self.strokes_box, self.strokes_action),
            (self.uncertainty_box, self.uncertainty_action),
        ):
            widget.setToolTip(act.toolTip())
            widget.toggled.connect(act.setChecked)
            act.toggled.connect(widget.setChecked)

        layers = QGridLayout()
        layers.setHorizontalSpacing(8)
        layers.addWidget(_outline_swatch(overlays.LABEL_COLOR), 0, 0)
        layers.addWidget(self.label_box, 0, 1)
        layers.addWidget(_key("L"), 0, 2)
        layers.addWidget(_swatch(overlays.PREDICTION_COLOR), 1, 0)
        layers.addWidget(self.prediction_box, 1, 1)
        layers.addWidget(_key("P"), 1, 2)
        layers.addWidget(self.heatmap_box, 2, 1)
        layers.addWidget(_key("H"), 2, 2)
        layers.addWidget(self.heat_legend, 3, 1, 1, 2)  # shown while the heat map is on
        layers.addWidget(_swatch(overlays.TP_COLOR), 4, 0)
        layers.addWidget(self.error_box, 4, 1)
        layers.addWidget(_key("E"), 4, 2)
        legend = QHBoxLayout()
        legend.setSpacing(4)
        for rgb, text in (
            (overlays.TP_COLOR, "true pos."),
            (overlays.FP_COLOR, "false pos."),
            (overlays.FN_COLOR, "false neg."),
        ):
            legend.addWidget(_swatch(rgb))
            caption = QLabel(text)
            caption.setObjectName("muted")
            legend.addWidget(caption)
            legend.addSpacing(6)
        legend.addStretch(1)
        layers.addLayout(legend, 5, 1, 1, 2)
        strokes_swatch = QHBoxLayout()
        strokes_swatch.setSpacing(1)
        strokes_swatch.addWidget(_swatch(overlays.STROKE_ROOF_COLOR))
        strokes_swatch.addWidget(_swatch(overlays.STROKE_BACKGROUND_COLOR))
        layers.addLayout(strokes_swatch, 6, 0)
        layers.addWidget(self.strokes_box, 6, 1)
        layers.addWidget(_key("T"), 6, 2)
        layers.addWidget(_swatch(overlays.UNCERTAINTY_COLOR), 7, 0)
        layers.addWidget(self.uncertainty_box, 7, 1)
        layers.addWidget(_key("Q"), 7, 2)
        layers.setColumnStretch(1, 1)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(self.opacity, 1)
        opacity_row.addWidget(self.opacity_value)
        form.addRow("Opacity", opacity_row)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold, 1)
        threshold_row.addWidget(self.threshold_spin)
        form.addRow("Threshold", threshold_row)
        dilation_row = QHBoxLayout()
        dilation_row.addWidget(self.dilation_box)
        dilation_row.addWidget(self.kernel)
        dilation_row.addStretch(1)
        form.addRow("", dilation_row)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setObjectName("separator")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(layers)
        layout.addWidget(line)
        layout.addLayout(form)
        layout.addStretch(1)

        self._load_state()
        # wiring (after loading, so loading does not write settings back)
        self.label_action.toggled.connect(lambda on: self._layer("label", on))
        self.prediction_action.toggled.connect(lambda on: self._layer("prediction", on))
        self.error_action.toggled.connect(lambda on: self._layer("error", on))
        self.heatmap_action.toggled.connect(self._heatmap)
        self.dilation_action.toggled.connect(self._dilation)
        self.kernel.valueChanged.connect(self._dilation)
        self.opacity.valueChanged.connect(self._opacity)
        self.threshold.valueChanged.connect(lambda v: self.set_threshold(v / 100.0))
        self.threshold_spin.valueChanged.connect(self.set_threshold)
        self.strokes_action.toggled.connect(self._strokes)
        self.uncertainty_action.toggled.connect(self._uncertainty)

    def actions_list(self) -> list[QAction]:
        return [
            self.label_action,
            self.prediction_action,
            self.heatmap_action,
            self.error_action,
            self.dilation_action,
            self.strokes_action,
            self.uncertainty_action,
        ]

    # ----------------------------------------------------------------- state
    def _load_state(self) -> None:
        s, d = self.settings, LayerState()
        state = LayerState(
            show_label=get_bool(s, "display/show_label", d.show_label),
            show_prediction=get_bool(s, "display/show_prediction", d.show_prediction),
            show_error=get_bool(s, "display/show_error", d.show_error),
            heatmap=get_bool(s, "display/heatmap", d.heatmap),
            opacity=min(1.0, max(0.0, get_float(s, "display/opacity", d.opacity))),
            threshold=min(0.99, max(0.01, get_float(s, "display/threshold", d.threshold))),
            dilation_on=get_bool(s, "display/dilation_on", d.dilation_on),
            dilation_kernel=min(
                63, max(2, get_int(s, "display/dilation_kernel", d.dilation_kernel))
            ),
        )
        self.canvas.set_state(state)
        strokes = get_bool(s, "display/show_strokes", True)
        doubt = get_bool(s, "display/show_uncertainty", False)
        self.extra.set_strokes_visible(strokes)
        self.extra.set_uncertainty_visible(doubt)
        for widget, on in (
            (self.strokes_action, strokes),
            (self.strokes_box, strokes),
            (self.uncertainty_action, doubt),
            (self.uncertainty_box, doubt),
        ):
            widget.blockSignals(True)
            widget.setChecked(on)
            widget.blockSignals(False)
        self._sync_widgets()

    def _sync_widgets(self) -> None:
        st = self.canvas.state
        widgets = (
            self.label_action,
            self.prediction_action,
            self.heatmap_action,
            self.error_action,
            self.dilation_action,
            self.kernel,
            self.opacity,
            self.threshold,
            self.threshold_spin,
            self.label_box,
            self.prediction_box,
            self.heatmap_box,
            self.error_box,
            self.dilation_box,
        )
        for w in widgets:
            w.blockSignals(True)
        for act, box, value in (
            (self.label_action, self.label_box, st.show_label),
            (self.prediction_action, self.prediction_box, st.show_prediction),
            (self.heatmap_action, self.heatmap_box, st.heatmap),
            (self.error_action, self.error_box, st.show_error),
            (self.dilation_action, self.dilation_box, st.dilation_on),
        ):
            act.setChecked(value)
            box.setChecked(value)
        self.kernel.setValue(st.dilation_kernel)
        self.opacity.setValue(round(st.opacity * 100))
        self.opacity_value.setText(f"{round(st.opacity * 100)} %")
        self.threshold.setValue(round(st.threshold * 100))
        self.threshold_spin.setValue(st.threshold)
        self.kernel.setEnabled(st.dilation_on)
        self.heat_legend.setVisible(st.heatmap)
        for w in widgets:
            w.blockSignals(False)

    def _save(self, key: str, value) -> None:
        self.settings.setValue(f"display/{key}", value)

    def _layer(self, layer: str, on: bool) -> None:
        self.canvas.set_layer_visible(layer, on)
        self._save(f"show_{layer}", on)

    def _strokes(self, on: bool) -> None:
        self.extra.set_strokes_visible(on)
        self._save("show_strokes", on)

    def _uncertainty(self, on: bool) -> None:
        self.extra.set_uncertainty_visible(on)
        self._save("show_uncertainty", on)

    def _heatmap(self, on: bool) -> None:
        self.canvas.set_heatmap(on)
        self.heat_legend.setVisible(on)
        if on and not self.canvas.is_layer_visible("prediction"):
            self.prediction_action.setChecked(True)
        self._save("heatmap", on)

    def _dilation(self, *_args) -> None:
        on = self.dilation_action.isChecked()
        self.kernel.setEnabled(on)
        self.canvas.set_dilation(on, self.kernel.value())
        self._save("dilation_on", on)
        self._save("dilation_kernel", self.kernel.value())
        self.state_changed.emit()

    def _opacity(self, value: int) -> None:
        self.canvas.set_opacity(value / 100.0)
        self.opacity_value.setText(f"{value} %")
        self._save("opacity", value / 100.0)

    def set_threshold(self, value: float) -> None:
        value = round(min(0.99, max(0.01, float(value))), 2)
        for w in (self.threshold, self.threshold_spin):
            w.blockSignals(True)
        self.threshold.setValue(round(value * 100))
        self.threshold_spin.setValue(value)
        for w in (self.threshold, self.threshold_spin):
            w.blockSignals(False)
        if value != self.canvas.state.threshold:
            self.canvas.set_threshold(value)
            self._save("threshold", value)
            self.state_changed.emit()

    def set_opacity(self, value: float) -> None:
        self.opacity.setValue(round(value * 100))

    def set_dilation(self, on: bool, kernel: int | None = None) -> None:
        if kernel is not None:
            self.kernel.setValue(kernel)
        self.dilation_action.setChecked(on)
