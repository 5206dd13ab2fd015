"""Active learning in the window (issue 16): ask for the labels that teach most.

* **Live preview**: while a model trains, the current image's prediction is redrawn with the
  weights of the epoch just finished (``core.training.loop.train(on_weights=...)``), at most
  every :data:`LIVE_INTERVAL_S` seconds, predicted in the background on the window's
  :class:`~rooftop_gui.workers.TaskRunner`; the user sees where to paint next. The training
  panel's "Live preview" box turns it on or off.
* **Sort by label next** (N): the browser's Doubt column ranks the images by the mean
  uncertainty (:mod:`core.uncertainty`) over their unlabelled pixels, from the predictions
  made so far (Predict split), weighed by how typical each image looks of the others
  (:mod:`core.label_next`, density): the most doubtful of the images like many first, an
  unusual one later. The looks are computed in the background once per image file (cached by
  its modification time); until they are there, the doubt alone ranks.
* **Jump to doubt** (J): pan and zoom the canvas to the window of the current image where the
  model doubts most (strokes count as known).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QPointF, Signal

from core.errors import RooftopError
from rooftop_gui.annotation_toolbar import make_action
from rooftop_gui.browser import sample_key

log = logging.getLogger(__name__)

#: The live preview predicts at most this often (seconds between two handed-out weights).
LIVE_INTERVAL_S = 15.0
#: The side of the window Jump to doubt zooms to: a quarter of the image's short side, within
#: these bounds (image pixels), and at most half of it.
JUMP_MIN, JUMP_MAX = 64, 384


@dataclass
class LiveWeights:
    """One epoch's weights handed out by a training run, for the live preview."""

    epoch: int
    state: dict = field(repr=False)
    arch: str = "liteunet"
    arch_params: dict = field(default_factory=dict)
    input_stretch: str = "none"
    ground_resolution_cm: float | None = None  # the run's (core.ground_resolution)


def live_weights_hook(
    config: Any,
    emit: Callable[[Any], None],
    enabled: Callable[[], bool],
    interval: float = LIVE_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
):
    """An ``on_weights(epoch, state)`` for ``train()`` that passes :class:`LiveWeights` to
    ``emit`` (the worker's progress channel) when ``enabled()`` and at least ``interval`` s
    after the previous one (the first epoch always passes)."""
    last = [-float("inf")]

    def on_weights(epoch: int, state: dict) -> None:
        if not enabled():
            return
        now = clock()
        if now - last[0] < interval:
            return
        last[0] = now
        emit(
            LiveWeights(
                epoch,
                state,
                config.arch,
                dict(config.arch_params),
                config.input_stretch,
                config.ground_resolution_cm,
            )
        )

    return on_weights


def predict_with_weights(weights: LiveWeights, image: np.ndarray, source: Any = None) -> np.ndarray:
    """The probability map of ``image`` (of ``source``, its dataset sample or file, which may
    give its ground resolution) by a model of ``weights`` (CPU; worker thread)."""
    import torch

    from core.models import build_model
    from core.predict import image_resolution, predict_probabilities

    model = build_model(weights.arch, **weights.arch_params)
    model.load_state_dict(weights.state)
    model.input_stretch = weights.input_stretch
    model.ground_resolution_cm = weights.ground_resolution_cm
    model.eval()
    at = None if source is None else image_resolution(source, None, model)
    with torch.inference_mode():
        return predict_probabilities(model, image, device="cpu", ground_resolution=at)


