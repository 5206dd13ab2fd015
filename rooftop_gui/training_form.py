"""The training settings: what the next run trains, and for how long.

A form over :class:`core.training.config.TrainConfig`: the architecture, loss, device and
precision choices (with their help texts) come from ``core.training.config``, the defaults are the
command line's (``DEFAULT_RECIPE`` and the ``TrainConfig`` defaults). How long to train is a time
budget ("Time budget [5] min", the default) or a number of epochs ("Epochs [100]"):
:meth:`TrainingForm.config` is ``TrainConfig(max_minutes=N, epochs=None)`` or
``TrainConfig(epochs=N, max_minutes=None)``, validated. Every value is remembered in the settings
under ``training/``.

The form folds: its header ("▾ Settings") hides the fields and shows a one-line summary instead,
which leaves a short screen's height to the curves (remembered too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import ConfigError
from core.input_stretch import STRETCH_CHOICES
from core.training.config import (
    ARCHITECTURE_CHOICES,
    DEFAULT_EPOCHS,
    DEFAULT_RECIPE,
    DEVICE_CHOICES,
    LOSS_CHOICES,
    PRECISION_CHOICES,
    TrainConfig,
)
from rooftop_gui import settings as cfg

#: The values the form starts with: the command line's (``rooftop train``) defaults.
DEFAULTS = TrainConfig(**DEFAULT_RECIPE)
#: The time budget a new user gets ("Train for 5 min").
DEFAULT_MINUTES = 5
LR_PRESETS = ("1e-2", "3e-3", "2e-3", "1e-3", "3e-4", "1e-4", "3e-5", "1e-5")
SETTINGS_PREFIX = "training/"
#: Version 2: the time budget became the default and the defaults became the command line's;
#: the epoch count, crops per epoch and time limit saved by version 1 (when its smaller defaults
#: were saved with any change) are not read.
SETTINGS_VERSION = 2
_V1_ONLY = ("epochs", "samples_per_epoch", "time_limit", "max_minutes")


def choice_box(choices: tuple[tuple[str, str], ...], tooltip: str) -> QComboBox:
    """A combo box of ``(name, help)`` choices: each item's data is its name, its tooltip the help."""
    box = QComboBox()
    for name, help_text in choices:
        box.addItem(name, name)
        box.setItemData(box.count() - 1, help_text, Qt.ItemDataRole.ToolTipRole)
    box.setToolTip(tooltip)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    return box


def format_lr(value: float) -> str:
    text = f"{value:.0e}"
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if float(text) == value else f"{value:g}"


def _label(text: str, buddy: QWidget) -> QLabel:
    label = QLabel(text)
    label.setBuddy(buddy)
    return label


