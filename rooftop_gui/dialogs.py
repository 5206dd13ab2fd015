"""Small dialogs: keyboard shortcuts (built from the window's actions), About, and the
annotation's questions (unsaved edits, recovered edits, a save that failed, a very large fill).

The questions are module-level functions that the annotation controller looks up here at each
call (``dialogs.ask_unsaved_changes(...)``), so that tests can replace them with
``monkeypatch.setattr(dialogs, "ask_unsaved_changes", ...)``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.annotate import RecoveryEntry
from rooftop_gui.errors import describe, show_error

#: Answers of :func:`ask_unsaved_changes` and :func:`ask_restore_recovery`.
SAVE, DISCARD, CANCEL = "save", "discard", "cancel"
RESTORE, LATER = "restore", "later"

#: Shortcuts that are not QActions (handled by the canvas and the browser list).
EXTRA_SHORTCUTS = (
    ("Canvas", "Mouse wheel", "Zoom in / out around the cursor"),
    ("Canvas", "Middle drag / Space + drag", "Pan"),
    ("Canvas", "Left drag", "Pan (with the Pan tool, V)"),
    ("Annotate", "Left drag / right drag", "Brush: paint / erase (Eraser: erase / paint)"),
    (
        "Annotate",
        "Click / right click",
        "Fill: fill the outline / clear the roof under the pointer",
    ),
    ("Annotate", "Click, then double click or Enter", "Polygon: add corners, then fill it"),
    ("Annotate", "Right click", "Polygon: close it as an eraser"),
    ("Annotate", "Backspace", "Polygon: remove the last corner"),
    (
        "Annotate",
        "Esc",
        "Cancel the polygon, the stroke being painted or the smart-select proposal",
    ),
    ("Annotate", "Left drag / right drag", "Roof or background strokes: paint / unlabel"),
    ("Annotate", "Click / Shift+click", "Smart select: propose a roof's outline / grow it"),
    ("Annotate", "Enter", "Smart select: add the proposed outline to the label"),
    ("Browser", "Up / Down", "Previous / next image in the list"),
    ("Browser", "Click a column header", "Sort (IoU ascending: worst first)"),
)


def collect_shortcuts(window: QWidget) -> list[tuple[str, str, str]]:
    """(group, keys, description) for every action of ``window`` that has a shortcut."""
    rows, seen = [], set()
    for action in window.findChildren(QAction):
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
        keys = [k for k in keys if k]
        if not keys:
            continue
        text = action.text().replace("&", "").rstrip("…").strip()
        key = (text, tuple(keys))
        if key in seen:
            continue
        seen.add(key)
        group = action.property("shortcutGroup") or "General"
        rows.append((str(group), " or ".join(keys), text))
    rows.sort()
    return rows + list(EXTRA_SHORTCUTS)


class ShortcutsDialog(QDialog):
    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 560)
        rows = collect_shortcuts(window)
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "Does"])
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About Rooftop Studio",
        "<h3>Rooftop Studio</h3>"
        "<p>Find building roofs in aerial images: browse a patch dataset, paint and fix roof "
        "masks, train a pixel-classification CNN in the background, see its predictions over the "
        "image and export masks.</p>"
        "<p>The command line <code>rooftop</code> does everything the window does, with the same "
        "core functions.</p><p>MIT licence.</p>",
    )


# ----------------------------------------------------------------------------- annotation


def ask_unsaved_changes(parent: QWidget | None, what: str) -> str:
    """Ask what to do with unsaved edits of ``what``: SAVE, DISCARD or CANCEL."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Unsaved label edits",
        f"The label of {what} has unsaved edits.",
        QMessageBox.StandardButton.Save
        | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel,
        parent,
    )
    box.setInformativeText("Save them before going on?")
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    if answer == QMessageBox.StandardButton.Save:
        return SAVE
    if answer == QMessageBox.StandardButton.Discard:
        return DISCARD
    return CANCEL


class RecoveryDialog(QDialog):
    """Lists recovered edits; Restore / Discard / Decide later."""

    def __init__(self, entries: list[RecoveryEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Recover unsaved label edits")
        self.choice = LATER
        text = QLabel(
            f"Rooftop Studio found {len(entries)} label(s) with edits that were not "
            "saved (the app closed unexpectedly). Restore them as unsaved edits?"
        )
        text.setWordWrap(True)
        self.list = QListWidget()
        self.list.addItems([e.describe() for e in entries])
        buttons = QDialogButtonBox()
        restore = QPushButton("Restore")
        restore.setDefault(True)
        discard = QPushButton("Discard")
        later = QPushButton("Decide later")
        buttons.addButton(restore, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(discard, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(later, QDialogButtonBox.ButtonRole.RejectRole)
        restore.clicked.connect(lambda: self._done(RESTORE))
        discard.clicked.connect(lambda: self._done(DISCARD))
        later.clicked.connect(lambda: self._done(LATER))
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(480, 300)

    def _done(self, choice: str) -> None:
        self.choice = choice
        self.accept()


def ask_restore_recovery(parent: QWidget | None, entries: list[RecoveryEntry]) -> str:
    """Offer recovered edits back: RESTORE, DISCARD or LATER (keep the copies for next time)."""
    dialog = RecoveryDialog(entries, parent)
    dialog.exec()
    return dialog.choice


def show_save_error(parent: QWidget | None, path: Path, exc: BaseException) -> None:
    """The label at ``path`` could not be written; the edits stay in memory."""
    text = describe(exc)
    if str(path) not in text:
        text = f"{path}: {text}"
    show_error(
        parent,
        "Cannot save the label",
        f"{text}\n\nYour edits are still in memory and unsaved: fix the problem and "
        "save again (Ctrl+S).",
    )


def ask_large_fill(parent: QWidget | None, fraction: float) -> bool:
    """A fill would cover ``fraction`` (more than a quarter) of the image with roof: go on?
    True fills, False does nothing (the default: an open background is the usual cause)."""
    answer = QMessageBox.question(
        parent,
        "Fill a large area?",
        f"This fill would cover {fraction:.0%} of the image with roof: the area under the pointer "
        "is probably not closed by an outline.\n\nFill it anyway?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes
