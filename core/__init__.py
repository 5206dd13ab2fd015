"""Rooftop Studio's headless core: data, models, training, prediction and export.

Nothing in this package imports Qt; the GUI (``rooftop_gui``) and the ``rooftop`` command line
are two thin faces over the same functions.
"""

__version__ = "0.1.0"
