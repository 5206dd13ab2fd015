"""Rooftop Studio's desktop GUI (PySide6). Imports ``core``; ``core`` never imports this package."""

from rooftop_gui.qt_compat import guard_bool_refcounts as _guard_bool_refcounts

_guard_bool_refcounts()
