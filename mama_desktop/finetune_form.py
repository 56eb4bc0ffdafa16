"""The fine-tune dialog's "What to train" form: cases, labels, task, mode, base model, steps.
Its choices and defaults are the engine's (`finetune_inputs`); `request()` turns it into a run."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from mama_core.errors import ConfigError

from . import engine
from .finetune_inputs import (
    MODE_HELP,
    TASK_TITLES,
    config_help,
    default_steps,
    modes,
    plan_text,
    table_inputs,
    table_note,
    tasks,
    worklist_labels,
)
from .finetune_job import FinetuneRequest
from .state import AppState
from .workers import TaskRunner
from .worklist import write_labels_csv

LABEL_SOURCES = {
    "cases": "From the cases folder (EMBED metadata.csv + clinical.csv, or RSNA train.csv)",
    "table": "From a table… (RSNA train.csv, EMBED table, or study_id[,view],birads,density,cancer)",
    "worklist": "Set in the worklist (right-click a study, or the Reader columns)",
}


def _combo(items: dict[str, str]) -> QComboBox:
    combo = QComboBox()
    for key, text in items.items():
        combo.addItem(text, key)
    return combo


def _row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class FinetuneForm(QGroupBox):
    """The inputs of one run; `request()` is the run they describe."""

    def __init__(self, state: AppState, runner: TaskRunner, device: str | None, parent: QWidget | None = None):
        super().__init__("What to train", parent)
        self.state, self.runner, self.device = state, runner, device
        self.n_images: int | None = None
        self.labels_file: Path | None = None  # a worklist labels CSV written for the running job
        self._build()
        self._wire()
        self.use_open_folder()

    def _build(self) -> None:
        form = QFormLayout(self)
        self.cases = QLineEdit(placeholderText="a folder of DICOM studies (or an EMBED folder)")
        self.cases_button = QPushButton("Folder…")
        form.addRow("Cases", _row(self.cases, self.cases_button))
        self.label_source = _combo(LABEL_SOURCES)
        form.addRow("Labels", self.label_source)
        self.table = QLineEdit(placeholderText="a CSV: RSNA train.csv, EMBED metadata.csv, or a labels table")
        self.table_button = QPushButton("Table…")
        self.table_row = _row(self.table, self.table_button)
        form.addRow("Table", self.table_row)
        self.label_info = QLabel(wordWrap=True, objectName="Muted")
        form.addRow("", self.label_info)
        self.task = _combo({t: TASK_TITLES.get(t, t) for t in tasks()})
        self.task.setToolTip(config_help("task"))
        form.addRow("Task", self.task)
        self.mode = _combo({m: m for m in modes()})
        self.mode_help = QLabel(wordWrap=True, objectName="Muted")
        form.addRow("Mode", self.mode)
        form.addRow("", self.mode_help)
        self.base = QComboBox(editable=True, toolTip=config_help("base_model"))
        self._fill_base_models()
        form.addRow("Start from", self.base)
        self.steps = QSpinBox(minimum=0, maximum=100000, singleStep=50, toolTip=config_help("max_steps"))
        form.addRow("Training steps", self.steps)
        self.estimate = QLabel(objectName="Muted", wordWrap=True)
        form.addRow("Time", self.estimate)

    def _fill_base_models(self) -> None:
        self.base.addItem("active (registry)", "active")
        for label, model_dir in engine.registry_models():
            self.base.addItem(label, model_dir)
        current = getattr(self.state.predictor, "model_dir", None)
        if current is not None and self.base.findData(str(current)) < 0:
            self.base.addItem(f"{current} (loaded now)", str(current))

    def _wire(self) -> None:
        self.cases_button.clicked.connect(self._choose_cases)
        self.table_button.clicked.connect(self._choose_table)
        self.label_source.currentIndexChanged.connect(lambda _i: self._update_labels())
        self.task.currentIndexChanged.connect(lambda _i: self._update_labels())
        self.table.textChanged.connect(lambda _t: self._update_labels())
        self.cases.editingFinished.connect(self._count_images)
        self.mode.currentIndexChanged.connect(lambda _i: self._update_mode())
        self.steps.valueChanged.connect(lambda _v: self._update_estimate())
        self.state.readerLabelsChanged.connect(lambda _u: self._update_labels())
        self._update_mode()
        self._update_labels()

    # ----- cases -------------------------------------------------------------------------------
    def use_open_folder(self) -> None:
        if self.state.folder is not None:
            self.cases.setText(str(self.state.folder))
            self.n_images = sum(len(s.images) for s in self.state.studies) or None
            if self.n_images is None:
                self._count_images()
        self._update_estimate()

    def set_cases(self, folder: str | Path) -> None:
        self.cases.setText(str(folder))
        self._count_images()

    def _choose_cases(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Cases to fine-tune on", self.cases.text())
        if folder:
            self.set_cases(folder)

    def _choose_table(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Labels table", self.cases.text(), "CSV tables (*.csv)")
        if path:
            self.table.setText(path)
            self.label_source.setCurrentIndex(self.label_source.findData("table"))

    def _count_images(self) -> None:
        folder = Path(self.cases.text().strip())
        if not folder.is_dir():
            return
        self.n_images = None
        self.estimate.setText("counting images…")
        self.runner.start(engine.count_images, folder, on_done=self._counted, on_error=lambda _e: None)

    def _counted(self, n: int) -> None:
        self.n_images = n
        self._update_estimate()

    # ----- derived texts -----------------------------------------------------------------------
    def _update_mode(self) -> None:
        mode = self.mode.currentData()
        self.mode_help.setText(MODE_HELP.get(mode, ""))
        self.steps.setSpecialValueText(f"mode default ({default_steps(mode)})")
        self._update_estimate()

    def _update_estimate(self) -> None:
        self.estimate.setText(plan_text(self.n_images, self.mode.currentData(), self.steps.value() or None))

    def _update_labels(self) -> None:
        source, task = self.label_source.currentData(), self.task.currentData()
        self.table_row.setEnabled(source == "table")
        text = ""
        if source == "worklist":
            n = sum(1 for v in self.state.reader_labels.values() if task in v)
            text = f"{n} stud{'y' if n == 1 else 'ies'} carry your {task} label in the worklist"
        elif source == "table" and self.table.text().strip():
            text = table_note(self.table.text().strip())
        self.label_info.setText(text)
        self.label_info.setVisible(bool(text))

    # ----- the run -----------------------------------------------------------------------------
    def request(self) -> FinetuneRequest:
        """The run the form describes (ConfigError / DataError for a missing or bad choice)."""
        data, labels = self.cases.text().strip(), None
        source = self.label_source.currentData()
        if source == "table":
            data, labels = table_inputs(data, self.table.text().strip())
        elif source == "worklist":
            labels = str(self._worklist_labels_csv())
        if source != "table" and not Path(data).is_dir():
            raise ConfigError(f"{data or '(none)'}: not a folder of cases", field="data")
        return FinetuneRequest(data=data, task=self.task.currentData(), mode=self.mode.currentData(),
                               labels=labels, model=self._base_model(), max_steps=self.steps.value() or None,
                               device=self.device)

    def _worklist_labels_csv(self) -> Path:
        labels = worklist_labels(self.state.reader_labels, self.task.currentData())
        target = engine.labels_scratch_dir() / f"worklist-labels-{int(time.time() * 1000)}.csv"
        self.remove_labels_file()
        self.labels_file = write_labels_csv(labels, target)
        return target

    def remove_labels_file(self) -> None:
        if self.labels_file is not None:
            self.labels_file.unlink(missing_ok=True)
            self.labels_file = None

    def _base_model(self) -> str:
        data = self.base.currentData()
        text = self.base.currentText().strip()
        return str(data) if data is not None and self.base.itemText(self.base.currentIndex()) == text else text
