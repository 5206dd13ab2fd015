"""The split's scores in the prediction panel: re-scored from the cached probabilities when the
threshold or dilation changes (debounced, in the background) and when a label is saved, and shown
in the metrics table.

:class:`SplitScoresMixin` is composed into :class:`rooftop_gui.prediction_panel.PredictionPanel`,
whose canvas, browser, cache, runner, ``scores`` (``core.scores.SplitScores``) and metrics table
it uses; the scoring itself is ``core.scores``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidgetItem

from core.errors import RooftopError
from core.metrics import Confusion
from core.progress import Stopped
from rooftop_gui.browser import Key, sample_key
from rooftop_gui.errors import describe

#: (key of ``Confusion.scores()``, row name) of the metrics table.
METRICS = (
    ("iou", "IoU"),
    ("f1", "F1"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("accuracy", "Accuracy"),
)


class SplitScoresMixin:
    """Scores of the predicted split and of saved labels (see the module docstring)."""

    def display_changed(self) -> None:
        """Threshold or dilation changed: re-score the predicted split (debounced)."""
        self._schedule_buildings()
        if self.scores is not None and self.scores.per_image:
            self._rescore_timer.start()
        self._show_metrics()
        if self._current is not None and self.canvas.displayed_mask() is not None:
            label = self.canvas.label_array()
            if label is not None:
                conf = Confusion.from_masks(self.canvas.displayed_mask(), label)
                self.browser.set_iou({sample_key(self._current): conf.iou})

    def rescore(self) -> None:
        """Recompute the split's confusions from cached probabilities at the shown settings."""
        if self._closed:
            return
        scores = self.scores
        if scores is None or (self._task is not None) or self._rescore_task is not None:
            if scores is not None and self._rescore_task is not None:
                self._rescore_timer.start()
            return
        threshold, dilation = self.canvas.state.threshold, self.canvas.state.dilation
        if (threshold, dilation) == (scores.threshold, scores.dilation):
            return
        by_key = {sample_key(s): s for s in self.browser.samples(scores.split)}
        jobs = []
        for key in scores.per_image:
            sample = by_key.get(key)
            prob = self.cache.get(self._key(sample, scores.model)) if sample else None
            if prob is None:
                continue
            jobs.append((key, prob, sample.label_path))
        if len(jobs) < len(scores.per_image):
            self.metrics_note.setText(
                "Some predictions are no longer cached: predict the split "
                "again to score it at these settings."
            )
            return
        saves_at_start = dict(self._label_saves)

        def work(on_progress, should_stop):
            from core import scores as core_scores

            try:
                return core_scores.score_all(jobs, threshold, dilation, should_stop)
            except Stopped:
                return None

        def done(result):
            if result is None or self.scores is not scores:
                return
            for key, count in self._label_saves.items():
                if key[0] == scores.split and count != saves_at_start.get(key):
                    # saved while re-scoring: the worker may have read the label before
                    conf = self._score_saved_label(key, threshold, dilation)
                    if conf is None:
                        result.pop(key, None)
                    else:
                        result[key] = conf
            scores.per_image = result
            scores.threshold, scores.dilation = threshold, dilation
            self.browser.set_iou({k: c.iou for k, c in result.items()})
            self._show_metrics()

        def finished():
            self._rescore_task = None
            if self.scores is scores and (
                self.canvas.state.threshold,
                self.canvas.state.dilation,
            ) != (scores.threshold, scores.dilation):
                self._rescore_timer.start()

        self._rescore_task = self.runner.start(
            work,
            on_finished=done,
            on_done=finished,
            on_failed=lambda e: self.status_message.emit(f"Re-scoring failed: {describe(e)}"),
            name="rescore",
        )

    # ----------------------------------------------------------------- saved labels
    def label_saved(self, sample: Any, label_path: Path) -> None:
        """``sample``'s label was saved to ``label_path``: score its cached prediction against
        the new label, in the browser's IoU column and, when its split was predicted, in the
        split's metrics. Without a cached prediction its old IoU (if any) is dropped: it was
        measured against the old label."""
        if self._closed:
            return
        key = sample_key(sample)
        self._label_saves[key] = self._label_saves.get(key, 0) + 1
        if self.model_path is None:
            return
        shown = (self.canvas.state.threshold, self.canvas.state.dilation)
        conf = self._score(sample, Path(label_path), *shown)
        if conf is None:
            self.browser.clear_iou([key])
        else:
            self.browser.set_iou({key: conf.iou})
        scores = self.scores
        if scores is None or scores.split != sample.split:
            return
        if (scores.threshold, scores.dilation) != shown:  # a re-scoring is on its way
            conf = self._score(sample, Path(label_path), scores.threshold, scores.dilation)
        if conf is None:
            scores.per_image.pop(key, None)
        else:
            scores.per_image[key] = conf
        self._show_metrics()

    def _score(
        self, sample: Any, label_path: Path | None, threshold: float, dilation: int
    ) -> Confusion | None:
        """``sample``'s prediction by the active model against its label, at these settings.

        From the canvas when it shows this image at these settings (its label is the one just
        saved, its prediction mask is already made), else from the cached probability map and the
        label on disk. None when no prediction is cached or the label cannot be read.
        """
        if self.model_path is None or label_path is None:
            return None
        canvas = self.canvas
        if self._is_current(self._key(sample)) and (
            canvas.state.threshold,
            canvas.state.dilation,
        ) == (threshold, dilation):
            shown, label = canvas.displayed_mask(), canvas.label_array()
            if shown is not None and label is not None and shown.shape == label.shape:
                return Confusion.from_masks(shown, label)
        prob = self.cached_probability(sample)
        if prob is None:
            return None
        from core import scores as core_scores

        try:
            return core_scores.label_confusion(prob, label_path, threshold, dilation)
        except RooftopError:
            return None

    def _score_saved_label(self, key: Key, threshold: float, dilation: int) -> Confusion | None:
        """:meth:`_score` of the image ``key`` as the browser holds it now (with its label)."""
        sample = next((s for s in self.browser.samples(key[0]) if sample_key(s) == key), None)
        if sample is None:
            return None
        return self._score(sample, getattr(sample, "label_path", None), threshold, dilation)

    def _show_metrics(self) -> None:
        scores = self.scores
        if scores is None or not scores.per_image:
            self.metrics.setHorizontalHeaderLabels(["not predicted yet"])
            for row in range(len(METRICS)):
                self.metrics.setItem(row, 0, QTableWidgetItem(""))
            if scores is None:
                self.metrics_note.setText("Predict a split to see its metrics.")
            return
        values = scores.total().scores()
        self.metrics.setHorizontalHeaderLabels([f"{scores.split} ({len(scores.per_image)} images)"])
        for row, (key, _name) in enumerate(METRICS):
            item = QTableWidgetItem(f"{values[key]:.4f}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.metrics.setItem(row, 0, item)
        dil = f"dilation {scores.dilation}" if scores.dilation else "no dilation"
        note = f"Model {scores.model.name}, threshold {scores.threshold:.2f}, {dil}."
        if (self.canvas.state.threshold, self.canvas.state.dilation) != (
            scores.threshold,
            scores.dilation,
        ):
            note += " Updating to the shown settings…"
        self.metrics_note.setText(note)

    def metric_values(self) -> dict[str, float] | None:
        return (
            None
            if self.scores is None or not self.scores.per_image
            else self.scores.total().scores()
        )
