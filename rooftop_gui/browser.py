"""The dataset browser: every train/test image with a thumbnail, its label status and its IoU.

Model/view so that a 5,000-image dataset stays responsive: the table model holds only the sample
list (paths from ``core.dataset.open_dataset``); thumbnails are requested by ``data()`` - which Qt
calls for visible rows only - and made in one background thread (newest request first, so what is
on screen loads first, :mod:`rooftop_gui.thumbnails`), then cached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from rooftop_gui.resources import icon
from rooftop_gui.thumbnails import THUMB, ThumbnailLoader
from rooftop_gui.workers import TaskRunner

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
SAMPLE_ROLE = Qt.ItemDataRole.UserRole + 2
Key = tuple[str, str]  # (split, name)


def sample_key(sample: Any) -> Key:
    return (sample.split, sample.name)


class SampleTableModel(QAbstractTableModel):
    """Rows: the samples of both splits. Columns: image (thumbnail + name), split, label, IoU."""

    COLUMNS = ("Image", "Split", "Label", "IoU", "Doubt")
    NAME, SPLIT, LABEL, IOU, DOUBT = range(5)
    #: The Label column: a full label, strokes only (partly labelled), nothing.
    LABELLED, PARTLY, UNLABELLED_TEXT = "✓", "◐", "—"

    def __init__(self, thumbnails: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._samples: list[Any] = []
        self._row_of: dict[Key, int] = {}
        self._row_of_path: dict[Path, int] = {}
        self._iou: dict[Key, float] = {}
        self._label: dict[Key, bool] = {}
        self._strokes: dict[Key, bool] = {}
        self._doubt: dict[Key, float] = {}
        self._looks: dict[Key, Any] = {}  # core.label_next.appearance of the scored images
        self._doubt_rank: dict[Key, int] = {}
        self._thumbs = thumbnails
        self._placeholder = icon("image")
        self._broken = icon("broken")
        thumbnails.ready.connect(self._thumbnail_ready)

    def set_samples(self, samples: list[Any]) -> None:
        self.beginResetModel()
        self._samples = list(samples)
        self._row_of = {sample_key(s): i for i, s in enumerate(self._samples)}
        self._row_of_path = {Path(s.image_path): i for i, s in enumerate(self._samples)}
        self._label = {
            sample_key(s): s.label_path is not None and Path(s.label_path).exists()
            for s in self._samples
        }
        self._strokes = {
            sample_key(s): getattr(s, "scribble_path", None) is not None
            and Path(s.scribble_path).exists()
            for s in self._samples
        }
        self._iou = {}
        self._doubt, self._looks, self._doubt_rank = {}, {}, {}
        self.endResetModel()

    def samples(self) -> list[Any]:
        return list(self._samples)

    def sample(self, row: int) -> Any:
        return self._samples[row]

    def row_of(self, key: Key) -> int | None:
        return self._row_of.get(key)

    def set_iou(self, scores: dict[Key, float]) -> None:
        self._iou.update(scores)
        rows = [self._row_of[k] for k in scores if k in self._row_of]
        if rows:
            self.dataChanged.emit(self.index(min(rows), self.IOU), self.index(max(rows), self.IOU))

    def clear_iou(self, keys: Iterable[Key] | None = None) -> None:
        """Forget the IoU of every image, or of ``keys`` only (their scores went stale)."""
        if keys is not None:
            rows = [
                self._row_of[k]
                for k in keys
                if self._iou.pop(k, None) is not None and k in self._row_of
            ]
            if rows:
                self.dataChanged.emit(
                    self.index(min(rows), self.IOU), self.index(max(rows), self.IOU)
                )
            return
        self._iou.clear()
        if self._samples:
            self.dataChanged.emit(
                self.index(0, self.IOU), self.index(len(self._samples) - 1, self.IOU)
            )

    def iou(self, key: Key) -> float | None:
        return self._iou.get(key)

    def replace_sample(self, row: int, sample: Any) -> None:
        """Put ``sample`` (same split and name, e.g. with its new label path) in ``row``."""
        self._samples[row] = sample
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def set_has_label(self, key: Key, present: bool) -> None:
        self._label[key] = present
        row = self._row_of.get(key)
        if row is not None:
            self.dataChanged.emit(self.index(row, self.LABEL), self.index(row, self.LABEL))

    def set_has_strokes(self, key: Key, present: bool) -> None:
        self._strokes[key] = present
        row = self._row_of.get(key)
        if row is not None:
            self.dataChanged.emit(self.index(row, self.LABEL), self.index(row, self.LABEL))

    def label_state(self, key: Key) -> str:
        """ "labelled", "partly labelled" (strokes only) or "unlabelled"."""
        if self._label.get(key):
            return "labelled"
        return "partly labelled" if self._strokes.get(key) else "unlabelled"

    def set_doubt(self, scores: dict[Key, float], looks: dict[Key, Any] | None = None) -> None:
        """The "label next" scores (mean uncertainty over unlabelled pixels) of some images, and
        optionally their looks (:func:`core.label_next.appearance`). Once every scored image has
        a look, the rank weighs the doubt as :data:`core.label_next.WINDOW_WEIGHTS` says (how
        typical each image is of the others); until then, by the doubt alone."""
        from core.label_next import WINDOW_WEIGHTS, label_next_order

        self._doubt.update(scores)
        self._looks.update(looks or {})
        keys = [k for k in map(sample_key, self._samples) if k in self._doubt]
        complete = bool(keys) and all(k in self._looks for k in keys)
        order = label_next_order(
            self._doubt,
            keys,
            {k: self._looks[k] for k in keys} if complete else None,
            weigh=WINDOW_WEIGHTS,
        )
        self._doubt_rank = {key: rank for rank, key in enumerate(order)}
        if self._samples:
            self.dataChanged.emit(
                self.index(0, self.DOUBT), self.index(len(self._samples) - 1, self.DOUBT)
            )

    def clear_doubt(self) -> None:
        self._doubt.clear()
        self._looks.clear()
        self.set_doubt({})

    def doubt(self, key: Key) -> float | None:
        return self._doubt.get(key)

    def _thumbnail_ready(self, path: Path) -> None:
        row = self._row_of_path.get(path)
        if row is not None:
            index = self.index(row, self.NAME)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    # Qt model API
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._samples)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,  # noqa: N802
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return (
                "Image file name",
                "Train or test split",
                "✓ a label mask exists, ◐ strokes only (partly labelled), — none",
                "Intersection over union of the prediction with the label "
                "(after Predict split); sort ascending for the worst first",
                "How much the model doubts the unlabelled pixels (mean uncertainty, after "
                "Predict split); Sort by label next (N) puts the most doubtful first",
            )[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        sample = self._samples[index.row()]
        key = sample_key(sample)
        col = index.column()
        if role == SAMPLE_ROLE:
            return sample
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.NAME:
                return sample.name
            if col == self.SPLIT:
                return sample.split
            if col == self.LABEL:
                state = self.label_state(key)
                return {"labelled": self.LABELLED, "partly labelled": self.PARTLY}.get(
                    state, self.UNLABELLED_TEXT
                )
            if col == self.IOU:
                value = self._iou.get(key)
                return "" if value is None else f"{value:.3f}"
            if col == self.DOUBT:
                value = self._doubt.get(key)
                return "" if value is None else f"{value:.2f}"
        elif role == SORT_ROLE:
            if col == self.NAME:
                return sample.name
            if col == self.SPLIT:
                return sample.split
            if col == self.LABEL:
                return {"labelled": 2, "partly labelled": 1}.get(self.label_state(key), 0)
            if col == self.IOU:
                value = self._iou.get(key)
                return 2.0 if value is None else value  # unscored rows after scored ones
            if col == self.DOUBT:  # the label-next rank (ascending), unscored rows last
                return self._doubt_rank.get(key, len(self._samples) + index.row())
        elif role == Qt.ItemDataRole.DecorationRole and col == self.NAME:
            path = Path(sample.image_path)
            pix = self._thumbs.pixmap(path)
            if pix is not None:
                return pix
            if self._thumbs.error(path):
                return self._broken
            self._thumbs.request(path)
            return self._placeholder
        elif role == Qt.ItemDataRole.ToolTipRole:
            if col == self.LABEL:
                return self.label_state(key)
            error = self._thumbs.error(Path(sample.image_path))
            return error or str(sample.image_path)
        elif role == Qt.ItemDataRole.ForegroundRole:
            if col == self.IOU and key in self._iou:
                value = self._iou[key]
                return (
                    QColor(235, 95, 85)
                    if value < 0.5
                    else (QColor(240, 190, 70) if value < 0.75 else QColor(110, 200, 120))
                )
            if col == self.LABEL and not self._label.get(key):
                return QColor(140, 140, 140)
        elif role == Qt.ItemDataRole.TextAlignmentRole and col in (
            self.LABEL,
            self.IOU,
            self.SPLIT,
            self.DOUBT,
        ):
            return int(Qt.AlignmentFlag.AlignCenter)
        return None


class SampleFilter(QSortFilterProxyModel):
    """Filters rows by split ("" = all) and by a substring of the name."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._split = ""
        self._text = ""
        self.setSortRole(SORT_ROLE)

    def set_split(self, split: str) -> None:
        self.beginFilterChange()
        self._split = split
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:  # noqa: N802
        sample = self.sourceModel().sample(row)
        if self._split and sample.split != self._split:
            return False
        return not self._text or self._text in sample.name.lower()


