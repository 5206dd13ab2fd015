"""The annotation's actions and tool bar: one checkable action per tool, undo/redo/save/accept and
the brush size, all with window-wide shortcuts (listed under "Annotate" in the shortcuts dialog).

The actions only call :class:`rooftop_gui.annotation.AnnotationController` methods; the controller
keeps the tool state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QSpinBox, QToolBar, QWidget

from rooftop_gui.resources import icon

if TYPE_CHECKING:
    from rooftop_gui.annotation import AnnotationController

MIN_BRUSH, MAX_BRUSH, DEFAULT_BRUSH = 1, 400, 16

#: ``(name, text, shortcut, icon, tip)`` of each tool, in tool bar order.
TOOL_SPECS = (
    ("pan", "&Pan tool", "V", "pan", "Pan: the left button drags the image"),
    ("brush", "&Brush", "B", "brush", "Brush: paint roof (right button erases)"),
    ("eraser", "&Eraser", "X", "eraser", "Eraser: erase roof (right button paints)"),
    (
        "fill",
        "&Fill",
        "G",
        "fill",
        "Fill: click inside an outline to fill it with roof "
        "(right click clears the roof under the pointer)",
    ),
    (
        "polygon",
        "P&olygon",
        "O",
        "polygon",
        "Polygon: click the corners; double click or Enter "
        "fills it, right click erases it, Esc cancels",
    ),
    (
        "accept",
        "&Accept predicted roof",
        "A",
        "accept-roof",
        "Accept roof: click a predicted roof to add it to the label",
    ),
    (
        "smart",
        "&Smart select",
        "S",
        "smart-select",
        "Smart select: click a roof for a proposed outline; Enter adds it to the label, "
        "Shift+click grows it, Esc drops it",
    ),
    (
        "roof_stroke",
        "&Roof strokes",
        "R",
        "stroke-roof",
        "Roof strokes: paint a few strokes on roofs (a partial label training learns from)",
    ),
    (
        "background_stroke",
        "Bac&kground strokes",
        "K",
        "stroke-background",
        "Background strokes: paint a few strokes on the ground (right button unlabels)",
    ),
    (
        "unlabel",
        "&Unlabel strokes",
        "U",
        "stroke-unlabel",
        "Unlabel: erase strokes back to unlabelled",
    ),
)
TOOLS = tuple(spec[0] for spec in TOOL_SPECS)
PAINT_TOOLS = ("brush", "eraser")
#: Tools painting strokes (partial labels, core.scribbles) instead of the label.
STROKE_TOOLS = ("roof_stroke", "background_stroke", "unlabel")

#: The status bar hint shown when a tool is chosen.
TOOL_HINTS = {
    "pan": "Pan: drag with the left button.",
    "brush": "Brush: drag to paint roof, right-drag to erase; [ and ] change the size.",
    "eraser": "Eraser: drag to erase, right-drag to paint; [ and ] change the size.",
    "fill": "Fill: click inside a closed outline; right click clears a roof.",
    "polygon": "Polygon: click the corners, double click or Enter to fill, Esc cancels.",
    "accept": "Accept roof: click a predicted roof to add it to the label.",
    "smart": "Smart select: click a roof; Enter adds the outline, Shift+click grows it, "
    "Esc drops it.",
    "roof_stroke": "Roof strokes: drag on roofs; right-drag unlabels. Ctrl+S saves the strokes.",
    "background_stroke": "Background strokes: drag on the ground; right-drag unlabels.",
    "unlabel": "Unlabel: drag to erase strokes; [ and ] change the size.",
}


def make_action(
    owner: QObject,
    window: QWidget,
    text: str,
    keys: list[str],
    icon_name: str,
    tip: str,
    checkable: bool = False,
) -> QAction:
    """An action of ``owner`` whose shortcuts work anywhere in ``window``."""
    act = QAction(icon(icon_name) if icon_name else icon("blank"), text, owner)
    act.setShortcuts([QKeySequence(k) for k in keys])
    act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    shown = " or ".join(
        QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in keys
    )
    act.setToolTip(f"{tip} ({shown})" if keys else tip)
    act.setStatusTip(tip)
    act.setCheckable(checkable)
    act.setProperty("shortcutGroup", "Annotate")
    window.addAction(act)
    return act


class AnnotationActions:
    """The controller's actions: :attr:`tools` (exclusive, Pan checked) and the edit actions."""

    def __init__(self, controller: AnnotationController, window: QWidget) -> None:
        def action(
            text: str, keys: list[str], icon_name: str, tip: str, checkable: bool = False
        ) -> QAction:
            return make_action(controller, window, text, keys, icon_name, tip, checkable)

        self.tool_group = QActionGroup(controller)
        self.tool_group.setExclusive(True)
        self.tools: dict[str, QAction] = {}
        for name, text, key, icon_name, tip in TOOL_SPECS:
            act = action(text, [key], icon_name, tip, checkable=True)
            act.triggered.connect(lambda _c=False, n=name: controller.set_tool(n))
            self.tool_group.addAction(act)
            self.tools[name] = act
        self.tools["pan"].setChecked(True)

        self.accept_all = action(
            "Accept &whole prediction as label",
            ["Shift+A"],
            "accept-all",
            "Replace the label by the prediction as shown (threshold and dilation)",
        )
        self.accept_all.triggered.connect(lambda _c=False: controller.accept_all())
        self.undo = action(
            "&Undo", ["Ctrl+Z"], "undo", "Undo the last edit of the label (or of the strokes)"
        )
        self.undo.triggered.connect(lambda _c=False: controller.undo())
        self.redo = action("&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], "redo", "Redo the last undone edit")
        self.redo.triggered.connect(lambda _c=False: controller.redo())
        self.save = action(
            "&Save label", ["Ctrl+S"], "save", "Save the label mask and the strokes of this image"
        )
        self.save.triggered.connect(lambda _c=False: controller.save())
        self.smaller = action("Brush s&maller", ["["], "", "Make the brush smaller")
        self.smaller.triggered.connect(lambda _c=False: controller.step_brush(-1))
        self.bigger = action("Brush &bigger", ["]"], "", "Make the brush bigger")
        self.bigger.triggered.connect(lambda _c=False: controller.step_brush(+1))


class AnnotationToolBar(QToolBar):
    """Tool buttons, the brush size and undo/redo/save/accept for the main window."""

    def __init__(self, controller: AnnotationController, parent: QWidget | None = None) -> None:
        super().__init__("Annotate", parent)
        self.setObjectName("toolbar_annotate")
        self.setMovable(False)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.controller = controller
        self.addActions(list(controller.tool_actions.values()))
        self.size_label = QLabel(" Size ")
        self.size_label.setObjectName("muted")
        self.addWidget(self.size_label)
        self.size = QSpinBox()
        self.size.setObjectName("brushSize")
        self.size.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size.setSuffix(" px")
        self.size.setValue(controller.brush_size)
        self.size.setToolTip("Brush and eraser diameter in image pixels ([ smaller, ] bigger)")
        self.size.setKeyboardTracking(False)
        self.size.valueChanged.connect(controller.set_brush_size)
        self.addWidget(self.size)
        self.addSeparator()
        self.addActions(
            [
                controller.accept_all_action,
                controller.undo_action,
                controller.redo_action,
                controller.save_action,
            ]
        )

    def sync_size(self, size: int) -> None:
        if self.size.value() != size:
            self.size.blockSignals(True)
            self.size.setValue(size)
            self.size.blockSignals(False)
