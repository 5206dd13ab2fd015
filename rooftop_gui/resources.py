"""Files the GUI loads at run time (icons, style sheet) from the repository's ``resources/``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ICONS = RESOURCES / "icons"


@cache
def icon(name: str) -> QIcon:
    """``resources/icons/<name>.svg`` as a QIcon (an empty icon if the file is missing)."""
    path = ICONS / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def stylesheet() -> str:
    """The application style sheet, with ``@RES@`` replaced by the resources folder (for url())."""
    path = RESOURCES / "style.qss"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    return text.replace("@RES@", RESOURCES.as_posix())
