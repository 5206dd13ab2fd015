"""The canvas layers of issue 16, kept beside the canvas's own: the strokes (partial label), the
uncertainty map (what the model doubts) and smart select's proposed outline.

They are :class:`rooftop_gui.canvas.IndexedLayerItem` items added to the canvas's scene, so
the canvas needs no change for them: :func:`extra_layers` gives the one set of a canvas.
The uncertainty layer follows the canvas's probability map and threshold
(``canvas.layers_changed``), like the heat map, and is drawn with the canvas's opacity.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRect, Signal

from rooftop_gui import overlays
from rooftop_gui.canvas import ImageCanvas, IndexedLayerItem

#: Z order: above the prediction fill (20) and the error map (30), under the label outline (40)
#: for the doubt; strokes and the proposal above everything.
UNCERTAINTY_Z, STROKES_Z, PROPOSAL_Z = 25, 45, 46
STROKES_OPACITY = 0.8


class ExtraLayers(QObject):
    """Strokes, uncertainty and proposal layers of one canvas."""

    changed = Signal()

    def __init__(self, canvas: ImageCanvas) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.strokes_item = IndexedLayerItem(overlays.stroke_table(), STROKES_Z)
        self.strokes_item.setOpacity(STROKES_OPACITY)
        self.uncertainty_item = IndexedLayerItem(overlays.uncertainty_table(), UNCERTAINTY_Z)
        self.proposal_item = IndexedLayerItem(overlays.proposal_table(), PROPOSAL_Z)
        for item in (self.strokes_item, self.uncertainty_item, self.proposal_item):
            canvas.scene().addItem(item)
        self.uncertainty_item.setVisible(False)
        self._uncertainty_key: tuple | None = None
        canvas.layers_changed.connect(self.refresh_uncertainty)

    # ------------------------------------------------------------------ strokes
    def set_strokes(self, codes: np.ndarray | None) -> None:
        """Show stroke codes (a reference; edit in place and call :meth:`update_strokes`)."""
        self.strokes_item.set_codes(codes)
        self.changed.emit()

    def update_strokes(self, codes: np.ndarray, region) -> None:
        """Re-upload the ``core.annotate.Region`` of ``codes`` changed in place."""
        if region is None:
            return
        rect = QRect(
            int(region.x0), int(region.y0), int(region.x1 - region.x0), int(region.y1 - region.y0)
        )
        self.strokes_item.update_region(codes, rect)

    def shown_strokes(self) -> np.ndarray | None:
        return self.strokes_item.codes()

    def set_strokes_visible(self, visible: bool) -> None:
        self.strokes_item.setVisible(bool(visible))

    def strokes_visible(self) -> bool:
        return self.strokes_item.isVisible()

    # ------------------------------------------------------------------ uncertainty
    def set_uncertainty_visible(self, visible: bool) -> None:
        self.uncertainty_item.setVisible(bool(visible))
        self.refresh_uncertainty()

    def uncertainty_visible(self) -> bool:
        return self.uncertainty_item.isVisible()

    def refresh_uncertainty(self) -> None:
        """Recompute the layer when it is shown and the probability map or threshold changed."""
        prob = self.canvas.probability()
        state = self.canvas.state
        self.uncertainty_item.setOpacity(max(0.15, min(1.0, state.opacity * 1.6)))
        if not self.uncertainty_item.isVisible():
            return
        key = (id(prob), round(state.threshold, 4)) if prob is not None else None
        if key == self._uncertainty_key:
            return
        self._uncertainty_key = key
        if prob is None or prob.shape != getattr(self.canvas.image(), "shape", (0, 0))[:2]:
            self.uncertainty_item.set_codes(None)
            return
        self.uncertainty_item.set_codes(overlays.uncertainty_codes(prob, state.threshold))

    def shown_uncertainty(self) -> np.ndarray | None:
        return self.uncertainty_item.codes()

    # ------------------------------------------------------------------ proposal
    def set_proposal(self, mask: np.ndarray | None) -> None:
        self.proposal_item.set_codes(None if mask is None else overlays.mask_codes(mask))

    def proposal(self) -> np.ndarray | None:
        codes = self.proposal_item.codes()
        return None if codes is None else codes.astype(bool)


def extra_layers(canvas: ImageCanvas) -> ExtraLayers:
    """The :class:`ExtraLayers` of ``canvas`` (made on the first call)."""
    layers = getattr(canvas, "_rooftop_extra_layers", None)
    if layers is None:
        layers = ExtraLayers(canvas)
        canvas._rooftop_extra_layers = layers
    return layers
