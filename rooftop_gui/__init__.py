"""Rooftop Studio's desktop GUI (PySide6). Imports ``core``; ``core`` never imports this package."""
