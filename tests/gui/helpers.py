"""Helpers of the GUI tests (plain functions, not fixtures): test modules import them from here,
never from one another or from a conftest."""

from __future__ import annotations


def configure_quick_training(panel, epochs: int = 2) -> None:
    """Panel settings for a run of a fraction of a second per epoch on 64 x 64 images."""
    form = panel.form
    form.arch_box.setCurrentIndex(form.arch_box.findData("prescribed"))
    form.use_epochs(epochs)
    form.batch_spin.setValue(2)
    form.crop_spin.setValue(64)
    form.samples_spin.setValue(4)
    form.device_box.setCurrentIndex(form.device_box.findData("cpu"))
