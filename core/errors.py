"""User-facing errors.

Every error a user can cause (a missing file, a corrupt image, a pickled checkpoint) is raised as a
:class:`RooftopError` subclass whose message names the file and says what is wrong, so that the
command line can print it on one line and the GUI can show it in a dialog.
"""

from __future__ import annotations

from pathlib import Path


class RooftopError(Exception):
    """Base class of every error caused by the user's input or environment."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.reason = message
        super().__init__(f"{path}: {message}" if path is not None else message)


class ImageReadError(RooftopError):
    """An image or mask file cannot be read (missing, not an image, truncated, too large...)."""


class ImageWriteError(RooftopError):
    """An output file or folder cannot be written."""


class DatasetError(RooftopError):
    """A dataset folder is missing, empty or inconsistent (data without its label...)."""


class CheckpointError(RooftopError):
    """A model file is missing, corrupt, pickled code, or of an unknown architecture."""


class ConfigError(RooftopError):
    """An option value is invalid (a patch larger than the image, CUDA asked for but absent...)."""
