"""The training curves: train and validation loss (left axis) and validation IoU (right axis, 0..1).

A pyqtgraph ``PlotWidget`` with one legend for the three curves in a row of its own above the
plot area (the row of the unused top axis, so never over the curves), and a second ``ViewBox`` for
the IoU, x-linked to the main one and kept over it on resize (pyqtgraph's "multiple axes"
pattern). Its minimum height is small: it grows with the splitter or dock it is in.
Torch-free; feed it any objects with ``epoch``, ``train_loss``, ``val_loss``, ``val_iou``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

BACKGROUND = "#18191b"
TRAIN_COLOR = "#58a6ff"
VAL_COLOR = "#f0883e"
IOU_COLOR = "#7ee787"
AXIS_COLOR = "#8b919b"


class EpochAxis(pg.AxisItem):
    """An x axis with ticks on whole epochs only (no "1.5")."""

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802,N803 - pyqtgraph's names
        levels = [
            (spacing, offset)
            for spacing, offset in super().tickSpacing(minVal, maxVal, size)
            if spacing >= 1
        ]
        return levels or [(1.0, 0.0)]


class TrainingPlot(pg.PlotWidget):
    """Per-epoch curves of one training run; :meth:`reset` before each run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        # (a PlotWidget, not a GraphicsLayoutWidget: that one crashes the interpreter at exit
        # when it outlives the function that made it, with PySide6)
        super().__init__(
            parent=parent, background=BACKGROUND, axisItems={"bottom": EpochAxis("bottom")}
        )
        self.setObjectName("trainingPlot")
        self.setMinimumHeight(120)
        item = self.getPlotItem()
        # The legend takes the top axis's place in the plot item's grid (row 1, above the view
        # box; row 0 is the title): outside the curves, as wide as the plot area.
        item.layout.removeItem(item.getAxis("top"))
        self.legend = pg.LegendItem(horSpacing=14, labelTextColor="#d7dae0")
        self.legend.setColumnCount(3)
        self.legend.layout.setContentsMargins(0, 0, 0, 0)
        item.layout.addItem(self.legend, 1, 1)
        item.layout.setAlignment(self.legend, pg.QtCore.Qt.AlignmentFlag.AlignHCenter)
        item.setMenuEnabled(False)
        item.hideButtons()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setLabel("bottom", "epoch", color=AXIS_COLOR)
        item.setLabel("left", "loss", color=AXIS_COLOR)
        item.showAxis("right")
        item.setLabel("right", "val IoU", color=IOU_COLOR)
        for name in ("bottom", "left", "right"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(AXIS_COLOR))
            axis.setTextPen(pg.mkPen(AXIS_COLOR))
        item.getViewBox().setLimits(xMin=0)
        item.getViewBox().setMouseEnabled(x=True, y=False)

        # Second view box for the IoU on the right axis, sharing the x axis.
        self.iou_view = pg.ViewBox()
        self.iou_view.setMouseEnabled(x=False, y=False)
        item.scene().addItem(self.iou_view)
        item.getAxis("right").linkToView(self.iou_view)
        self.iou_view.setXLink(item)
        self.iou_view.setYRange(0.0, 1.0, padding=0.02)
        self.iou_view.enableAutoRange(axis=pg.ViewBox.YAxis, enable=False)

        self.train_curve = item.plot(
            [],
            [],
            name="train loss",
            pen=pg.mkPen(TRAIN_COLOR, width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush=TRAIN_COLOR,
            symbolPen=None,
        )
        self.val_curve = item.plot(
            [],
            [],
            name="val loss",
            pen=pg.mkPen(VAL_COLOR, width=2),
            symbol="s",
            symbolSize=5,
            symbolBrush=VAL_COLOR,
            symbolPen=None,
        )
        self.legend.addItem(self.train_curve, "train loss")
        self.legend.addItem(self.val_curve, "val loss")
        self.iou_curve = pg.PlotDataItem(
            [],
            [],
            pen=pg.mkPen(IOU_COLOR, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
            symbol="t",
            symbolSize=6,
            symbolBrush=IOU_COLOR,
            symbolPen=None,
        )
        self.iou_view.addItem(self.iou_curve)
        self.legend.addItem(self.iou_curve, "val IoU")
        item.getViewBox().sigResized.connect(self._sync_views)
        self._sync_views()

        self.epochs: list[int] = []
        self.train_loss: list[float] = []
        self.val_epochs: list[int] = []
        self.val_loss: list[float] = []
        self.iou_epochs: list[int] = []
        self.val_iou: list[float] = []

    def set_title(self, title: str) -> None:
        """A small grey title above the legend (the model shown), or none."""
        self.getPlotItem().setTitle(title or None, color=AXIS_COLOR, size="9pt")

    def _sync_views(self) -> None:
        main = self.getPlotItem().getViewBox()
        self.iou_view.setGeometry(main.sceneBoundingRect())
        self.iou_view.linkedViewChanged(main, self.iou_view.XAxis)

    # ----------------------------------------------------------------- data
    def reset(self, title: str = "") -> None:
        """Forget every point (a new run starts, or another model's history is shown)."""
        for values in (
            self.epochs,
            self.train_loss,
            self.val_epochs,
            self.val_loss,
            self.iou_epochs,
            self.val_iou,
        ):
            values.clear()
        self.set_title(title)
        self._redraw()

    def add_epoch(self, result: Any) -> None:
        """One point per curve from an ``EpochResult``-like object (``None`` values skipped)."""
        self._append(result)
        self._redraw()

    def set_history(self, history: Iterable[Any], title: str = "") -> None:
        """Show a whole history at once (objects or dicts with the EpochResult fields)."""
        self.reset(title)
        for entry in history:
            if isinstance(entry, dict):
                entry = _Point(entry)
            self._append(entry)
        self._redraw()

    def point_count(self) -> int:
        return len(self.epochs)

    def _append(self, result: Any) -> None:
        epoch = int(result.epoch)
        self.epochs.append(epoch)
        self.train_loss.append(float(result.train_loss))
        if result.val_loss is not None:
            self.val_epochs.append(epoch)
            self.val_loss.append(float(result.val_loss))
        if result.val_iou is not None:
            self.iou_epochs.append(epoch)
            self.val_iou.append(float(result.val_iou))

    def _redraw(self) -> None:
        self.train_curve.setData(self.epochs, self.train_loss)
        self.val_curve.setData(self.val_epochs, self.val_loss)
        self.iou_curve.setData(self.iou_epochs, self.val_iou)
        self.iou_view.setYRange(0.0, 1.0, padding=0.02)
        if self.epochs:
            self.getPlotItem().getViewBox().setXRange(
                min(self.epochs) - 0.5, max(self.epochs) + 0.5, padding=0
            )
        self.getPlotItem().getViewBox().enableAutoRange(axis=pg.ViewBox.YAxis)


class _Point:
    """Attribute access over a history dict read from a checkpoint's metadata."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.epoch = data.get("epoch", 0)
        self.train_loss = data.get("train_loss", float("nan"))
        self.val_loss = data.get("val_loss")
        self.val_iou = data.get("val_iou")
