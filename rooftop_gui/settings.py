"""Where the app keeps its settings and data.

* Settings: a QSettings. When ``ROOFTOP_CONFIG_DIR`` is set (tests set it), an INI file in that
  folder; otherwise the platform's usual place for organisation "Rooftop" / app "Rooftop Studio".
* Data (the demo dataset, models made from it, the overview cache): ``ROOFTOP_DATA_DIR`` if
  set, else ``platformdirs.user_data_dir("rooftop-studio")``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORG_NAME = "Rooftop"
APP_NAME = "Rooftop Studio"
MAX_RECENT = 8


def make_settings() -> QSettings:
    config_dir = os.environ.get("ROOFTOP_CONFIG_DIR")
    if config_dir:
        Path(config_dir).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(config_dir) / "rooftop-studio.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG_NAME, APP_NAME)


def data_dir() -> Path:
    override = os.environ.get("ROOFTOP_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("rooftop-studio", appauthor=False))


def overview_cache_dir() -> Path:
    """Where overviews of rasters without overviews of their own are kept
    (:mod:`core.overview_cache`)."""
    return data_dir() / "cache" / "overviews"


def demo_dir() -> Path:
    """Folder of the demo: ``image.png``, ``labels.png`` and the generated ``dataset/``."""
    return data_dir() / "demo"


def get_float(settings: QSettings, key: str, default: float) -> float:
    try:
        return float(settings.value(key, default))
    except (TypeError, ValueError):
        return default


def get_int(settings: QSettings, key: str, default: int) -> int:
    try:
        return int(settings.value(key, default))
    except (TypeError, ValueError):
        return default


def get_bool(settings: QSettings, key: str, default: bool) -> bool:
    value = settings.value(key, default)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def recent_datasets(settings: QSettings) -> list[Path]:
    value = settings.value("recent_datasets", [])
    if isinstance(value, str):
        value = [value] if value else []
    return [Path(v) for v in (value or []) if v]


def add_recent_dataset(settings: QSettings, path: Path) -> list[Path]:
    path = Path(path).resolve()
    items = [p for p in recent_datasets(settings) if p != path]
    items.insert(0, path)
    items = items[:MAX_RECENT]
    settings.setValue("recent_datasets", [str(p) for p in items])
    settings.setValue("last_dataset", str(path))
    return items
