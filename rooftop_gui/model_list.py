"""The models of a folder: name, date, architecture, validation IoU, epochs; use one, delete one.

The folder is shown above the list, with a "…" button to choose another. The list reads checkpoint headers with :func:`core.checkpoint.list_models` (torch-free), newest
first. Double click or "Use for prediction" emits :attr:`ModelList.activated`; the active model
is shown bold with a check mark. Deleting asks first.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.checkpoint import ModelInfo, list_models
from rooftop_gui.resources import icon

COLUMNS = ("Model", "Date", "Arch", "Val IoU", "Epochs")
PATH_ROLE = Qt.ItemDataRole.UserRole
INFO_ROLE = Qt.ItemDataRole.UserRole + 1
ROWS_SHOWN = 4  # the list is at least this many rows high


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.critical(parent, title, text)


def confirm(parent: QWidget | None, title: str, text: str) -> bool:
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def format_created(created: str, now: datetime | None = None) -> str:
    """A checkpoint's ISO (UTC) creation time as a short local date and time: ``14:05`` today,
    ``3 Dec 14:05`` this year, ``2025-12-03`` before (the full time is the cell's tooltip)."""
    try:
        stamp = datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return created or "?"
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone()
    now = now or datetime.now()
    if stamp.date() == now.date():
        return stamp.strftime("%H:%M")
    if stamp.year == now.year:
        return f"{stamp.day} {stamp.strftime('%b %H:%M')}"
    return stamp.strftime("%Y-%m-%d")


def format_created_full(created: str) -> str:
    try:
        stamp = datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return created or "?"
    return (stamp.astimezone() if stamp.tzinfo is not None else stamp).strftime("%Y-%m-%d %H:%M")


class ModelList(QWidget):
    """The models of one folder (:meth:`set_folder`), the active one marked."""

    activated = Signal(object)  # Path: use this model for prediction
    selected = Signal(object)  # Path | None: the current row changed
    deleted = Signal(object)  # Path: a model file was deleted
    message = Signal(str)  # something for the log
    folder_requested = Signal()  # the "…" button: choose another folder
    refreshed = Signal()  # the list was read again

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelList")
        self._folder: Path | None = None
        self._running = False
        self._active: Path | None = None
        self.folder_edit = QLineEdit()
        self.folder_edit.setReadOnly(True)
        self.folder_edit.setObjectName("pathField")
        self.folder_edit.setPlaceholderText("open a dataset first")
        self.folder_button = QToolButton()
        self.folder_button.setText("…")
        self.folder_button.setToolTip("Choose the folder where models are saved and listed")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setToolTip("Double click a model to use it for prediction")
        header = self.tree.header()
        header.setStretchLastSection(False)
        for column in range(len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        row = self.tree.fontMetrics().height() + 8
        self.tree.setMinimumHeight(header.sizeHint().height() + ROWS_SHOWN * row + 4)
        self.use_button = QPushButton(icon("check"), "Use for prediction")
        self.delete_button = QPushButton("Delete…")
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Read the models folder again")

        folder = QHBoxLayout()
        folder.setSpacing(4)
        caption = QLabel("Models")
        caption.setObjectName("sectionTitle")
        caption.setBuddy(self.folder_edit)
        folder.addWidget(caption)
        folder.addWidget(self.folder_edit, 1)
        folder.addWidget(self.folder_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button, 1)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(folder)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)

        self.use_button.clicked.connect(self.activate_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh_button.clicked.connect(self.refresh)
        self.folder_button.clicked.connect(self.folder_requested)
        self.tree.itemDoubleClicked.connect(lambda _item, _column: self.activate_selected())
        self.tree.currentItemChanged.connect(self._current_changed)
        self._update_enabled()

    # ----------------------------------------------------------------- contents
    def set_folder(self, folder: Path | None) -> None:
        """List the models of ``folder`` (None: no list)."""
        self._folder = Path(folder) if folder is not None else None
        text = str(self._folder) if self._folder is not None else ""
        self.folder_edit.setText(text)
        self.folder_edit.setToolTip(text)
        self.folder_edit.setCursorPosition(0)
        self.refresh()

    def set_running(self, running: bool) -> None:
        """A run saves into the folder: it cannot change meanwhile."""
        self._running = running
        self._update_enabled()

    def models(self) -> list[ModelInfo]:
        """The models listed (newest first)."""
        return [
            self.tree.topLevelItem(i).data(0, INFO_ROLE)
            for i in range(self.tree.topLevelItemCount())
        ]

    def refresh(self) -> None:
        """Read the folder again (headers only, no torch); the selection stays where it was."""
        keep = self.selected_path() or self._active
        self.tree.blockSignals(True)
        try:
            self.tree.clear()
            infos: list[ModelInfo] = []
            if self._folder is not None:
                try:
                    infos = list_models(self._folder)
                except OSError as exc:
                    self.message.emit(f"Cannot list {self._folder}: {exc.strerror or exc}")
            for info in reversed(infos):
                item = QTreeWidgetItem(
                    [
                        info.name,
                        format_created(info.created),
                        info.arch,
                        "–" if info.val_iou is None else f"{info.val_iou:.3f}",
                        str(info.epochs_done),
                    ]
                )
                item.setData(0, PATH_ROLE, str(info.path))
                item.setData(0, INFO_ROLE, info)
                item.setToolTip(0, str(info.path))
                item.setToolTip(1, format_created_full(info.created))
                for column in (3, 4):
                    item.setTextAlignment(
                        column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.tree.addTopLevelItem(item)
                if keep is not None and Path(info.path) == Path(keep):
                    self.tree.setCurrentItem(item)
            self._mark_active()
        finally:
            self.tree.blockSignals(False)
        self._update_enabled()
        self.refreshed.emit()

    def _item_for(self, path: Path) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if Path(item.data(0, PATH_ROLE)) == Path(path):
                return item
        return None

    def selected_path(self) -> Path | None:
        item = self.tree.currentItem()
        return Path(item.data(0, PATH_ROLE)) if item is not None else None

    def select(self, path: Path) -> bool:
        item = self._item_for(path)
        if item is not None:
            self.tree.setCurrentItem(item)
        return item is not None

    # ----------------------------------------------------------------- the active model
    def active(self) -> Path | None:
        return self._active

    def set_active(self, path: Path | None) -> None:
        """Mark ``path`` as the model used for prediction (and select it); None: no mark."""
        self._active = Path(path) if path is not None else None
        if self._active is not None:
            self.select(self._active)
        self._mark_active()

    def _mark_active(self) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            active = self._active is not None and Path(item.data(0, PATH_ROLE)) == self._active
            item.setIcon(0, icon("check") if active else icon("blank"))
            for column in range(len(COLUMNS)):
                font = item.font(column)
                font.setBold(active)
                item.setFont(column, font)

    def activate_selected(self) -> None:
        """Use the selected model for prediction."""
        path = self.selected_path()
        if path is not None:
            self.activated.emit(path)

    def delete_selected(self) -> None:
        """Delete the selected model file, after confirmation."""
        path = self.selected_path()
        if path is None:
            return
        if not confirm(self, "Delete model", f"Delete {path.name} for good?\n\n{path}"):
            return
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            show_error(self, "Cannot delete model", f"{path}: {exc.strerror or exc}")
            return
        if self._active == path:
            self._active = None
        self.refresh()
        self.deleted.emit(path)

    # ----------------------------------------------------------------- state
    def _current_changed(self, current: QTreeWidgetItem | None, _previous: Any) -> None:
        self._update_enabled()
        self.selected.emit(Path(current.data(0, PATH_ROLE)) if current is not None else None)

    def _update_enabled(self) -> None:
        has_model = self.tree.currentItem() is not None
        self.use_button.setEnabled(has_model)
        self.delete_button.setEnabled(has_model)
        self.refresh_button.setEnabled(self._folder is not None)
        self.folder_button.setEnabled(self._folder is not None and not self._running)