class DatasetBrowser(QWidget):
    """Header with counts, split selector and name filter over a sortable sample table."""

    current_changed = Signal(object)  # the selected Sample, or None

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("browser")
        self.thumbnails = ThumbnailLoader(runner, parent=self)
        self.model = SampleTableModel(self.thumbnails, self)
        self.proxy = SampleFilter(self)
        self.proxy.setSourceModel(self.model)
        self.dataset = None

        self.title = QLabel("No dataset")
        self.title.setObjectName("panelTitle")
        self.counts = QLabel("")
        self.counts.setObjectName("muted")
        self.split_box = QComboBox()
        self.split_box.addItem("All splits", "")
        self.split_box.addItem("Train", "train")
        self.split_box.addItem("Test", "test")
        self.split_box.setToolTip("Show the images of one split or both")
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name…")
        self.filter_edit.setClearButtonEnabled(True)

        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(SampleTableModel.NAME, Qt.SortOrder.AscendingOrder)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setShowGrid(False)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(SampleTableModel.NAME, QHeaderView.ResizeMode.Stretch)
        for col, width in (
            (SampleTableModel.SPLIT, 52),
            (SampleTableModel.LABEL, 48),
            (SampleTableModel.IOU, 58),
            (SampleTableModel.DOUBT, 54),
        ):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(col, width)
        header.setHighlightSections(False)

        top = QHBoxLayout()
        top.addWidget(self.split_box)
        top.addWidget(self.filter_edit, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addWidget(self.title)
        layout.addWidget(self.counts)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)

        self.split_box.currentIndexChanged.connect(
            lambda _i: self.proxy.set_split(self.split_box.currentData())
        )
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.view.selectionModel().currentRowChanged.connect(self._on_current)

    # ----------------------------------------------------------------- data
    def set_dataset(self, dataset: Any | None) -> None:
        """Show ``dataset`` (a ``core.dataset.Dataset``) or nothing."""
        self.dataset = dataset
        self.thumbnails.clear()
        samples = [] if dataset is None else [*dataset.train, *dataset.test]
        self.model.set_samples(samples)
        if dataset is None:
            self.title.setText("No dataset")
            self.counts.setText("")
        else:
            self.title.setText(Path(dataset.root).name)
            self.title.setToolTip(str(dataset.root))
            self.update_counts()
        self.current_changed.emit(None)

    def update_counts(self) -> None:
        if self.dataset is None:
            return
        labelled = sum(1 for s in self.model.samples() if self.model._label.get(sample_key(s)))
        partly = sum(
            1
            for s in self.model.samples()
            if self.model.label_state(sample_key(s)) == "partly labelled"
        )
        text = (
            f"{len(self.dataset.train):,} train · {len(self.dataset.test):,} test · "
            f"{labelled:,} labelled"
        )
        if partly:
            text += f" · {partly:,} partly labelled"
        orphans = getattr(self.dataset, "orphan_labels", None) or []
        if orphans:
            text += f" · {len(orphans)} label(s) without image"
        stray = getattr(self.dataset, "orphan_scribbles", None) or []
        if stray:
            text += f" · {len(stray)} stroke file(s) without image"
        self.counts.setText(text)

    def samples(self, split: str | None = None) -> list[Any]:
        return [s for s in self.model.samples() if split is None or s.split == split]

    def set_label_saved(self, sample: Any, label_path: Path) -> Any:
        """``sample``'s label was written to ``label_path``: tick its Label column, update the
        counts, and (for a new label) give the sample its label path. Returns the sample now held.
        """
        key = sample_key(sample)
        row = self.model.row_of(key)
        updated = sample
        if (
            row is not None
            and getattr(sample, "label_path", None) != Path(label_path)
            and dataclasses.is_dataclass(sample)
        ):
            try:
                updated = dataclasses.replace(sample, label_path=Path(label_path))
            except (TypeError, ValueError):
                updated = sample
            if updated is not sample:
                self.model.replace_sample(row, updated)
                split_list = getattr(self.dataset, sample.split, None)
                if isinstance(split_list, list):
                    for i, item in enumerate(split_list):
                        if sample_key(item) == key:
                            split_list[i] = updated
        self.model.set_has_label(key, True)
        self.update_counts()
        return updated

    def set_iou(self, scores: dict[Key, float]) -> None:
        self.model.set_iou(scores)

    def clear_iou(self, keys: Iterable[Key] | None = None) -> None:
        self.model.clear_iou(keys)

    # ----------------------------------------------------------------- selection
    def current_sample(self) -> Any | None:
        index = self.view.currentIndex()
        return index.data(SAMPLE_ROLE) if index.isValid() else None

    def select(self, split: str, name: str, reveal: bool = True) -> bool:
        """Make ``split/name`` current. If the split box or the filter hides it: ``reveal``
        clears them, otherwise the list is left with no current row (and False returned)."""
        row = self.model.row_of((split, name))
        if row is None:
            return False
        proxy_index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not proxy_index.isValid() and not reveal:
            self.view.selectionModel().clear()
            return False
        if not proxy_index.isValid():  # filtered out: show all splits and no filter
            self.filter_edit.clear()
            self.split_box.setCurrentIndex(0)
            proxy_index = self.proxy.mapFromSource(self.model.index(row, 0))
        self._select_proxy_row(proxy_index.row())
        return True

    def select_row(self, row: int) -> None:
        """Select the ``row``-th visible row (clamped)."""
        if self.proxy.rowCount() == 0:
            return
        self._select_proxy_row(max(0, min(row, self.proxy.rowCount() - 1)))

    def select_next(self, step: int = 1) -> None:
        current = self.view.currentIndex()
        self.select_row(current.row() + step if current.isValid() else 0)

    def select_previous(self) -> None:
        self.select_next(-1)

    def _select_proxy_row(self, row: int) -> None:
        index = self.proxy.index(row, 0)
        self.view.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.view.scrollTo(index)

    def sort_worst_first(self) -> None:
        self.view.sortByColumn(SampleTableModel.IOU, Qt.SortOrder.AscendingOrder)

    def sort_label_next(self) -> None:
        """The most doubtful images first (the Doubt column's label-next rank)."""
        self.view.sortByColumn(SampleTableModel.DOUBT, Qt.SortOrder.AscendingOrder)

    def set_doubt(self, scores: dict[Key, float], looks: dict[Key, Any] | None = None) -> None:
        self.model.set_doubt(scores, looks)

    def set_strokes_saved(self, sample: Any, stroke_path: Path) -> Any:
        """``sample``'s strokes were written: it is partly labelled (unless labelled); returns
        the sample now held (with its ``scribble_path``)."""
        key = sample_key(sample)
        row = self.model.row_of(key)
        updated = sample
        if (
            row is not None
            and dataclasses.is_dataclass(sample)
            and getattr(sample, "scribble_path", None) != Path(stroke_path)
        ):
            try:
                updated = dataclasses.replace(sample, scribble_path=Path(stroke_path))
            except (TypeError, ValueError):
                updated = sample
            if updated is not sample:
                self.model.replace_sample(row, updated)
                split_list = getattr(self.dataset, sample.split, None)
                if isinstance(split_list, list):
                    for i, item in enumerate(split_list):
                        if sample_key(item) == key:
                            split_list[i] = updated
        self.model.set_has_strokes(key, True)
        self.update_counts()
        return updated

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.current_changed.emit(current.data(SAMPLE_ROLE) if current.isValid() else None)

    def placeholder_icon(self) -> QIcon:
        return self.model._placeholder
