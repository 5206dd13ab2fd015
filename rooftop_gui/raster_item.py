"""The canvas item that draws a :class:`rooftop_gui.raster_view.RasterTileSource`.

:class:`RasterTileItem` is the QGraphicsItem the canvas draws, in image-pixel scene coordinates:
the overview, then for the exposed rectangle the cached tiles of the level that suits the zoom
(a coarser cached tile stands in for a missing one). :meth:`RasterTileItem.request_visible` asks
for the tiles of the visible rectangle plus a margin of one tile (the canvas calls it after
every scroll and zoom).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from rooftop_gui.raster_view import MARGIN_TILES, TILE, RasterInfo, RasterTileSource, TileKey


class RasterTileItem(QGraphicsItem):
    """Draws a :class:`RasterTileSource` in image-pixel scene coordinates (see the module)."""

    def __init__(self, source: RasterTileSource, z: float = 0) -> None:
        super().__init__()
        self.source = source
        self._bounds = QRectF()
        self.setZValue(z)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.painted = 0  # paints that drew something (the benchmark waits for the first)
        source.opened.connect(self._opened)
        source.overview_ready.connect(self.update)
        source.tile_ready.connect(self._tile_ready)
        if source.info is not None:
            self._opened(source.info)

    def _opened(self, info: RasterInfo) -> None:
        self.prepareGeometryChange()
        self._bounds = QRectF(0, 0, info.width, info.height)
        self.update()

    def _tile_ready(self, key: TileKey) -> None:
        if self.source.info is not None:
            self.update(self.source.tile_rect(key))

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def request_visible(self, rect: QRectF, zoom: float) -> None:
        """Ask for the tiles of ``rect`` (image pixels) at the level that suits ``zoom``."""
        source = self.source
        if source.info is None:
            return
        rect = rect.intersected(self._bounds)
        if rect.isEmpty() or not source.needs_tiles(zoom):
            source.request([])
            return
        level = source.level_for(zoom)
        keys = source.tiles_in(rect, level)
        margin = [k for k in source.tiles_in(rect, level, MARGIN_TILES) if k not in set(keys)]
        source.request(keys + margin)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        source = self.source
        if source.info is None:
            return
        exposed = option.exposedRect.intersected(self._bounds)
        if exposed.isEmpty():
            return
        drew = False
        overview = source.overview
        if overview is not None:
            f = source.overview_factor
            painter.drawImage(
                exposed,
                overview,
                QRectF(
                    exposed.left() / f, exposed.top() / f, exposed.width() / f, exposed.height() / f
                ),
            )
            drew = True
        zoom = painter.worldTransform().m11()
        if source.needs_tiles(zoom):
            level = source.level_for(zoom)
            for key in source.tiles_in(exposed, level):
                target = source.tile_rect(key)
                image = source.cache.get(key)
                if image is not None:
                    painter.drawImage(target, image, QRectF(image.rect()))
                    drew = True
                    continue
                for coarser in range(level + 1, source.max_level() + 1):  # a stand-in
                    span = TILE << coarser
                    parent = (coarser, int(target.top()) // span, int(target.left()) // span)
                    image = source.cache.peek(parent)
                    if image is not None:
                        prect = source.tile_rect(parent)
                        scale = image.width() / prect.width() if prect.width() else 1.0
                        part = QRectF(
                            (target.left() - prect.left()) * scale,
                            (target.top() - prect.top()) * scale,
                            target.width() * scale,
                            target.height() * scale,
                        )
                        painter.drawImage(target, image, part)
                        drew = True
                        break
        if drew:
            self.painted += 1