class ActiveLearning(QObject):
    """Live preview, label-next order and jump to doubt for a :class:`MainWindow`."""

    status_message = Signal(str)
    preview_shown = Signal(int)  # the epoch whose weights the canvas shows

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = window.canvas
        self.browser = window.browser
        self.prediction = window.prediction
        self.annotation = window.annotation
        self.runner = window.runner
        self._pending: LiveWeights | None = None
        self._task = None
        self.previews = 0
        #: image path -> (modification time in ns, core.label_next.appearance of the image)
        self._looks: dict[Path, tuple[int, np.ndarray]] = {}
        self._looks_task = None
        self._sorted: dict | None = None  # the scores of the last Sort by label next

        self.label_next_action = make_action(
            self,
            window,
            "Sort by &label next",
            ["N"],
            "label-next",
            "Sort the images by how much the model doubts their unlabelled pixels (after "
            "Predict split): label the first ones next",
        )
        self.label_next_action.setProperty("shortcutGroup", "Browse")
        self.label_next_action.triggered.connect(lambda _c=False: self.sort_label_next())
        self.jump_action = make_action(
            self,
            window,
            "&Jump to doubt",
            ["J"],
            "jump-doubt",
            "Zoom to the region of this image where the model doubts most: paint strokes there",
        )
        self.jump_action.setProperty("shortcutGroup", "View")
        self.jump_action.triggered.connect(lambda _c=False: self.jump_to_doubt())
        training = getattr(window, "training", None)
        if training is not None and hasattr(training, "live_weights"):
            training.live_weights.connect(self.live_weights)

    def actions_list(self) -> list:
        return [self.label_next_action, self.jump_action]

    # ------------------------------------------------------------------ label next
    def _labelled_pixels(self, sample: Any, shape: tuple[int, int]) -> np.ndarray | None:
        """Known pixels: everything for a full label, the strokes for a partly labelled image."""
        from core.scribbles import read_scribble

        current = self.annotation.sample
        if (
            current is not None
            and sample_key(current) == sample_key(sample)
            and self.annotation.strokes is not None
        ):
            return self.annotation.strokes.labelled
        path = getattr(sample, "scribble_path", None)
        if path is None or not Path(path).is_file():
            return None
        try:
            return read_scribble(path, shape) != 0
        except RooftopError:
            return None

    def doubt_scores(self) -> dict:
        """``{(split, name): mean uncertainty over unlabelled pixels}`` of the predicted images
        (a fully labelled image scores 0: there is nothing left to label)."""
        from core.uncertainty import image_uncertainty

        threshold = self.canvas.state.threshold
        scores = {}
        for sample in self.browser.samples():
            prob = self.prediction.cached_probability(sample)
            if prob is None:
                continue
            key = sample_key(sample)
            if self.browser.model.label_state(key) == "labelled":
                scores[key] = 0.0
                continue
            scores[key] = image_uncertainty(
                prob, self._labelled_pixels(sample, prob.shape), min(max(threshold, 0.01), 0.99)
            )
        return scores

    def sort_label_next(self) -> dict:
        scores = self.doubt_scores()
        if not scores:
            self.status_message.emit(
                "No predictions yet: predict the split first "
                "(Prediction > Predict split), then sort by label next."
            )
            return scores
        self.browser.model.clear_doubt()
        self._sorted = scores
        paths = self._image_paths(scores)
        looks = self._cached_looks(paths)
        if len(looks) == len(paths):
            self.browser.set_doubt(scores, looks)
        else:
            self.browser.set_doubt(scores)
            self._compute_looks(scores, paths, {k: p for k, p in paths.items() if k not in looks})
        self.browser.sort_label_next()
        self.status_message.emit(
            f"Sorted {len(scores)} image(s) by label next: most doubtful first, unusual ones later."
        )
        return scores

    def _image_paths(self, scores: dict) -> dict:
        return {
            sample_key(s): Path(s.image_path)
            for s in self.browser.samples()
            if sample_key(s) in scores
        }

    @staticmethod
    def _mtime(path: Path) -> int | None:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return None

    def _cached_looks(self, paths: dict) -> dict:
        looks = {}
        for key, path in paths.items():
            cached = self._looks.get(path)
            if cached is not None and cached[0] == self._mtime(path):
                looks[key] = cached[1]
        return looks

    def _compute_looks(self, scores: dict, paths: dict, todo: dict) -> None:
        """Compute the looks of ``todo`` (of ``paths``, the scored images) in the background,
        then rank ``scores`` with them (if they are still the browser's: no newer sort or
        dataset since)."""
        if self._looks_task is not None:
            self._looks_task.request_stop()

        def work(on_progress, should_stop):
            from core.io import read_image
            from core.label_next import appearance

            out = {}
            for path in todo.values():
                if should_stop():
                    return None
                mtime = self._mtime(path)
                try:
                    out[path] = (mtime, appearance(read_image(path)))
                except (RooftopError, ValueError) as exc:  # unreadable: it ranks without one
                    log.info("no look for %s: %s", path, exc)
            return out

        def finished(computed):
            if not computed:
                return
            self._looks.update(computed)
            if self._sorted is not scores or self._image_paths(scores) != paths:
                return  # sorted again since, or another dataset is open
            looks = self._cached_looks(paths)
            if len(looks) < len(paths):
                return  # an image could not be read: the doubt alone stays the rank
            self.browser.set_doubt(scores, looks)
            self.browser.sort_label_next()

        started = []

        def done():
            if started and self._looks_task is started[0]:
                self._looks_task = None

        self._looks_task = self.runner.start(
            work, on_finished=finished, on_done=done, name="label-next looks"
        )
        started.append(self._looks_task)

    # ------------------------------------------------------------------ jump
    def jump_to_doubt(self):
        """Zoom and centre the canvas on the most uncertain window; returns it (or None)."""
        from core.uncertainty import most_uncertain_window, uncertainty

        image, prob = self.canvas.image(), self.canvas.probability()
        if image is None or prob is None or prob.shape != image.shape[:2]:
            self.status_message.emit(
                "No prediction on this image: predict it first "
                "(Ctrl+Return) or train with Live preview on."
            )
            return None
        threshold = min(max(self.canvas.state.threshold, 0.01), 0.99)
        short = min(image.shape[:2])
        side = int(max(8, min(JUMP_MAX, max(JUMP_MIN, short // 4), short // 2)))
        strokes = self.annotation.strokes
        known = strokes.labelled if strokes is not None else None
        window = most_uncertain_window(uncertainty(prob, threshold), side, known)
        view = self.canvas.viewport().rect()
        factor = 0.9 * min(view.width() / window.width, view.height() / window.height)
        self.canvas.set_zoom(max(factor, 0.05))
        self.canvas.centerOn(QPointF(*window.centre))
        self.status_message.emit(
            f"The model doubts most here (mean uncertainty "
            f"{window.mean:.2f}): paint roof or background strokes."
        )
        return window

    # ------------------------------------------------------------------ live preview
    def live_weights(self, weights: LiveWeights) -> None:
        """A training epoch's weights: predict the current image with them (newest wins)."""
        if self.canvas.image() is None or self.annotation.sample is None:
            return
        self._pending = weights
        if self._task is None:
            self._start_preview()

    def _start_preview(self) -> None:
        weights, self._pending = self._pending, None
        sample, image = self.annotation.sample, self.canvas.image()
        if weights is None or sample is None or image is None:
            return
        key = sample_key(sample)
        image = image.copy()

        def work(_on_progress, _should_stop):
            return predict_with_weights(weights, image, sample)

        def finished(prob):
            current = self.annotation.sample
            if (
                current is None
                or sample_key(current) != key
                or self.canvas.image() is None
                or self.canvas.image().shape[:2] != prob.shape
            ):
                return
            self.canvas.set_probability(prob)
            self.previews += 1
            self.preview_shown.emit(weights.epoch)
            self.status_message.emit(
                f"Live preview: {current.name} predicted with the weights of epoch {weights.epoch}"
            )

        def failed(exc):
            log.warning("live preview failed: %s", exc)
            self.status_message.emit(f"Live preview failed: {exc}")

        def done():
            self._task = None
            if self._pending is not None:
                self._start_preview()

        self._task = self.runner.start(
            work, on_finished=finished, on_failed=failed, on_done=done, name="live-preview"
        )

    def is_busy(self) -> bool:
        return self._task is not None
