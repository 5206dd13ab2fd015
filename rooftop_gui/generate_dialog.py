"""Generate a patch dataset from a large image (and its mask) with progress and Cancel.

Runs ``core.generate.generate_dataset`` in a worker; the dialog stays responsive and Cancel stops
it between patches (the core removes what it had written).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import ConfigError, RooftopError
from core.progress import Progress, Stopped
from rooftop_gui.errors import describe
from rooftop_gui.workers import Task, TaskRunner

DEFAULT_PLAN = "512:0.25\n1024:0.25\n256:0.5"


def parse_plan(text: str) -> list:
    """Patch plan lines ``size:stride_fraction`` (blank lines and ``#`` comments skipped)."""
    from core.generate import PatchSpec

    specs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            specs.append(PatchSpec.parse(line))
        except (ValueError, ConfigError) as exc:
            raise ConfigError(
                f"patch plan line {number} {line!r}: {exc}; write size:stride, e.g. 512:0.25"
            ) from exc
    if not specs:
        raise ConfigError("the patch plan is empty; write at least one line like 512:0.25")
    return specs


def default_output_folder(image: Path) -> Path:
    """``IMAGE_dataset`` beside the image when its folder can be written, else in the user's
    data folder (a read-only share, a mounted archive)."""
    import os

    from rooftop_gui import settings as cfg

    beside = image.with_name(image.stem + "_dataset")
    if os.access(image.parent, os.W_OK):
        return beside
    return cfg.data_dir() / "datasets" / beside.name


def _path_row(edit: QLineEdit, button: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class GenerateDialog(QDialog):
    """Choose image, mask, patch plan, resize, rotations, test share and output folder; run."""

    def __init__(
        self,
        runner: TaskRunner,
        settings: QSettings,
        image: Path | None = None,
        mask: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generate dataset from a large image")
        self.setMinimumWidth(560)
        self.runner = runner
        self.settings = settings
        self.result_dir: Path | None = None
        self.result = None
        self._task: Task | None = None

        self.image_edit = QLineEdit(str(image) if image else "")
        self.mask_edit = QLineEdit(str(mask) if mask else "")
        self.mask_edit.setPlaceholderText(
            "optional: roof mask of the same size (0 / 255); "
            "without one, paint the labels afterwards"
        )
        self.out_edit = QLineEdit()
        self.out_note = QLabel("")
        self.out_note.setObjectName("muted")
        self.out_note.setWordWrap(True)
        browse_image = QPushButton("Browse…")
        browse_mask = QPushButton("Browse…")
        browse_out = QPushButton("Browse…")
        self.plan_edit = QPlainTextEdit(settings.value("generate/plan", DEFAULT_PLAN))
        self.plan_edit.setToolTip(
            "One patch size per line as size:stride, the stride a fraction "
            "of the size (512:0.25 = 512 px patches every 128 px)"
        )
        self.plan_edit.setFixedHeight(80)
        self.resize_box = QCheckBox("Resize patches to")
        self.resize_spin = QSpinBox()
        self.resize_spin.setRange(16, 4096)
        self.resize_spin.setSingleStep(64)
        self.resize_spin.setSuffix(" px")
        resize = settings.value("generate/resize", 512)
        self.resize_box.setChecked(str(resize) not in ("", "None", "0"))
        self.resize_spin.setValue(int(resize) if self.resize_box.isChecked() else 512)
        self.rotation_boxes = {}
        rot_row = QHBoxLayout()
        chosen = str(settings.value("generate/rotations", "0,90,180")).split(",")
        for angle in (0, 90, 180, 270):
            box = QCheckBox(f"{angle}°")
            box.setChecked(str(angle) in chosen)
            self.rotation_boxes[angle] = box
            rot_row.addWidget(box)
        rot_row.addStretch(1)
        self.test_spin = QDoubleSpinBox()
        self.test_spin.setRange(0.0, 90.0)
        self.test_spin.setSuffix(" %")
        self.test_spin.setValue(float(settings.value("generate/test_percent", 15.0)))
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("muted")

        form = QFormLayout()
        form.addRow("Image", _path_row(self.image_edit, browse_image))
        form.addRow("Mask", _path_row(self.mask_edit, browse_mask))
        form.addRow("Patch plan", self.plan_edit)
        resize_row = QHBoxLayout()
        resize_row.addWidget(self.resize_box)
        resize_row.addWidget(self.resize_spin)
        resize_row.addStretch(1)
        form.addRow("", resize_row)
        form.addRow("Rotations", rot_row)
        form.addRow("Test share", self.test_spin)
        form.addRow("Seed", self.seed_spin)
        form.addRow("Output folder", _path_row(self.out_edit, browse_out))
        form.addRow("", self.out_note)
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Generate", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

        browse_image.clicked.connect(lambda: self._browse_file(self.image_edit, "Large image"))
        browse_mask.clicked.connect(lambda: self._browse_file(self.mask_edit, "Roof mask"))
        browse_out.clicked.connect(self._browse_out)
        self.resize_box.toggled.connect(self.resize_spin.setEnabled)
        self.resize_spin.setEnabled(self.resize_box.isChecked())
        self.out_edit.textChanged.connect(self._describe_out)
        if image:
            self.image_chosen(Path(image))

    def image_chosen(self, image: Path) -> None:
        """A new image: an output folder that can be written and a patch plan that fits it."""
        self.image_edit.setText(str(image))
        self.out_edit.setText(str(default_output_folder(image)))
        from core.errors import ImageReadError
        from core.generate import fitting_patches
        from core.io import image_size

        try:
            width, height = image_size(image)
        except ImageReadError as exc:
            self.message.setText(f"<span style='color:#ff7b72'>{exc}</span>")
            return
        try:
            wanted = parse_plan(self.plan_edit.toPlainText())
        except ConfigError:
            wanted = parse_plan(DEFAULT_PLAN)
        fitting = fitting_patches(width, height, wanted)
        if fitting != tuple(wanted):
            self.plan_edit.blockSignals(True)
            self.plan_edit.setPlainText(
                "\n".join(f"{s.size}:{s.stride_fraction:g}" for s in fitting)
            )
            self.plan_edit.blockSignals(False)
            self.message.setText(
                f"The image is {width} x {height} px: the patch plan keeps the sizes that fit it."
            )

    def _describe_out(self, text: str) -> None:
        text = text.strip()
        self.out_note.setText(
            f"The dataset will be written to {Path(text).resolve()}" if text else ""
        )

    def _browse_file(self, edit: QLineEdit, title: str) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            title,
            edit.text() or str(Path.home()),
            "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp);;All files (*)",
        )
        if path:
            if edit is self.image_edit:
                self.image_chosen(Path(path))
            else:
                edit.setText(path)

    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Output folder", self.out_edit.text() or str(Path.home())
        )
        if path:
            self.out_edit.setText(path)

    def config(self):
        """The GenerateConfig of the form (raises ConfigError with a message to show)."""
        from core.generate import GenerateConfig

        rotations = tuple(a for a, box in self.rotation_boxes.items() if box.isChecked())
        if not rotations:
            raise ConfigError("choose at least one rotation (0° keeps the patches as they are)")
        return GenerateConfig(
            patches=tuple(parse_plan(self.plan_edit.toPlainText())),
            resize=self.resize_spin.value() if self.resize_box.isChecked() else None,
            rotations=rotations,
            test_fraction=self.test_spin.value() / 100.0,
            seed=self.seed_spin.value(),
        )

    def start(self) -> None:
        if self._task is not None:
            return
        try:
            image = Path(self.image_edit.text().strip())
            if not self.image_edit.text().strip():
                raise ConfigError("choose the large image to cut into patches")
            mask = Path(self.mask_edit.text().strip()) if self.mask_edit.text().strip() else None
            if not self.out_edit.text().strip():
                raise ConfigError("choose an output folder")
            out = Path(self.out_edit.text().strip())
            config = self.config()
        except RooftopError as exc:
            self.message.setText(f"<span style='color:#ff7b72'>{exc}</span>")
            return
        self.settings.setValue("generate/plan", self.plan_edit.toPlainText())
        self.settings.setValue("generate/resize", config.resize or "None")
        self.settings.setValue("generate/rotations", ",".join(str(r) for r in config.rotations))
        self.settings.setValue("generate/test_percent", self.test_spin.value())

        def work(on_progress, should_stop):
            from core.generate import generate_dataset

            return generate_dataset(
                image, mask, out, config, on_progress=on_progress, should_stop=should_stop
            )

        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.message.setText("Generating…")
        self.run_button.setEnabled(False)
        self._task = self.runner.start(
            work,
            on_progress=self._on_progress,
            on_finished=self._on_finished,
            on_failed=self._on_failed,
            on_done=self._on_done,
            name="generate",
        )

    def _on_progress(self, event: Progress) -> None:
        if isinstance(event, Progress) and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(f"%v / %m {event.unit}")

    def _on_finished(self, result) -> None:
        self.result = result
        self.result_dir = Path(result.dataset_dir)
        self.accept()

    def _on_failed(self, exc) -> None:
        if isinstance(exc, Stopped):
            self.message.setText("Cancelled.")
            return
        self.message.setText(f"<span style='color:#ff7b72'>{describe(exc)}</span>")

    def _on_done(self) -> None:
        self._task = None
        self.progress.setVisible(False)
        self.run_button.setEnabled(True)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.request_stop()
            self.message.setText("Cancelling…")
            self._task.wait(30_000)
        self.reject()

    def closeEvent(self, event) -> None:  # noqa: N802
        if self._task is not None:
            self._task.request_stop()
            self._task.wait(30_000)
        super().closeEvent(event)

    def reject(self) -> None:
        if self._task is not None:
            self._task.request_stop()
            self._task.wait(30_000)
        super().reject()
