"""Files the GUI loads at run time (icons, style sheet).

They live in the repository's top-level ``resources/`` folder, which ``pyproject.toml`` installs
as the package ``rooftop_gui.assets``. :func:`resources_dir` finds that package with
``importlib.resources`` (a regular wheel install, or an editable install made after that
mapping existed) and otherwise falls back to ``resources/`` beside this package in the source
tree (running from a checkout, or an older editable install).
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

#: The package the ``resources/`` folder is installed as.
ASSETS_PACKAGE = "rooftop_gui.assets"
#: ``resources/`` in a source checkout.
SOURCE_RESOURCES = Path(__file__).resolve().parent.parent / "resources"
#: A file every resources folder holds (how a candidate folder is recognised).
STYLE_SHEET = "style.qss"


def _installed_dir() -> Path | None:
    """The folder of the installed ``rooftop_gui.assets`` package, if it is a real folder."""
    try:
        root = importlib.resources.files(ASSETS_PACKAGE)
    except (ModuleNotFoundError, TypeError, ValueError):
        return None
    if not isinstance(root, Path):  # a zip import or a namespace path: no folder to hand Qt
        return None
    return root.resolve() if (root / STYLE_SHEET).is_file() else None


@cache
def resources_dir() -> Path:
    """The folder holding ``style.qss`` and ``icons/`` (see the module docstring).

    When neither place holds the files (a broken install), the source-tree path is returned and
    icons come out empty and the style sheet blank: the app still opens.
    """
    return _installed_dir() or SOURCE_RESOURCES


def resource_path(relative: str) -> Path:
    """The path of ``relative`` (like ``"icons/app.svg"``) in the resources folder."""
    return resources_dir() / relative


@cache
def icon(name: str) -> QIcon:
    """``icons/<name>.svg`` of the resources folder as a QIcon (an empty icon if it is missing)."""
    path = resource_path(f"icons/{name}.svg")
    return QIcon(str(path)) if path.is_file() else QIcon()


def stylesheet() -> str:
    """The application style sheet, with ``@RES@`` replaced by the resources folder (for url())."""
    try:
        text = resource_path(STYLE_SHEET).read_text(encoding="utf-8")
    except OSError:
        return ""
    return text.replace("@RES@", resources_dir().as_posix())