class TrainingForm(QWidget):
    """The settings of the next training run; :meth:`config` turns them into a ``TrainConfig``."""

    changed = Signal()  # any setting changed (saved already)

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingForm")
        self.settings = settings
        self._loading = False
        self._running = False
        self._build()
        self._load()
        for box in self.choice_boxes():
            box.currentIndexChanged.connect(self._save)
        for spin in (
            self.minutes_spin,
            self.epochs_spin,
            self.batch_spin,
            self.crop_spin,
            self.samples_spin,
        ):
            spin.valueChanged.connect(self._save)
        self.lr_box.currentTextChanged.connect(self._save)
        self.budget_group.idToggled.connect(lambda _id, _on: self._save())
        self.fold_button.toggled.connect(self._show_fold)

    # ----------------------------------------------------------------- construction
    def _build(self) -> None:
        self.fold_button = QToolButton()
        self.fold_button.setObjectName("sectionTitle")
        self.fold_button.setText("Settings")
        self.fold_button.setCheckable(True)
        self.fold_button.setChecked(True)
        self.fold_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.fold_button.setArrowType(Qt.ArrowType.DownArrow)
        self.fold_button.setToolTip("Show or hide the training settings")
        self.dataset_label = QLabel()
        self.dataset_label.setObjectName("muted")
        self.summary_label = QLabel()
        self.summary_label.setObjectName("muted")
        self.summary_label.setVisible(False)
        for label in (self.dataset_label, self.summary_label):  # never widen the panel
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.dataset_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.arch_box = choice_box(ARCHITECTURE_CHOICES, "Network architecture")
        self.time_radio = QRadioButton("Time budget")
        self.time_radio.setToolTip(
            "Train until this many minutes are used, then save the model "
            "(the learning rate anneals over the budget)"
        )
        self.minutes_spin = QSpinBox()
        self.minutes_spin.setRange(1, 100_000)
        self.minutes_spin.setSuffix(" min")
        self.minutes_spin.setToolTip(self.time_radio.toolTip())
        self.epochs_radio = QRadioButton("Epochs")
        self.epochs_radio.setToolTip(
            "Train this many epochs (an epoch is one crop of every "
            "training image, or 'crops/epoch' crops)"
        )
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 100_000)
        self.epochs_spin.setToolTip(self.epochs_radio.toolTip())
        self.budget_group = QButtonGroup(self)
        self.budget_group.addButton(self.time_radio, 0)
        self.budget_group.addButton(self.epochs_radio, 1)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setToolTip("Crops per training step")
        self.lr_box = QComboBox()
        self.lr_box.setEditable(True)
        self.lr_box.addItems(LR_PRESETS)
        validator = QDoubleValidator(1e-8, 9.99, 10, self.lr_box)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.lr_box.setValidator(validator)
        self.lr_box.setToolTip(
            "Peak learning rate (AdamW: a short warm-up, then a cosine decay), e.g. 2e-3"
        )
        self.loss_box = choice_box(LOSS_CHOICES, "Loss function")
        self.crop_spin = QSpinBox()
        self.crop_spin.setRange(64, 2048)
        self.crop_spin.setSingleStep(32)
        self.crop_spin.setSuffix(" px")
        self.crop_spin.setToolTip(
            "Side of the random square crops trained on (smaller images lower it automatically)"
        )
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(0, 1_000_000)
        self.samples_spin.setSingleStep(64)
        self.samples_spin.setSpecialValueText("auto")
        self.samples_spin.setToolTip(
            "Training crops per epoch (auto: one crop of every training image, at least 64)"
        )
        self.device_box = choice_box(DEVICE_CHOICES, "Where to train")
        self.precision_box = choice_box(
            PRECISION_CHOICES,
            "Arithmetic of the network: auto uses "
            "bfloat16 where the hardware has it; weights stay float32",
        )
        self.stretch_box = choice_box(
            STRETCH_CHOICES,
            "Contrast stretch of each image before the network (the model remembers it and "
            "prediction applies the same): rooftop train --input-stretch",
        )
        self.init_box = QComboBox()
        self.init_box.setToolTip(
            "New weights, or an earlier model's weights to fine-tune (its architecture; a "
            "fresh optimizer and schedule): rooftop train --init MODEL"
        )
        self.init_box.activated.connect(self._init_chosen)
        self._init_file: Path | None = None
        self.set_start_models([])

        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.fold_button)
        header.addWidget(self.summary_label, 1)
        header.addWidget(self.dataset_label, 1)
        self.body = QWidget()
        grid = QGridLayout(self.body)
        grid.setContentsMargins(4, 2, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(5)
        budget = QHBoxLayout()
        budget.setSpacing(4)
        budget.addWidget(self.time_radio)
        budget.addWidget(self.minutes_spin, 1)
        budget.addSpacing(10)
        budget.addWidget(self.epochs_radio)
        budget.addWidget(self.epochs_spin, 1)
        grid.addLayout(budget, 1, 0, 1, 4)
        rows = (
            (("Architecture", self.arch_box), ("Loss", self.loss_box)),
            None,
            (("Learning rate", self.lr_box), ("Batch", self.batch_spin)),
            (("Crops/epoch", self.samples_spin), ("Crop", self.crop_spin)),
            (("Device", self.device_box), ("Precision", self.precision_box)),
        )
        for row, pairs in enumerate(rows):
            for column, (text, editor) in enumerate(pairs or ()):
                grid.addWidget(_label(text, editor), row, 2 * column)
                grid.addWidget(editor, row, 2 * column + 1)
        grid.addWidget(_label("Start from", self.init_box), len(rows), 0)
        grid.addWidget(self.init_box, len(rows), 1)
        grid.addWidget(_label("Stretch", self.stretch_box), len(rows), 2)
        grid.addWidget(self.stretch_box, len(rows), 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.body)
        # Combo boxes as wide as their longest text (with the theme's padding and arrow);
        # spin boxes may shrink below their range-based size hints.
        self.ensurePolished()
        for box in self.choice_boxes():
            box.ensurePolished()
            box.setMinimumWidth(box.sizeHint().width())
        for spin in (
            self.minutes_spin,
            self.epochs_spin,
            self.batch_spin,
            self.crop_spin,
            self.samples_spin,
        ):
            spin.setMinimumWidth(64)
        self.lr_box.setMinimumWidth(72)

    def choice_boxes(self) -> tuple[QComboBox, ...]:
        return (
            self.arch_box,
            self.loss_box,
            self.device_box,
            self.precision_box,
            self.stretch_box,
        )

    def editors(self) -> tuple[QWidget, ...]:
        """Every control that changes the next run (disabled while one trains)."""
        return (
            self.arch_box,
            self.time_radio,
            self.minutes_spin,
            self.epochs_radio,
            self.epochs_spin,
            self.batch_spin,
            self.lr_box,
            self.loss_box,
            self.crop_spin,
            self.samples_spin,
            self.device_box,
            self.precision_box,
            self.stretch_box,
            self.init_box,
        )

    # ----------------------------------------------------------------- start from
    def set_start_models(self, paths: list[Path]) -> None:
        """The models offered to start from (the models folder's, newest first); the choice
        stays on the same file when it is still there, else falls back to new weights."""
        current = self.init_model()
        box = self.init_box
        box.blockSignals(True)
        box.clear()
        box.addItem("New weights", None)
        for path in paths:
            box.addItem(f"{Path(path).stem} (fine-tune)", str(path))
        if self._init_file is not None and self._init_file not in [Path(p) for p in paths]:
            box.addItem(f"{self._init_file.name} (fine-tune)", str(self._init_file))
        box.addItem("Model file…", "choose")
        index = box.findData(str(current)) if current is not None else 0
        box.setCurrentIndex(max(0, index))
        box.blockSignals(False)

    def init_model(self) -> Path | None:
        """The model whose weights the next run starts from; None: new weights."""
        data = self.init_box.currentData()
        return None if data in (None, "choose") else Path(data)

    def _init_chosen(self, index: int) -> None:
        if self.init_box.itemData(index) != "choose":
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Start from model", str(Path.home()), "Models (*.safetensors);;All files (*)"
        )
        if not path:
            self.init_box.setCurrentIndex(0)
            return
        self._init_file = Path(path)
        models = [
            Path(self.init_box.itemData(i))
            for i in range(self.init_box.count())
            if self.init_box.itemData(i) not in (None, "choose")
        ]
        self.init_box.setCurrentIndex(0)  # (so the rebuilt list does not keep "Model file…")
        self.set_start_models([m for m in models if m != self._init_file])
        self.init_box.setCurrentIndex(self.init_box.findData(str(self._init_file)))

    # ----------------------------------------------------------------- state
    def set_running(self, running: bool) -> None:
        """Lock every setting while a run trains (its config is fixed), unlock after."""
        self._running = running
        for widget in self.editors():
            widget.setEnabled(not running)
        self.minutes_spin.setEnabled(not running and self.uses_time_budget())
        self.epochs_spin.setEnabled(not running and not self.uses_time_budget())

    def uses_time_budget(self) -> bool:
        return self.time_radio.isChecked()

    def use_time_budget(self, minutes: int | None = None) -> None:
        if minutes is not None:
            self.minutes_spin.setValue(minutes)
        self.time_radio.setChecked(True)

    def use_epochs(self, epochs: int | None = None) -> None:
        if epochs is not None:
            self.epochs_spin.setValue(epochs)
        self.epochs_radio.setChecked(True)

    def budget_text(self) -> str:
        """How long the next run trains: ``5 min`` or ``100 epochs``."""
        if self.uses_time_budget():
            return f"{self.minutes_spin.value()} min"
        epochs = self.epochs_spin.value()
        return f"{epochs} epoch{'s' if epochs != 1 else ''}"

    def set_dataset_text(self, text: str, tooltip: str = "") -> None:
        self.dataset_label.setText(text)
        self.dataset_label.setToolTip(tooltip)

    def summary(self) -> str:
        """The settings in one line (shown while the form is folded)."""
        try:
            lr = format_lr(self.learning_rate())
        except ConfigError:
            lr = self.lr_box.currentText()
        init = self.init_model()
        start = "" if init is None else f" · from {init.stem}"
        return (
            f"{self.arch_box.currentData()} · {self.budget_text()} · "
            f"{self.loss_box.currentData()} · lr {lr} · batch {self.batch_spin.value()}{start}"
        )

    def is_folded(self) -> bool:
        return not self.fold_button.isChecked()

    def set_folded(self, folded: bool, remember: bool = True) -> None:
        """Hide the fields and show :meth:`summary` instead (or the other way round); not
        ``remember``: the user's choice, in the settings, stays as it was."""
        loading, self._loading = self._loading, self._loading or not remember
        try:
            if self.fold_button.isChecked() == folded:
                self.fold_button.setChecked(not folded)  # toggled: _show_fold
            else:
                self._show_fold()
        finally:
            self._loading = loading

    def _show_fold(self, *_args: Any) -> None:
        folded = self.is_folded()
        self.fold_button.setArrowType(Qt.ArrowType.RightArrow if folded else Qt.ArrowType.DownArrow)
        self.body.setVisible(not folded)
        self.summary_label.setText(self.summary())
        self.summary_label.setVisible(folded)
        self.dataset_label.setVisible(not folded)
        if not self._loading:
            self.settings.setValue(self._key("folded"), folded)

    def learning_rate(self) -> float:
        text = self.lr_box.currentText().strip().replace(",", ".")
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"the learning rate {text!r} is not a number (e.g. 1e-3)") from None
        if not 0 < value < 10:
            raise ConfigError(f"the learning rate must be positive and below 10, got {text}")
        return value

    def config(self) -> TrainConfig:
        """The validated ``TrainConfig`` of the form (``ConfigError`` says what is wrong)."""
        samples = self.samples_spin.value()
        budget = self.uses_time_budget()
        config = TrainConfig(
            **{
                **DEFAULT_RECIPE,
                "arch": self.arch_box.currentData(),
                "batch_size": self.batch_spin.value(),
                "lr": self.learning_rate(),
                "loss": self.loss_box.currentData(),
                "device": self.device_box.currentData(),
                "precision": self.precision_box.currentData(),
                "input_stretch": self.stretch_box.currentData(),
                "crop_size": self.crop_spin.value(),
                "samples_per_epoch": samples or None,
                "epochs": None if budget else self.epochs_spin.value(),
                "max_minutes": float(self.minutes_spin.value()) if budget else None,
            }
        )
        config.validate()
        return config

    # ----------------------------------------------------------------- settings
    def _key(self, name: str) -> str:
        return SETTINGS_PREFIX + name

    def _load(self) -> None:
        s, d = self.settings, DEFAULTS
        if cfg.get_int(s, self._key("settings_version"), 1) < SETTINGS_VERSION:
            for name in _V1_ONLY:
                s.remove(self._key(name))
            s.setValue(self._key("settings_version"), SETTINGS_VERSION)
        self._loading = True
        try:
            for box, name in (
                (self.arch_box, "arch"),
                (self.loss_box, "loss"),
                (self.device_box, "device"),
                (self.precision_box, "precision"),
                (self.stretch_box, "input_stretch"),
            ):
                default = getattr(d, name)
                index = box.findData(str(s.value(self._key(name), default)))
                box.setCurrentIndex(index if index >= 0 else max(0, box.findData(default)))
            budget = str(s.value(self._key("budget"), "time"))
            (self.epochs_radio if budget == "epochs" else self.time_radio).setChecked(True)
            self.minutes_spin.setValue(cfg.get_int(s, self._key("max_minutes"), DEFAULT_MINUTES))
            self.epochs_spin.setValue(cfg.get_int(s, self._key("epochs"), DEFAULT_EPOCHS))
            self.batch_spin.setValue(cfg.get_int(s, self._key("batch_size"), d.batch_size))
            lr = cfg.get_float(s, self._key("lr"), d.lr)
            self.lr_box.setCurrentText(format_lr(lr if 0 < lr < 10 else d.lr))
            self.crop_spin.setValue(cfg.get_int(s, self._key("crop_size"), d.crop_size))
            self.samples_spin.setValue(
                cfg.get_int(s, self._key("samples_per_epoch"), d.samples_per_epoch or 0)
            )
            self.set_folded(cfg.get_bool(s, self._key("folded"), False))
        finally:
            self._loading = False
        self.set_running(False)

    def _save(self, *_args: Any) -> None:
        if self._loading:
            return
        s = self.settings
        for box, name in (
            (self.arch_box, "arch"),
            (self.loss_box, "loss"),
            (self.device_box, "device"),
            (self.precision_box, "precision"),
            (self.stretch_box, "input_stretch"),
        ):
            s.setValue(self._key(name), box.currentData())
        s.setValue(self._key("budget"), "time" if self.uses_time_budget() else "epochs")
        s.setValue(self._key("max_minutes"), self.minutes_spin.value())
        s.setValue(self._key("epochs"), self.epochs_spin.value())
        s.setValue(self._key("batch_size"), self.batch_spin.value())
        try:
            s.setValue(self._key("lr"), self.learning_rate())
        except ConfigError:
            pass  # half-typed; saved once it parses
        s.setValue(self._key("crop_size"), self.crop_spin.value())
        s.setValue(self._key("samples_per_epoch"), self.samples_spin.value())
        self.set_running(self._running)  # the budget's spin box follows its radio button
        self.summary_label.setText(self.summary())
        self.changed.emit()
