"""Export of masks and composites from the prediction panel: of the current image or of the
split, with the threshold and dilation shown (``core.export.export_outputs``, in a worker);
images without a prediction yet are predicted on the way, at the model's ground resolution, and
their probabilities cached (:class:`PredictionMade`).

:class:`ExportMixin` is composed into :class:`rooftop_gui.prediction_panel.PredictionPanel`, whose
canvas, browser, cache, model holder, settings and task plumbing (``_start``) it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QFileDialog

from core.progress import Progress
from core.result_cache import ResultKey
from rooftop_gui.errors import show_error
from rooftop_gui.workers import Task


@dataclass(frozen=True)
class PredictionMade:
    """A probability map made on the way (an export of an image that had none): cache it."""

    key: ResultKey | None
    prob: np.ndarray


class ExportMixin:
    """Export of masks and composites (see the module docstring)."""

    def choose_export(self, what: str) -> None:
        start = self.settings.value("export/last_folder", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self, f"Export {what} to folder", start)
        if folder:
            self.settings.setValue("export/last_folder", folder)
            self.export(what, Path(folder), self.scope_box.currentData())

    def export(self, what: str, out_dir: Path, scope: str = "image") -> Task | None:
        """Write ``what`` ("masks" or "composites") of the current image or the split."""
        from core.export import ExportItem

        threshold, dilation = self.canvas.state.threshold, self.canvas.state.dilation
        if scope == "image":
            sample = self._current
            prob = self.canvas.probability()
            if sample is None or prob is None:
                show_error(
                    self, "Nothing to export", "Predict the current image first (Ctrl+Return)."
                )
                return None
            items = [
                ExportItem(
                    sample.name,
                    sample.image_path,
                    sample.label_path,
                    prob,
                    self.canvas.image(),
                    self.canvas.label_array(),
                    tag=self._key(sample),
                    ground_resolution_cm=sample.ground_resolution_cm,
                )
            ]
            model_path = self.model_path
        else:
            split = self.split_box.currentData()
            samples = self.browser.samples(split)
            if not samples:
                show_error(self, "Nothing to export", f"The {split} split has no images.")
                return None
            model_path = self.model_path
            keys = [self._key(s) for s in samples]
            items = [
                ExportItem(
                    s.name,
                    s.image_path,
                    s.label_path,
                    self.cache.get(key),
                    tag=key,
                    ground_resolution_cm=s.ground_resolution_cm,
                )
                for s, key in zip(samples, keys, strict=True)
            ]
            if model_path is None and any(item.prob is None for item in items):
                show_error(
                    self,
                    "No model",
                    "Load or train a model to predict the images that have no prediction yet.",
                )
                return None
        if self._task is not None:
            self.status_message.emit("Wait for the running prediction to finish.")
            return None
        holder = self.models

        def work(on_progress, should_stop):
            from core.export import export_outputs

            def predict(item, image):
                from core.predict import image_resolution, predict_probabilities

                loaded = holder.get(model_path)  # loaded once, for the first image without one
                prob = predict_probabilities(
                    loaded.model,
                    image,
                    should_stop=should_stop,
                    ground_resolution=image_resolution(item, None, loaded.model),
                )
                on_progress(PredictionMade(item.tag, prob))
                return prob

            return export_outputs(
                out_dir,
                what,
                items,
                threshold,
                dilation,
                predict=predict,
                on_progress=on_progress,
                should_stop=should_stop,
            )

        def progress(event):
            if isinstance(event, PredictionMade):
                self.set_probability(event.key, event.prob)
            elif isinstance(event, Progress):
                self.progress.setRange(0, event.total)
                self.progress.setValue(event.done)
                self.progress.setFormat(f"{event.done} / {event.total}")

        def done(result):
            dil = f"dilation {dilation}" if dilation else "no dilation"
            self.status_message.emit(
                f"Exported {len(result.written)} {what} to {out_dir} "
                f"(threshold {threshold:.2f}, {dil})"
            )
            if result.errors:
                show_error(
                    self, f"Some {what} could not be exported", "\n".join(result.errors[:10])
                )

        return self._start(work, done, f"Exporting {what}…", busy=True, on_progress=progress)
