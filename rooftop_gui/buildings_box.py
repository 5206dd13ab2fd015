"""The Buildings box of the prediction panel (issue 15): the buildings of the shown mask counted
and measured in the background, their outlines drawn, and exported as GeoPackage or GeoJSON for
the image, the split, the visible area or the whole orthophoto.

:class:`BuildingsMixin` is composed into :class:`rooftop_gui.prediction_panel.PredictionPanel`,
whose canvas, browser, runner and display settings it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
)

from core.progress import Progress
from rooftop_gui.buildings_layer import building_rings, summary_text
from rooftop_gui.errors import describe, show_error
from rooftop_gui.orthophoto_panel import SIMPLIFY_M
from rooftop_gui.resources import icon
from rooftop_gui.settings import get_bool
from rooftop_gui.workers import Task


@dataclass(frozen=True)
class BuildingsSummary:
    """The buildings of the mask shown: count, total area (``unit`` "m": m², "px": px²) and
    their outlines in image pixels."""

    token: int
    count: int
    area: float
    unit: str
    rings: list


def mask_buildings(mask: np.ndarray, transform: Any = None, crs: Any = None) -> Any:
    """``core.vector.vectorize`` of a shown mask, as the panel counts and exports it:
    georeferenced outlines simplified by :data:`SIMPLIFY_M` (``rooftop predict --polygons``),
    pixel outlines exact."""
    from core.vector import vectorize

    return vectorize(mask, transform, crs, simplify=SIMPLIFY_M if crs is not None else 0.0)


class BuildingsMixin:
    """The buildings part of the prediction panel (see the module docstring)."""

    def _make_buildings_box(self, canvas: Any, settings: QSettings) -> QGroupBox:
        self._buildings_timer = QTimer(self)
        self._buildings_timer.setSingleShot(True)
        self._buildings_timer.setInterval(200)
        self._buildings_timer.timeout.connect(self.update_buildings)
        self._buildings_token = 0
        self._buildings_task: Task | None = None
        self.buildings_summary: BuildingsSummary | None = None
        self.buildings_label = QLabel("Predict an image to count its buildings.")
        self.buildings_label.setObjectName("buildingsLabel")
        self.buildings_label.setWordWrap(True)
        self.outline_box = QCheckBox("Building outlines")
        self.outline_box.setToolTip("Draw the vectorised buildings on the canvas")
        self.outline_box.setChecked(get_bool(settings, "display/show_buildings", True))
        self.outline_box.toggled.connect(self._outlines_toggled)
        canvas.set_buildings_visible(self.outline_box.isChecked())
        self.buildings_scope = QComboBox()
        self.buildings_format = QComboBox()
        self.buildings_format.addItem("GeoPackage", ".gpkg")
        self.buildings_format.addItem("GeoJSON", ".geojson")
        self.export_buildings_button = QPushButton(icon("export"), "Export buildings…")
        self._fill_buildings_scope()

        buildings_box = QGroupBox("Buildings")
        blay = QGridLayout(buildings_box)
        blay.addWidget(self.buildings_label, 0, 0, 1, 2)
        blay.addWidget(self.outline_box, 1, 0, 1, 2)
        blay.addWidget(self.buildings_scope, 2, 0)
        blay.addWidget(self.buildings_format, 2, 1)
        blay.addWidget(self.export_buildings_button, 3, 0, 1, 2)
        return buildings_box

    # ----------------------------------------------------------------- buildings
    def raster_changed(self) -> None:
        """An orthophoto (or a plain image again) is on the canvas."""
        self.orthophoto.raster_changed()
        self._fill_buildings_scope()
        self.buildings_summary = None
        self.buildings_label.setText(
            "Predict the visible area or the whole orthophoto to count its buildings."
            if self.canvas.raster() is not None
            else "Predict an image to count its buildings."
        )
        self._update_enabled()

    def _fill_buildings_scope(self) -> None:
        self.buildings_scope.clear()
        if self.canvas.raster() is not None:
            self.buildings_scope.addItem("Visible area prediction", "window")
            self.buildings_scope.addItem("Whole orthophoto (its mask)", "whole")
        else:
            self.buildings_scope.addItem("Current image", "image")
            self.buildings_scope.addItem("Whole split (a file per image)", "split")

    def _outlines_toggled(self, on: bool) -> None:
        self.settings.setValue("display/show_buildings", on)
        self.canvas.set_buildings_visible(on)

    def show_buildings_summary(self, text: str) -> None:
        self.buildings_label.setText(text)

    def _schedule_buildings(self) -> None:
        if not self._closed:
            self._buildings_timer.start()

    def _shown_georeference(self) -> tuple[Any, Any]:
        """``(transform, crs)`` of the shown mask: the raster window's, or (None, None)."""
        raster = self.canvas.raster()
        if raster is None or raster.info is None or not raster.info.georeferenced:
            return None, None
        from affine import Affine

        x0, y0 = self.canvas.probability_offset()
        window = Affine(*raster.info.transform[:6]) @ Affine.translation(x0, y0)
        return window, raster.info.crs_wkt

    def update_buildings(self) -> Task | None:
        """Vectorise the shown mask in the background: the count, area and outlines."""
        if self._closed:
            return None
        self._buildings_token += 1
        token = self._buildings_token
        mask = self.canvas.displayed_mask()
        if mask is None:
            self.buildings_summary = None
            if self.canvas.mask_raster() is None and self.canvas.strip_preview() is None:
                self.canvas.set_buildings(None)
            return None
        if self._buildings_task is not None:  # the running one will be followed by this one
            self._buildings_timer.start()
            return None
        mask = mask.copy()
        transform, crs = self._shown_georeference()
        x0, y0 = self.canvas.probability_offset()

        def work(on_progress, should_stop):
            buildings = mask_buildings(mask, transform, crs)
            rings = building_rings(buildings, transform)
            for ring in rings:  # window pixels -> image pixels
                ring += (x0, y0)
            return BuildingsSummary(
                token, len(buildings), buildings.total_area, buildings.unit, rings
            )

        def done(summary: BuildingsSummary):
            if summary.token != self._buildings_token or self._closed:
                return
            self.buildings_summary = summary
            where = "Visible area: " if self.canvas.raster() is not None else ""
            self.buildings_label.setText(
                where + summary_text(summary.count, summary.area, summary.unit)
            )
            self.canvas.set_buildings(summary.rings)

        def finished():
            self._buildings_task = None

        self._buildings_task = self.runner.start(
            work,
            on_finished=done,
            on_done=finished,
            name="buildings",
            on_failed=lambda e: self.status_message.emit(f"Buildings: {describe(e)}"),
        )
        return self._buildings_task

    def wait_buildings(self, timeout_ms: int = 30_000) -> bool:
        """Wait for the pending building count (tests)."""
        if self._buildings_timer.isActive():
            self._buildings_timer.stop()
            self.update_buildings()
        task = self._buildings_task
        ok = True if task is None else task.wait(timeout_ms)
        if self._buildings_timer.isActive():
            self._buildings_timer.stop()
            task = self.update_buildings()
            ok = (True if task is None else task.wait(timeout_ms)) and ok
        return ok

    def choose_buildings_export(self) -> None:
        scope = self.buildings_scope.currentData()
        suffix = self.buildings_format.currentData()
        start = self.settings.value("export/last_folder", str(Path.home()))
        if scope == "split":
            folder = QFileDialog.getExistingDirectory(self, "Export buildings to folder", start)
            if folder:
                self.settings.setValue("export/last_folder", folder)
                self.export_buildings(Path(folder), scope, suffix)
            return
        name = "buildings" + suffix
        if self.canvas.raster() is not None:
            name = f"{self.canvas.raster().path.stem}_buildings{suffix}"
        elif self._current is not None:
            name = f"{Path(self._current.name).stem}{suffix}"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export buildings",
            str(Path(start) / name),
            "GeoPackage (*.gpkg);;GeoJSON (*.geojson)",
        )
        if path:
            self.settings.setValue("export/last_folder", str(Path(path).parent))
            self.export_buildings(Path(path), scope)

    def export_buildings(
        self,
        target: Path,
        scope: str = "image",
        suffix: str = ".gpkg",
        mask_path: Path | None = None,
    ) -> Task | None:
        """Write building polygons: ``target`` is the file (scope image/window/whole) or the
        folder (scope split, one ``NAME<suffix>`` per image)."""
        threshold, dilation = self.canvas.state.threshold, self.canvas.state.dilation
        if self._task is not None or self.orthophoto.is_busy():
            self.status_message.emit("Wait for the running prediction to finish.")
            return None
        target = Path(target)
        if scope in ("image", "window"):
            mask = self.canvas.displayed_mask()
            if mask is None:
                show_error(self, "Nothing to export", "Predict first: no prediction is shown.")
                return None
            mask = mask.copy()
            transform, crs = self._shown_georeference()

            def work(on_progress, should_stop):
                from core.vector import write_buildings

                buildings = mask_buildings(mask, transform, crs)
                write_buildings(target, buildings)
                return [(target, len(buildings))]
        elif scope == "whole":
            result = self.orthophoto.last_result
            mask_path = mask_path or (result.mask_path if result is not None else None)
            if mask_path is None:
                chosen, _ = QFileDialog.getOpenFileName(
                    self,
                    "The orthophoto's mask (from Predict whole orthophoto)",
                    str(target.parent),
                    "GeoTIFF (*.tif *.tiff)",
                )
                if not chosen:
                    return None
                mask_path = Path(chosen)
            prob_path = (
                result.probability_path
                if result is not None and result.mask_path == mask_path
                else None
            )

            def work(on_progress, should_stop):
                from core.raster import open_raster
                from core.vector.mask_files import vectorize_mask_file

                with open_raster(mask_path, bands=(1,)) as raster:
                    georeferenced = raster.crs is not None
                written = vectorize_mask_file(
                    mask_path,
                    target,
                    probability_path=prob_path,
                    simplify=SIMPLIFY_M if georeferenced else 0.0,
                    on_progress=on_progress,
                    should_stop=should_stop,
                )
                return [(written.path, written.buildings)]
        else:
            samples = self.browser.samples(self.split_box.currentData())
            jobs = [(s, self.cache.get(self._key(s))) for s in samples]
            jobs = [(s, p) for s, p in jobs if p is not None]
            if not jobs:
                show_error(
                    self,
                    "Nothing to export",
                    "Predict the split first: none of its images has a prediction.",
                )
                return None

            def work(on_progress, should_stop):
                from core.postprocess import to_mask
                from core.progress import check_stop
                from core.vector import write_buildings

                out = []
                target.mkdir(parents=True, exist_ok=True)
                for i, (sample, prob) in enumerate(jobs):
                    check_stop(should_stop, "building export")
                    buildings = mask_buildings(to_mask(prob, threshold, dilation))
                    path = target / f"{Path(sample.name).stem}{suffix}"
                    write_buildings(path, buildings)
                    out.append((path, len(buildings)))
                    on_progress(Progress(i + 1, len(jobs), sample.name))
                return out

        def progress(event):
            if isinstance(event, Progress) and event.total:
                self.progress.setRange(0, event.total)
                self.progress.setValue(event.done)

        def done(written):
            count = sum(n for _p, n in written)
            where = written[0][0] if len(written) == 1 else target
            self.status_message.emit(f"Exported {count} building(s) to {where}")

        return self._start(work, done, "Exporting buildings…", busy=True, on_progress=progress)
