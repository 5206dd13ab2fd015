"""The Orthophoto box of the Prediction panel: predict the visible area or the whole orthophoto.

* **Predict visible area**: the window the canvas shows, read at full resolution
  (``RasterSource.read_window``) and predicted in memory (``core.predict.predict_probabilities``)
  in the background, then shown as the prediction layer at its place
  (:meth:`ImageCanvas.set_window_probability`: threshold, dilation and heat map apply).
  At most :data:`MAX_VISIBLE_PIXELS`: zoom in for more.
* **Predict whole orthophoto…**: ``core.orthophoto.predict_raster`` in the background, with its
  progress in megapixels, the rate and the time left; each finished strip
  (``on_mask_rows``) is drawn at once on a decimated preview and, when asked, vectorised
  (``core.vector.StripVectorizer``: the buildings appear as outlines strip by strip). This *is*
  the export of the georeferenced mask: it is written into the file the user chose (plus
  ``NAME_probability.tif`` and ``NAME.gpkg`` on request, COG optional). ``predict_raster`` writes
  ``OUT/<input name>.tif``; it runs into a hidden temporary folder beside the target and its files
  are renamed onto the chosen names when it is done (one folder, so a rename), so a Stop (or an
  error) leaves nothing at the targets and nothing of the temporary folder. When it is done, the
  written mask is shown by tiles (:meth:`ImageCanvas.set_mask_raster`).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.progress import Progress, Stopped
from rooftop_gui.buildings_layer import building_rings, summary_text
from rooftop_gui.canvas import ImageCanvas
from rooftop_gui.errors import describe, show_error
from rooftop_gui.raster_view import RasterTileSource
from rooftop_gui.resources import icon
from rooftop_gui.settings import get_bool
from rooftop_gui.workers import Task, TaskRunner

#: Largest visible area predicted at once (pixels): about 20 s on a 2-core CPU.
MAX_VISIBLE_PIXELS = 4096 * 4096
#: Outline simplification of georeferenced buildings (m): ``rooftop predict --polygons``' default.
SIMPLIFY_M = 0.5


@dataclass(frozen=True)
class WindowPrediction:
    x0: int
    y0: int
    prob: np.ndarray


@dataclass(frozen=True)
class StripPreview:
    row: int  # first decimated row
    codes: np.ndarray  # (rows, decimated width) uint8 0/1


@dataclass(frozen=True)
class BuildingsFound:
    rings: list
    count: int
    area: float
    unit: str


@dataclass(frozen=True)
class WholeResult:
    mask_path: Path
    probability_path: Path | None
    polygons_path: Path | None
    roof_fraction: float
    buildings: int | None
    area: float
    unit: str


def whole_targets(mask_path: Path) -> tuple[Path, Path, Path]:
    """The mask the user chose, its ``_probability.tif`` and its ``.gpkg`` beside it."""
    mask_path = Path(mask_path)
    if mask_path.suffix.lower() not in (".tif", ".tiff"):
        mask_path = mask_path.with_suffix(".tif")
    return (
        mask_path,
        mask_path.with_name(f"{mask_path.stem}_probability.tif"),
        mask_path.with_suffix(".gpkg"),
    )


def predict_whole(
    loaded: Any,
    source: Path,
    target: Path,
    *,
    threshold: float,
    dilation: int,
    probabilities: bool,
    cog: bool,
    polygons: bool,
    preview_factor: int,
    on_progress,
    should_stop,
    device: str = "auto",
) -> WholeResult:
    """Predict ``source`` into ``target`` (see the module docstring); reports ``Progress`` in
    pixels, :class:`StripPreview` and :class:`BuildingsFound` events."""
    from core.orthophoto import predict_raster
    from core.raster import open_raster

    mask_target, prob_target, polygons_target = whole_targets(target)
    with open_raster(source) as raster:
        crs, transform, width, height = raster.crs, raster.transform, raster.width, raster.height
    vectorizer = kept = None
    if polygons:
        from core.vector import StripVectorizer

        vectorizer = StripVectorizer(
            width, transform, crs, height=height, simplify=SIMPLIFY_M if crs is not None else 0.0
        )
        kept = []
    f = max(1, int(preview_factor))

    def found(buildings) -> None:
        kept.extend(buildings)
        if buildings:
            on_progress(
                BuildingsFound(
                    building_rings(buildings, transform),
                    len(buildings),
                    float(sum(b.area_m2 for b in buildings)),
                    vectorizer.unit,
                )
            )

    def on_rows(row_off, mask_rows, prob_rows, valid_rows):
        first = -(-row_off // f) * f  # the first row on the preview's grid
        if first < row_off + len(mask_rows):
            codes = np.ascontiguousarray(mask_rows[first - row_off :: f, ::f]).view(np.uint8)
            on_progress(StripPreview(first // f, codes.copy()))
        if vectorizer is not None:
            found(vectorizer.add_strip(row_off, mask_rows, prob_rows))

    work = Path(
        tempfile.mkdtemp(
            prefix=f".{mask_target.stem}.", suffix=".rooftop-tmp", dir=mask_target.parent
        )
    )
    try:
        result = predict_raster(
            loaded,
            source,
            work,
            threshold=threshold,
            dilation=dilation,
            device=device,
            probabilities=probabilities,
            cog=cog,
            on_progress=on_progress,
            should_stop=should_stop,
            on_mask_rows=on_rows,
        )
        written_polygons = None
        if vectorizer is not None:
            found(vectorizer.finish())
            from core.vector import BuildingSet, write_buildings

            written_polygons = write_buildings(
                polygons_target, BuildingSet(kept, vectorizer.crs, vectorizer.unit)
            )
        os.replace(result.mask_path, mask_target)
        if result.probability_path is not None:
            os.replace(result.probability_path, prob_target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return WholeResult(
        mask_target,
        prob_target if probabilities else None,
        written_polygons,
        result.roof_fraction,
        None if kept is None else len(kept),
        float(sum(b.area_m2 for b in kept or [])),
        vectorizer.unit if vectorizer is not None else "m",
    )


def rate_text(done: int, total: int, seconds: float) -> str:
    """``"12.3 / 900.0 Mpx · 0.84 Mpx/s · 17 min left"``."""
    text = f"{done / 1e6:.1f} / {total / 1e6:.1f} Mpx"
    if seconds > 0.5 and done > 0:
        rate = done / seconds
        left = (total - done) / rate
        eta = f"{left:.0f} s" if left < 120 else f"{left / 60:.0f} min"
        text += f" · {rate / 1e6:.2f} Mpx/s · {eta} left"
    return text


class OrthophotoPanel(QWidget):
    """Predict the visible area / the whole orthophoto (see the module docstring)."""

    status_message = Signal(str)
    busy_changed = Signal(bool)
    window_predicted = Signal()  # a visible-area prediction is on the canvas
    whole_done = Signal(object)  # WholeResult

    def __init__(
        self,
        canvas: ImageCanvas,
        prediction: Any,
        runner: TaskRunner,
        settings: QSettings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("orthophotoPanel")
        self.canvas, self.prediction, self.runner, self.settings = (
            canvas,
            prediction,
            runner,
            settings,
        )
        self._task: Task | None = None
        self._started = 0.0
        self.last_result: WholeResult | None = None
        self.whole_buildings = (0, 0.0, "m")

        self.info_label = QLabel("")
        self.info_label.setWordWrap(True)
        self.info_label.setObjectName("muted")
        self.visible_button = QPushButton(icon("predict"), "Predict visible area")
        self.visible_button.setToolTip(
            "Predict what the canvas shows, at full resolution (zoom in for a larger scale)"
        )
        self.whole_button = QPushButton(icon("predict-split"), "Predict whole orthophoto…")
        self.whole_button.setToolTip(
            "Predict every pixel, in strips, into a georeferenced GeoTIFF mask you choose"
        )
        self.probability_box = QCheckBox("Probability raster too")
        self.cog_box = QCheckBox("Cloud-optimised GeoTIFF (COG)")
        self.polygons_box = QCheckBox("Buildings (.gpkg) too")
        for box, key, default in (
            (self.probability_box, "ortho/probability", False),
            (self.cog_box, "ortho/cog", False),
            (self.polygons_box, "ortho/polygons", True),
        ):
            box.setChecked(get_bool(settings, key, default))
            box.toggled.connect(lambda on, k=key: settings.setValue(k, on))
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.rate_label = QLabel("")
        self.rate_label.setObjectName("muted")
        self.stop_button = QPushButton(icon("stop"), "Stop")

        box = QGroupBox("Orthophoto")
        grid = QGridLayout(box)
        grid.addWidget(self.info_label, 0, 0, 1, 2)
        grid.addWidget(self.visible_button, 1, 0, 1, 2)
        grid.addWidget(self.whole_button, 2, 0, 1, 2)
        grid.addWidget(self.probability_box, 3, 0, 1, 2)
        grid.addWidget(self.cog_box, 4, 0, 1, 2)
        grid.addWidget(self.polygons_box, 5, 0, 1, 2)
        grid.addWidget(self.progress, 6, 0)
        grid.addWidget(self.stop_button, 6, 1)
        grid.addWidget(self.rate_label, 7, 0, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)

        self.visible_button.clicked.connect(self.predict_visible)
        self.whole_button.clicked.connect(self.choose_whole)
        self.stop_button.clicked.connect(self.stop)
        self.update_enabled()

    # ----------------------------------------------------------------- state
    def raster(self) -> RasterTileSource | None:
        return self.canvas.raster()

    def raster_changed(self) -> None:
        """Another orthophoto (or none) is on the canvas."""
        raster = self.raster()
        self.last_result = None
        self.setVisible(raster is not None)
        if raster is not None:
            info = raster.info
            self.info_label.setText(
                f"<b>{raster.path.name}</b><br>" + (info.describe() if info else "opening…")
            )
        self.update_enabled()

    def is_busy(self) -> bool:
        return self._task is not None

    def update_enabled(self) -> None:
        ready = (
            self.raster() is not None
            and self.raster().info is not None
            and self.prediction.model_path is not None
            and self._task is None
            and not self.prediction.is_busy()
        )
        self.visible_button.setEnabled(ready)
        self.whole_button.setEnabled(ready)
        self.stop_button.setEnabled(self._task is not None)

    def stop(self) -> None:
        if self._task is not None:
            self._task.request_stop()
            self.status_message.emit("Stopping…")

    def wait(self, timeout_ms: int = 60_000) -> bool:
        task = self._task
        return True if task is None else task.wait(timeout_ms)

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.request_stop()

    def _ready(self) -> bool:
        if self.raster() is None or self.raster().info is None:
            self.status_message.emit("Open an orthophoto first (File > Open orthophoto…).")
            return False
        if self.prediction.model_path is None:
            show_error(self, "No model", "Train a model, pick one, or load a model file (Ctrl+M).")
            return False
        if self._task is not None or self.prediction.is_busy():
            self.status_message.emit("A prediction is already running.")
            return False
        return True

    def _start(self, work, done, message: str, on_progress=None) -> Task:
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.rate_label.setText("")
        self.status_message.emit(message)
        self._started = time.monotonic()

        def failed(exc):
            if isinstance(exc, Stopped):
                self.status_message.emit("Stopped: nothing was written.")
                self.rate_label.setText("Stopped: nothing was written.")
                return
            show_error(self, "Orthophoto prediction failed", exc)
            self.status_message.emit(describe(exc))

        def finished():
            self._task = None
            self.progress.setVisible(False)
            self.update_enabled()
            self.prediction._update_enabled()
            self.busy_changed.emit(False)

        self._task = self.runner.start(
            work,
            on_progress=on_progress,
            on_finished=done,
            on_failed=failed,
            on_done=finished,
            name="orthophoto",
        )
        self.update_enabled()
        self.prediction._update_enabled()
        self.busy_changed.emit(True)
        return self._task

    # ----------------------------------------------------------------- visible area
    def visible_window(self) -> tuple[int, int, int, int] | None:
        """``(x0, y0, width, height)`` of the visible part of the raster (whole pixels)."""
        rect = self.canvas.visible_rect()
        if rect.isEmpty():
            return None
        size = self.canvas.image_size()
        x0, y0 = max(0, math.floor(rect.left())), max(0, math.floor(rect.top()))
        x1, y1 = min(size[0], math.ceil(rect.right())), min(size[1], math.ceil(rect.bottom()))
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1 - x0, y1 - y0

    def predict_visible(self) -> Task | None:
        if not self._ready():
            return None
        window = self.visible_window()
        if window is None:
            self.status_message.emit("No part of the orthophoto is visible.")
            return None
        x0, y0, w, h = window
        if w * h > MAX_VISIBLE_PIXELS:
            show_error(
                self,
                "Visible area too large",
                f"The visible area is {w} x {h} px ({w * h / 1e6:.0f} Mpx); zoom in to at "
                f"most {MAX_VISIBLE_PIXELS / 1e6:.0f} Mpx, or predict the whole orthophoto.",
            )
            return None
        path, holder, model_path = (
            self.raster().path,
            self.prediction.models,
            self.prediction.model_path,
        )
        raster = self.raster()

        def work(on_progress, should_stop):
            from core.ground_resolution import resolution_of_grid
            from core.input_stretch import model_stretch, raster_stretch_table
            from core.predict import predict_probabilities
            from core.raster import open_raster

            loaded = holder.get(model_path)
            table = None  # the whole raster's, so the window matches the whole prediction
            with open_raster(path) as source:
                rgb, valid = source.read_window(y0, x0, h, w)
                if model_stretch(loaded.model) != "none":
                    table = raster_stretch_table(path, source.bands, source=source)
                at = resolution_of_grid(source.crs, source.transform)
            prob = predict_probabilities(
                loaded.model,
                rgb,
                should_stop=should_stop,
                on_progress=on_progress,
                stretch_table=table,
                ground_resolution=at,  # the model sees it at its own, as the whole raster
            )
            prob[~valid] = 0.0  # no data is never roof
            return WindowPrediction(x0, y0, prob)

        def progress(event):
            if isinstance(event, Progress) and event.total:
                self.progress.setRange(0, event.total)
                self.progress.setValue(event.done)
                self.progress.setFormat(f"{event.done} / {event.total} tiles")

        def done(result: WindowPrediction):
            if self.raster() is not raster:
                return  # another image since
            self.canvas.set_window_probability(result.prob, result.x0, result.y0)
            self.status_message.emit(f"Predicted the visible area: {w} x {h} px at ({x0}, {y0})")
            self.window_predicted.emit()

        return self._start(work, done, f"Predicting the visible area ({w} x {h} px)…", progress)

    # ----------------------------------------------------------------- whole orthophoto
    def choose_whole(self) -> None:
        raster = self.raster()
        if raster is None:
            return
        start = self.settings.value("ortho/last_folder", str(raster.path.parent))
        name = str(Path(start) / f"{raster.path.stem}_mask.tif")
        path, _ = QFileDialog.getSaveFileName(
            self, "Write the georeferenced mask to", name, "GeoTIFF (*.tif *.tiff)"
        )
        if path:
            self.settings.setValue("ortho/last_folder", str(Path(path).parent))
            self.predict_whole(Path(path))

    def predict_whole(
        self,
        target: Path,
        *,
        probabilities: bool | None = None,
        cog: bool | None = None,
        polygons: bool | None = None,
    ) -> Task | None:
        """Predict the whole orthophoto into ``target`` (a GeoTIFF; see the module docstring)."""
        if not self._ready():
            return None
        raster = self.raster()
        if whole_targets(target)[0].resolve() == raster.path.resolve():
            show_error(self, "Choose another file", "The mask would replace the orthophoto itself.")
            return None
        probabilities = self.probability_box.isChecked() if probabilities is None else probabilities
        cog = self.cog_box.isChecked() if cog is None else cog
        polygons = self.polygons_box.isChecked() if polygons is None else polygons
        source, holder, model_path = raster.path, self.prediction.models, self.prediction.model_path
        threshold, dilation = self.canvas.state.threshold, self.canvas.state.dilation
        info = raster.info
        factor = max(
            1,
            raster.overview_factor
            if raster.overview is not None
            else math.ceil(max(info.width, info.height) / 2048),
        )
        self.canvas.set_mask_raster(None)
        self.canvas.start_strip_preview(info.width, info.height, factor)
        if polygons:
            self.canvas.set_buildings([])
        self.whole_buildings = (0, 0.0, "m")

        def work(on_progress, should_stop):
            loaded = holder.get(model_path)
            return predict_whole(
                loaded,
                source,
                Path(target),
                threshold=threshold,
                dilation=dilation,
                probabilities=probabilities,
                cog=cog,
                polygons=polygons,
                preview_factor=factor,
                on_progress=on_progress,
                should_stop=should_stop,
            )

        def progress(event):
            if self.raster() is not raster:
                return
            if isinstance(event, StripPreview):
                self.canvas.add_strip_preview(event.row, event.codes)
            elif isinstance(event, BuildingsFound):
                self.canvas.add_buildings(event.rings)
                count, area, _unit = self.whole_buildings
                self.whole_buildings = (count + event.count, area + event.area, event.unit)
                self.prediction.show_buildings_summary(
                    "Whole orthophoto so far: " + summary_text(*self.whole_buildings)
                )
            elif isinstance(event, Progress) and event.total:
                scale = max(1, event.total // 1_000_000)
                self.progress.setRange(0, event.total // scale)
                self.progress.setValue(event.done // scale)
                self.progress.setFormat(f"{100 * event.done / event.total:.0f} %")
                self.rate_label.setText(
                    rate_text(event.done, event.total, time.monotonic() - self._started)
                )

        def done(result: WholeResult):
            self.last_result = result
            seconds = time.monotonic() - self._started
            text = f"Wrote {result.mask_path.name} ({100 * result.roof_fraction:.1f} % roof)"
            if result.buildings is not None:
                text += f" and {result.polygons_path.name}: " + summary_text(
                    result.buildings, result.area, result.unit
                )
                self.prediction.show_buildings_summary(
                    "Whole orthophoto: " + summary_text(result.buildings, result.area, result.unit)
                )
            self.rate_label.setText(f"{text} in {seconds:.0f} s")
            self.status_message.emit(text)
            if self.raster() is raster:
                self.canvas.set_mask_raster(
                    RasterTileSource(result.mask_path, self.runner, kind="mask")
                )
            self.whole_done.emit(result)

        def failed_cleanup(_exc):
            if self.raster() is raster:
                self.canvas.stop_strip_preview()

        task = self._start(work, done, f"Predicting {source.name}…", progress)
        task.failed.connect(failed_cleanup)
        return task
