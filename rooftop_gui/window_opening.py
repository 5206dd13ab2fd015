"""What the main window opens: dataset folders, loose images, a large image to cut into a
dataset, orthophotos of any size, and on a first start the demo dataset (made in the
background).

:class:`OpeningMixin` is composed into :class:`rooftop_gui.main_window.MainWindow`, whose panels,
settings and runner it uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QProgressDialog

from core.errors import RooftopError
from core.progress import Progress, Stopped
from rooftop_gui import settings as cfg
from rooftop_gui.errors import describe, show_error

log = logging.getLogger(__name__)


class OpeningMixin:
    """Opening datasets, images, orthophotos and the demo (see the module docstring)."""

    # ----------------------------------------------------------------- datasets
    def choose_dataset(self) -> None:
        start = str(self.dataset_path.parent) if self.dataset_path else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", start)
        if path:
            self.open_dataset(Path(path))

    def choose_images(self) -> None:
        """Open one or more image files (or a folder of images, from the folder button) to view,
        predict, export and label without generating a dataset."""
        start = str(self.dataset_path) if self.dataset_path else str(Path.home())
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Open images",
            start,
            "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp);;All files (*)",
        )
        if paths:
            self.open_images([Path(p) for p in paths])

    def open_images(self, paths: list[Path]) -> bool:
        """Show loose images (files or folders) as the "test" split of a dataset rooted at their
        folder (``core.image_collection``): labels are saved beside them as ``X_label.png``."""
        from core.image_collection import open_images

        try:
            dataset = open_images(paths)
        except RooftopError as exc:
            show_error(self, "Cannot open these images", exc)
            self.statusBar().showMessage(describe(exc), 10000)
            return False
        return self._show_dataset(
            dataset,
            dataset.root,
            remember=False,
            message=f"Opened {len(dataset.test)} image(s) in {dataset.root}: predict them, "
            "export, or paint labels (saved beside each image as NAME_label.png)",
        )

    def open_dataset(self, path: Path) -> bool:
        """Open a dataset folder (``train/`` and ``test/`` with ``data/`` and ``label/``); a folder
        of plain images opens as loose images."""
        from core.dataset import open_dataset
        from core.io import list_images

        try:
            dataset = open_dataset(path)
        except RooftopError as exc:
            if Path(path).is_dir() and list_images(path):  # a folder of images, not a dataset
                return self.open_images([Path(path)])
            show_error(self, "Cannot open dataset", exc)
            self.statusBar().showMessage(describe(exc), 10000)
            return False
        return self._show_dataset(
            dataset,
            Path(path),
            remember=True,
            message=f"Opened {path}: {len(dataset.train)} train and {len(dataset.test)} test "
            "images",
        )

    def _show_dataset(self, dataset, path: Path, remember: bool, message: str) -> bool:
        """Make ``dataset`` (rooted at ``path``) the one the window shows; ``message`` goes to
        the status bar before the first image is selected and recovery copies are offered (their
        own messages then follow it)."""
        if not self.annotation.resolve_unsaved():  # Cancel: keep the edits, stay here
            return False
        self.dataset, self.dataset_path = dataset, Path(path)
        self.annotation.set_dataset(Path(path))
        self.prediction.set_dataset(Path(path))  # before the browser selects its first image
        self.browser.set_dataset(dataset)
        if remember:
            cfg.add_recent_dataset(self.settings, Path(path))
        if hasattr(self.training, "set_dataset"):
            self.training.set_dataset(Path(path))
        self._remove_stale_temp_files()
        self._update_title()
        self.statusBar().showMessage(message, 10000)
        self.canvas.set_message("Pick an image in the Dataset panel (PgDown / PgUp to step).")
        self.prediction._update_enabled()
        if self.browser.proxy.rowCount():
            self.browser.select_row(0)
        self.dataset_opened.emit(Path(path))
        restored = self.annotation.offer_recovery(self.browser.samples())
        current = self.current_sample()
        if restored and (
            current is None
            or all((s.split, s.name) != (current.split, current.name) for s in restored)
        ):
            self.browser.select(restored[0].split, restored[0].name)
        return True

    def _remove_stale_temp_files(self) -> None:
        """Leftovers of checkpoint writes killed midway in the models folder the training panel
        saves to (core.dataset.open_dataset has cleaned the dataset's own folders)."""
        from core.checkpoint import remove_stale_model_temp_files

        models_dir = getattr(self.training, "models_dir", lambda: None)()
        if models_dir is None:
            return
        removed = remove_stale_model_temp_files(models_dir)
        if removed:
            log.info("removed %d stale temporary file(s) from %s", len(removed), models_dir)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = cfg.recent_datasets(self.settings)
        for path in recent:
            act = self.recent_menu.addAction(f"{path.name}   —   {path.parent}")
            act.triggered.connect(lambda _c=False, p=path: self.open_dataset(p))
        if not recent:
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def choose_large_image(self) -> None:
        from rooftop_gui.generate_dialog import GenerateDialog

        image, _ = QFileDialog.getOpenFileName(
            self,
            "Open large image",
            str(Path.home()),
            "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp);;All files (*)",
        )
        if not image:
            return
        mask, _ = QFileDialog.getOpenFileName(
            self,
            "Its roof mask (Cancel if there is none)",
            str(Path(image).parent),
            "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp);;All files (*)",
        )
        dialog = GenerateDialog(
            self.runner, self.settings, Path(image), Path(mask) if mask else None, self
        )
        if dialog.exec() and dialog.result_dir is not None:
            self.open_dataset(dialog.result_dir)

    # ----------------------------------------------------------------- orthophotos
    def choose_orthophoto(self) -> None:
        start = self.settings.value("ortho/last_open", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open orthophoto",
            start,
            "Rasters (*.tif *.tiff *.jp2 *.j2k *.vrt *.img);;All files (*)",
        )
        if path:
            self.settings.setValue("ortho/last_open", str(Path(path).parent))
            self.open_orthophoto(Path(path))

    def open_orthophoto(self, path: Path) -> bool:
        """Show a (georeferenced) raster of any size by tiles, its overview first."""
        from rooftop_gui.raster_view import RasterTileSource

        path = Path(path)
        if not path.is_file():
            show_error(self, "Cannot open orthophoto", f"{path}: file not found")
            return False
        if not self.annotation.resolve_unsaved():
            return False
        if self.prediction.is_busy() or self.prediction.orthophoto.is_busy():
            self.statusBar().showMessage("Wait for the running prediction to finish.", 8000)
            return False
        self.annotation.set_sample(None)
        self.prediction.set_current(None)
        source = RasterTileSource(path, self.runner, overview_cache_dir=cfg.overview_cache_dir())
        source.failed.connect(lambda exc, p=path: self._orthophoto_failed(p, exc))
        self.canvas.set_raster(source)
        self.prediction.raster_changed()
        self.size_label.setText("")
        self.setWindowFilePath(str(path))
        self.statusBar().showMessage(f"Opening {path.name}…", 8000)
        return True

    def _orthophoto_failed(self, path: Path, exc: BaseException) -> None:
        if self.canvas.raster() is not None and self.canvas.raster().path == path:
            self.canvas.set_raster(None)
            self.canvas.set_message(f"Cannot show this orthophoto:\n{describe(exc)}")
            self.prediction.raster_changed()
        show_error(self, "Cannot open orthophoto", exc)

    def _raster_info_changed(self) -> None:
        raster = self.canvas.raster()
        if raster is None or raster.info is None:
            return
        info = raster.info
        if getattr(self, "_raster_described", None) is not info:
            self._raster_described = info
            self.size_label.setText(f"{info.width} × {info.height}")
            self.prediction.orthophoto.raster_changed()
            self.statusBar().showMessage(f"{info.path.name}: {info.describe()}", 8000)

    # ----------------------------------------------------------------- first start
    def open_initial(self, dataset: Path | None) -> None:
        """Open ``dataset``, else the last one, else the demo (made now if needed)."""
        if dataset is not None and Path(dataset).is_file():
            from core.raster import RASTER_SUFFIXES  # rasterio, not torch

            if Path(dataset).suffix.lower() in RASTER_SUFFIXES:
                self.open_orthophoto(Path(dataset))
            else:
                self.open_images([Path(dataset)])
            return
        if dataset is not None:
            self.open_dataset(Path(dataset))
            return
        last = self.settings.value("last_dataset", "")
        if last and Path(last).is_dir() and self.open_dataset(Path(last)):
            return
        demo = cfg.demo_dir() / "dataset"
        if (demo / "train").is_dir():
            self.open_dataset(demo)
            return
        QTimer.singleShot(0, self.make_demo)

    def make_demo(self, size: int = 2048) -> None:
        """Write the synthetic demo scene and cut it into a dataset, in the background."""
        folder = cfg.demo_dir()
        dialog = QProgressDialog(
            "Making the demo dataset (a synthetic aerial scene)…", "Cancel", 0, 0, self
        )
        dialog.setWindowTitle("First start")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        self._demo_dialog = dialog

        def work(on_progress, should_stop):
            from core.generate import generate_dataset
            from core.synthetic import write_demo

            image, labels = write_demo(folder, size=size, seed=0)
            return generate_dataset(
                image, labels, folder / "dataset", on_progress=on_progress, should_stop=should_stop
            )

        def progress(event: Progress):
            if isinstance(event, Progress) and event.total:
                dialog.setMaximum(event.total)
                dialog.setValue(event.done)

        def finished(result):
            dialog.reset()
            self.open_dataset(Path(result.dataset_dir))

        def failed(exc):
            dialog.reset()
            # Cancel, or the window closing while the demo is made, stops it: not an error (a
            # modal error box there would also block the window from closing)
            if not isinstance(exc, Stopped) and not dialog.wasCanceled():
                show_error(self, "Cannot make the demo dataset", exc)

        task = self.runner.start(
            work, on_progress=progress, on_finished=finished, on_failed=failed, name="demo"
        )
        dialog.canceled.connect(task.request_stop)
        dialog.show()
        self._demo_task = task
