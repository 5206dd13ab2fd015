"""Helpers of the GUI tests (plain functions, not fixtures): test modules import them from here,
never from one another or from a conftest."""

from __future__ import annotations


def configure_quick_training(panel, epochs: int = 2) -> None:
    """Panel settings for a run of a fraction of a second per epoch on 64 x 64 images."""
    panel.arch_box.setCurrentIndex(panel.arch_box.findData("prescribed"))
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(2)
    panel.crop_spin.setValue(64)
    panel.samples_spin.setValue(4)
    panel.device_box.setCurrentIndex(panel.device_box.findData("cpu"))
    panel.time_check.setChecked(False)
