"""Small dialogs: keyboard shortcuts (built from the window's actions) and About."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

#: Shortcuts that are not QActions (handled by the canvas and the browser list).
EXTRA_SHORTCUTS = (
    ("Canvas", "Mouse wheel", "Zoom in / out around the cursor"),
    ("Canvas", "Middle drag / Space + drag", "Pan"),
    ("Canvas", "Left drag", "Pan (with the Pan tool, V)"),
    ("Annotate", "Left drag / right drag", "Brush: paint / erase (Eraser: erase / paint)"),
    ("Annotate", "Click / right click", "Fill: fill the outline / clear the roof under the pointer"),
    ("Annotate", "Click, then double click or Enter", "Polygon: add corners, then fill it"),
    ("Annotate", "Right click", "Polygon: close it as an eraser"),
    ("Annotate", "Backspace", "Polygon: remove the last corner"),
    ("Annotate", "Esc", "Cancel the polygon (or the stroke being painted)"),
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
        parent, "About Rooftop Studio",
        "<h3>Rooftop Studio</h3>"
        "<p>Find building roofs in aerial images: browse a patch dataset, paint and fix roof "
        "masks, train a pixel-classification CNN in the background, see its predictions over the "
        "image and export masks.</p>"
        "<p>The command line <code>rooftop</code> does everything the window does, with the same "
        "core functions.</p><p>MIT licence.</p>")
