"""One-click local fine-tuning: choose cases, labels, task and mode; watch it train; compare; activate.

Training runs in a separate process (`python -m mama_core.cli finetune ... --json`, docs/method.md §3):
the window stays responsive, a crash cannot take the workstation down, and Cancel is a real
kill. The child prints one JSON report per line (`FinetuneReport.to_json()`), then a summary
line `{"summary": true, "version_id", "cancelled", "comparison", ...}`; the new version is
registered but not activated until the reader presses Activate.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mama_core.errors import ConfigError

from . import engine
from .controllers import describe_error
from .state import AppState
from .workers import TaskRunner
from .worklist import write_labels_csv

log = logging.getLogger(__name__)

TASK_TITLES = {"density": "Breast density (A-D)", "birads": "BI-RADS assessment (0-6)", "cancer": "Cancer (yes/no)"}
MODE_HELP = {
    "linear-probe": "Trains only a small classifier on the frozen model's image features: fast, safe with few cases.",
    "lora": "Adapts the vision encoder with low-rank adapters (LoRA) plus the classifier: slower, more capacity.",
    "full": "Updates every encoder weight: slowest; needs many cases and may overfit a small set.",
    "continue-pretraining": "Continues image-report pre-training on your cases (no labels needed for that "
                            "step); the result predicts zero-shot.",
}
LABEL_SOURCES = {
    "cases": "From the cases folder (EMBED metadata.csv + clinical.csv, or RSNA train.csv)",
    "table": "From a table… (RSNA train.csv, EMBED table, or study_id[,view],birads,density,cancer)",
    "worklist": "Set in the worklist (right-click a study, or the Reader columns)",
}
# Rough seconds per image for one feature pass, and per training sample, on CPU; a GPU is
# taken as ~10x faster. Only an order of magnitude: the progress bar then measures the real ETA.
FEATURE_S_PER_IMAGE = 0.25
TRAIN_S_PER_SAMPLE = {"linear-probe": 0.0005, "lora": 0.6, "full": 0.9, "continue-pretraining": 1.0}
MODE_STEPS = {"linear-probe": 300, "lora": 200, "full": 200, "continue-pretraining": 200}
MODE_BATCH = {"linear-probe": 64, "lora": 8, "full": 8, "continue-pretraining": 8}
STARTUP_S = 20.0
KILL_AFTER_MS = 5000  # after terminate(), a process that has not exited is killed
RUNNING_PHASES_CANCELLABLE = ("features", "train", "validate", "compare")


def estimate_seconds(n_images: int, mode: str, steps: int | None = None, gpu: bool = False) -> float:
    """A rough duration: start-up, one feature pass over every image, then the mode's training."""
    speed = 10.0 if gpu else 1.0
    steps = steps or MODE_STEPS[mode]
    features = n_images * FEATURE_S_PER_IMAGE / speed
    training = steps * MODE_BATCH[mode] * TRAIN_S_PER_SAMPLE[mode] / speed
    return STARTUP_S + features + training


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class FinetuneRequest:
    """What the dialog asks `mama finetune` to do; `cli_args()` is its command line."""

    data: str
    task: str = "density"
    mode: str = "linear-probe"
    labels: str | None = None
    model: str = "active"
    max_steps: int | None = None
    device: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("choose the cases to fine-tune on", field="data")
        if self.task not in engine.FINETUNE_TASKS:
            raise ConfigError(f"unknown task {self.task!r}", field="task")
        if self.mode not in engine.FINETUNE_MODES:
            raise ConfigError(f"unknown mode {self.mode!r}", field="mode")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError("steps must be positive", field="max_steps")

    def cli_args(self) -> list[str]:
        args = ["--data", self.data, "--task", self.task, "--mode", self.mode, "--model", self.model]
        if self.labels:
            args += ["--labels", self.labels]
        if self.max_steps:
            args += ["--max-steps", str(self.max_steps)]
        if self.device and self.device != "auto":
            args += ["--device", self.device]
        return args + list(self.extra_args)


class JsonLines:
    """Splits a byte stream into lines; JSON objects are parsed, anything else is text."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[dict | str]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [self._parse(line) for line in lines if line.strip()]

    def flush(self) -> list[dict | str]:
        rest, self._buffer = self._buffer, b""
        return [self._parse(rest)] if rest.strip() else []

    @staticmethod
    def _parse(line: bytes) -> dict | str:
        text = line.decode("utf-8", errors="replace").strip()
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return value if isinstance(value, dict) else text


def last_console_segment(text: str) -> str:
    """tqdm-style output rewrites one line with carriage returns; keep what was last shown."""
    return text.rstrip("\r").split("\r")[-1].strip()


class FinetuneProcess(QObject):
    """The `mama finetune --json` child process and its report stream."""

    report = Signal(dict)  # one FinetuneReport.to_json()
    summary = Signal(dict)  # the final summary line
    logLine = Signal(str)  # stderr and non-JSON stdout
    ended = Signal(int, bool)  # exit code, cancelled by the user

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.process = QProcess(self)
        self.process.setProcessEnvironment(self._environment())
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self._stdout = JsonLines()
        self._stderr = b""
        self.cancelled = False
        self._kill_timer = QTimer(self, singleShot=True, interval=KILL_AFTER_MS, timeout=self._kill)

    @staticmethod
    def _environment() -> QProcessEnvironment:
        env = QProcessEnvironment.systemEnvironment()  # private MAMA_*_DIR, caches, CUDA settings
        for key, value in engine.child_environment().items():
            env.insert(key, value)
        return env

    def start(self, request: FinetuneRequest) -> None:
        program, args = engine.finetune_command(request.cli_args())
        self.cancelled = False
        log.info("fine-tuning: %s %s", program, " ".join(args))
        self.process.start(program, args)

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Terminate (SIGTERM), then kill if it has not exited after KILL_AFTER_MS."""
        if not self.running():
            return
        self.cancelled = True
        self.process.terminate()
        self._kill_timer.start()

    def kill_now(self) -> None:
        if self.running():
            self.cancelled = True
            self.process.kill()
            self.process.waitForFinished(3000)

    def _kill(self) -> None:
        if self.running():
            log.warning("fine-tuning process ignored terminate(); killing it")
            self.process.kill()

    def _read_stdout(self) -> None:
        self._dispatch(self._stdout.feed(bytes(self.process.readAllStandardOutput())))

    def _dispatch(self, items: list[dict | str]) -> None:
        for item in items:
            if isinstance(item, str):
                self.logLine.emit(item)
            elif item.get("summary"):
                self.summary.emit(item)
            else:
                self.report.emit(item)

    def _read_stderr(self) -> None:
        self._stderr += bytes(self.process.readAllStandardError())
        *lines, self._stderr = self._stderr.split(b"\n")
        for line in lines:
            text = last_console_segment(line.decode("utf-8", errors="replace"))
            if text:
                self.logLine.emit(text)

    def _finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._dispatch(self._stdout.flush())
        if self._stderr.strip():
            self.logLine.emit(last_console_segment(self._stderr.decode("utf-8", errors="replace")))
            self._stderr = b""
        self.ended.emit(code, self.cancelled)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.logLine.emit(f"could not start the fine-tuning process: {self.process.errorString()}")
            self.ended.emit(-1, False)


class TrainingCurve(pg.PlotWidget):
    """Training loss and validation balanced accuracy against the optimiser step."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="#17191c")
        self.setMinimumHeight(150)
        self.addLegend(offset=(-10, 10))
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("bottom", "step")
        self.loss = self.plot([], [], pen=pg.mkPen("#f6b26b", width=1.5), name="training loss")
        self.bacc = self.plot([], [], pen=pg.mkPen("#6fa8dc", width=2), symbol="o", symbolSize=5,
                              symbolBrush="#6fa8dc", name="validation bACC")
        self.clear_data()

    def clear_data(self) -> None:
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.bacc_x: list[float] = []
        self.bacc_y: list[float] = []
        self._offset, self._last_step, self._stage = 0, 0, None
        self.loss.setData([], [])
        self.bacc.setData([], [])

    def add(self, report: dict) -> None:
        if report.get("phase") not in ("train", "validate"):
            return
        x = self._x(report)
        # Each step reports once, as 'train' or (when it validated) 'validate', both with the
        # step's training loss; a repeated step (the early-stop notice) adds no new point.
        if report.get("loss") is not None and (not self.loss_x or x != self.loss_x[-1]):
            self.loss_x.append(x)
            self.loss_y.append(float(report["loss"]))
            self.loss.setData(self.loss_x, self.loss_y)
        if report.get("val_bacc") is not None and (not self.bacc_x or x != self.bacc_x[-1]):
            self.bacc_x.append(x)
            self.bacc_y.append(float(report["val_bacc"]))
            self.bacc.setData(self.bacc_x, self.bacc_y)

    def _x(self, report: dict) -> float:
        # LoRA/full first fit a head, then the encoder: steps restart, the x axis continues.
        stage = (report.get("extra") or {}).get("stage")
        step = int(report.get("step") or 0)
        if stage != self._stage and self._last_step and step < self._last_step:
            self._offset += self._last_step
        self._stage, self._last_step = stage, step
        return float(self._offset + step)


WARNING_COLOUR = "#f6b26b"


def _with_ci(side: dict, key: str) -> str:
    """A metric with its 95 % bootstrap interval when the report has one."""
    ci = (side.get("ci95") or {}).get(key)
    return _number(side.get(key)) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


METRIC_ROWS = (("Balanced accuracy", "balanced_accuracy"), ("AUC (macro, one-vs-rest)", "auc"),
               ("Sensitivity", "sensitivity"), ("Specificity", "specificity"), ("Held-out images", "n"),
               ("Method", "method"))


def _table(rows: int, columns: int, headers: list[str], vertical: list[str] | None = None) -> QTableWidget:
    table = QTableWidget(rows, columns)
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    if vertical is None:
        table.verticalHeader().hide()
    else:
        table.setVerticalHeaderLabels(vertical)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return table


def fit_height(table: QTableWidget) -> None:
    """Show every row: these tables are a handful of rows and must not scroll."""
    table.resizeColumnsToContents()
    table.resizeRowsToContents()
    rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
    header = max(table.horizontalHeader().height(), table.horizontalHeader().sizeHint().height())
    table.setFixedHeight(header + rows + 2 * table.frameWidth() + 2)


class ComparisonView(QWidget):
    """The final report: metrics of the current active model and the new one on the same
    held-out cases, and both confusion matrices (rows: truth, columns: prediction)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.metrics = _table(len(METRIC_ROWS), 3, ["Metric", "Current active model", "New model"])
        self.metrics.horizontalHeader().setStretchLastSection(True)
        self.confusions = QHBoxLayout()
        self.note = QLabel(wordWrap=True)
        self.note.setObjectName("Muted")
        self.title = QLabel()
        self.counts = QLabel(wordWrap=True)
        self.verdict = QLabel(wordWrap=True)  # the comparison's verdict in words (finetune.compare.judge)
        self.recommended = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.counts)
        layout.addWidget(self.verdict)
        layout.addWidget(self.metrics)
        layout.addLayout(self.confusions)
        layout.addWidget(self.note)

    def show_report(self, report: dict) -> None:
        new, old = report.get("new") or {}, report.get("baseline") or {}
        self.title.setText(f"<b>{report.get('task', '?')}</b> on {report.get('n_cases', '?')} held-out images "
                           f"(patients never used for training)")
        current = Path(str(old.get("model") or "")).name or "?"
        self.metrics.setHorizontalHeaderLabels(["Metric", f"Current active model ({current})", "New model"])
        for row, (title, key) in enumerate(METRIC_ROWS):
            for column, text in enumerate((title, _with_ci(old, key), _with_ci(new, key))):
                self.metrics.setItem(row, column, QTableWidgetItem(text))
        fit_height(self.metrics)
        self._show_confusions(report.get("classes") or [], old, new)
        notices = sorted(set((report.get("notices") or {}).values()))
        self.note.setText(report.get("note", "") + "; [ ] = 95 % bootstrap interval"
                          + "".join(f"\n{n}" for n in notices))
        self._show_verdict(report)

    def _show_verdict(self, report: dict) -> None:
        counts = report.get("class_counts") or {}
        self.counts.setText("Held-out images per class: " + ", ".join(f"{c}: {n}" for c, n in counts.items()))
        verdict = report.get("verdict") or {}
        self.recommended = bool(verdict.get("activate_recommended"))
        reasons = "; ".join(verdict.get("reasons", [])) or "this report carries no verdict"
        if verdict.get("winner") is None:
            self.verdict.setText(f"<b>No winner.</b> {reasons}.")
        else:
            self.verdict.setText(f"<b>{'New model' if verdict['winner'] == 'new' else 'Current model'} is better.</b> "
                                 f"{reasons}.")
        self.verdict.setStyleSheet("" if self.recommended else f"color: {WARNING_COLOUR};")

    def _show_confusions(self, classes: list, old: dict, new: dict) -> None:
        while self.confusions.count():
            widget = self.confusions.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for title, side in (("Current active model", old), ("New model", new)):
            self.confusions.addWidget(self._confusion(title, classes, side.get("confusion") or []))

    @staticmethod
    def _confusion(title: str, classes: list, matrix: list[list[int]]) -> QGroupBox:
        names = [str(c) for c in classes] or [str(i) for i in range(len(matrix))]
        table = _table(len(names), len(names), [f"pred {n}" for n in names], [f"true {n}" for n in names])
        for r, row in enumerate(matrix):
            for c, value in enumerate(row):
                item = QTableWidgetItem(str(value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                table.setItem(r, c, item)
        fit_height(table)
        box = QGroupBox(f"Confusion matrix — {title}")
        QVBoxLayout(box).addWidget(table)
        return box


class FinetuneDialog(QDialog):
    """The fine-tune dialog; `activated(version_id)` fires after the new version is activated."""

    activated = Signal(str)
    runEnded = Signal(str)  # 'done' | 'cancelled' | 'failed'

    def __init__(self, state: AppState, runner: TaskRunner, device: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Fine-tune on local cases — research use only")
        self.state, self.runner, self.device = state, runner, device
        self.proc = FinetuneProcess(self)
        self.version_id: str | None = None
        self.phase: str | None = None
        self.n_images: int | None = None
        self._labels_file: Path | None = None
        self._build()
        self._wire()
        self.resize(840, 900)
        self._use_open_folder()

    # ----- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_form())
        layout.addLayout(self._build_buttons())
        layout.addLayout(self._build_progress())
        self.curve = TrainingCurve()
        self.log_view = QPlainTextEdit(readOnly=True, maximumBlockCount=2000, minimumHeight=60)
        self.log_view.setPlaceholderText("Messages from the fine-tuning process appear here.")
        progress = QSplitter(Qt.Orientation.Vertical)
        progress.addWidget(self.curve)
        progress.addWidget(self.log_view)
        progress.setSizes([300, 120])
        self.tabs = QTabWidget()
        self.tabs.addTab(progress, "Progress")
        scroll = QScrollArea(widgetResizable=True)
        scroll.setWidget(self._build_report())
        self.tabs.addTab(scroll, "Comparison")
        self.tabs.setTabEnabled(1, False)
        layout.addWidget(self.tabs, 1)

    def _build_form(self) -> QGroupBox:
        box = QGroupBox("What to train")
        form = QFormLayout(box)
        self.cases = QLineEdit(placeholderText="a folder of DICOM studies (or an EMBED folder)")
        self.cases_button = QPushButton("Folder…")
        form.addRow("Cases", self._row(self.cases, self.cases_button))
        self.label_source = QComboBox()
        for key, text in LABEL_SOURCES.items():
            self.label_source.addItem(text, key)
        form.addRow("Labels", self.label_source)
        self.table = QLineEdit(placeholderText="a CSV: RSNA train.csv, EMBED metadata.csv, or a labels table")
        self.table_button = QPushButton("Table…")
        self.table_row = self._row(self.table, self.table_button)
        form.addRow("Table", self.table_row)
        self.label_info = QLabel(wordWrap=True, objectName="Muted")
        form.addRow("", self.label_info)
        self.task = self._combo(TASK_TITLES)
        form.addRow("Task", self.task)
        self.mode = self._combo({m: m for m in engine.FINETUNE_MODES})
        self.mode_help = QLabel(wordWrap=True, objectName="Muted")
        form.addRow("Mode", self.mode)
        form.addRow("", self.mode_help)
        self.base = QComboBox(editable=True)
        self._fill_base_models()
        form.addRow("Start from", self.base)
        self.steps = QSpinBox(minimum=0, maximum=100000, singleStep=50, specialValueText="mode default")
        form.addRow("Training steps", self.steps)
        self.estimate = QLabel(objectName="Muted", wordWrap=True)
        form.addRow("Time", self.estimate)
        self.form_box = box
        return box

    def _fill_base_models(self) -> None:
        self.base.addItem("active (registry)", "active")
        for label, model_dir in engine.registry_models():
            self.base.addItem(label, model_dir)
        current = getattr(self.state.predictor, "model_dir", None)
        if current is not None and self.base.findData(str(current)) < 0:
            self.base.addItem(f"{current} (loaded now)", str(current))

    @staticmethod
    def _row(edit: QLineEdit, button: QPushButton) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
        layout.addWidget(button)
        return row

    @staticmethod
    def _combo(items: dict[str, str]) -> QComboBox:
        combo = QComboBox()
        for key, text in items.items():
            combo.addItem(text, key)
        return combo

    def _build_buttons(self) -> QHBoxLayout:
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        row.addWidget(self.close_button)
        return row

    def _build_progress(self) -> QGridLayout:
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.phase_label = QLabel("Not started")
        self.eta_label = QLabel("", objectName="Muted")
        grid = QGridLayout()
        grid.addWidget(self.phase_label, 0, 0)
        grid.addWidget(self.eta_label, 0, 1, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.progress, 1, 0, 1, 2)
        return grid

    def _build_report(self) -> QGroupBox:
        box = QGroupBox("Comparison: new model vs the current active model")
        layout = QVBoxLayout(box)
        self.comparison = ComparisonView()
        layout.addWidget(self.comparison)
        self.activate_button = QPushButton("Activate the new model")
        self.keep_button = QPushButton("Keep current")
        # Explicit override: shown only when the comparison names no winner, unchecked by default.
        self.activate_anyway = QCheckBox("Allow activation although the comparison names no winner")
        self.activate_anyway.setVisible(False)
        self.activate_anyway.toggled.connect(self._update_activate)
        row = QHBoxLayout()
        row.addWidget(self.activate_anyway)
        row.addStretch(1)
        row.addWidget(self.keep_button)
        row.addWidget(self.activate_button)
        layout.addLayout(row)
        self.report_box = box
        return box

    def _wire(self) -> None:
        self.cases_button.clicked.connect(self._choose_cases)
        self.table_button.clicked.connect(self._choose_table)
        self.label_source.currentIndexChanged.connect(lambda _i: self._update_labels())
        self.table.textChanged.connect(lambda _t: self._update_labels())
        self.cases.editingFinished.connect(self._count_images)
        self.mode.currentIndexChanged.connect(lambda _i: self._update_mode())
        self.steps.valueChanged.connect(lambda _v: self._update_estimate())
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.request_cancel)
        self.close_button.clicked.connect(self.close)
        self.activate_button.clicked.connect(self.activate_new)
        self.keep_button.clicked.connect(self.keep_current)
        self.proc.report.connect(self._on_report)
        self.proc.summary.connect(self._on_summary)
        self.proc.logLine.connect(self.log)
        self.proc.ended.connect(self._on_ended)
        self.state.readerLabelsChanged.connect(lambda _u: self._update_labels())
        self._update_mode()
        self._update_labels()

    # ----- inputs ------------------------------------------------------------------------------
    def _use_open_folder(self) -> None:
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

    def _update_mode(self) -> None:
        self.mode_help.setText(MODE_HELP[self.mode.currentData()])
        self._update_estimate()

    def _update_estimate(self) -> None:
        if not self.n_images:
            self.estimate.setText("choose the cases for a time estimate")
            return
        seconds = estimate_seconds(self.n_images, self.mode.currentData(), self.steps.value() or None,
                                   gpu=self.device == "cuda")
        self.estimate.setText(f"about {format_duration(seconds)} — a rough estimate from {self.n_images} images "
                              f"and the mode; the bar shows a measured ETA once it runs")

    def _update_labels(self) -> None:
        source = self.label_source.currentData()
        self.table_row.setEnabled(source == "table")
        if source == "worklist":
            n = sum(1 for v in self.state.reader_labels.values() if self.task.currentData() in v)
            self.label_info.setText(f"{n} stud{'y' if n == 1 else 'ies'} carry your "
                                    f"{self.task.currentData()} label in the worklist")
        elif source == "table" and self.table.text().strip():
            self.label_info.setText(self._table_text(self.table.text().strip()))
        else:
            self.label_info.setText("")
        self.label_info.setVisible(bool(self.label_info.text()))

    @staticmethod
    def _table_text(path: str) -> str:
        try:
            kind = engine.table_kind(path)
        except Exception as exc:  # noqa: BLE001 - shown next to the field
            return str(exc)
        return {"labels": "a labels table: the images come from the Cases folder",
                "embed": "an EMBED table: its folder is used as the cases",
                "data": "a table of images with labels (RSNA / generic): the Cases folder is not used"}[kind]

    def request(self) -> FinetuneRequest:
        """The run the form describes (ConfigError / DataError for a missing or bad choice)."""
        data, labels = self.cases.text().strip(), None
        source = self.label_source.currentData()
        if source == "table":
            data, labels = self._table_inputs(data)
        elif source == "worklist":
            labels = str(self._worklist_labels_csv())
        if source != "table" and not Path(data).is_dir():
            raise ConfigError(f"{data or '(none)'}: not a folder of cases", field="data")
        steps = self.steps.value() or None
        return FinetuneRequest(data=data, task=self.task.currentData(), mode=self.mode.currentData(),
                               labels=labels, model=self._base_model(), max_steps=steps, device=self.device)

    def _table_inputs(self, cases: str) -> tuple[str, str | None]:
        table = self.table.text().strip()
        if not table:
            raise ConfigError("choose a table (Table…)", field="labels")
        kind = engine.table_kind(table)
        if kind == "labels":
            return cases, table
        return (str(Path(table).parent), None) if kind == "embed" else (table, None)

    def _worklist_labels_csv(self) -> Path:
        task = self.task.currentData()
        if task == "cancer":
            raise ConfigError("the worklist holds density and BI-RADS labels only; choose a table for cancer",
                              field="labels")
        labels = {uid: v for uid, v in self.state.reader_labels.items() if task in v}
        if not labels:
            raise ConfigError(f"no study has your {task} label yet: set it in the worklist (right-click a study)",
                              field="labels")
        target = engine.labels_scratch_dir() / f"worklist-labels-{int(time.time() * 1000)}.csv"
        self._labels_file = write_labels_csv(labels, target)
        return target

    def _base_model(self) -> str:
        data = self.base.currentData()
        text = self.base.currentText().strip()
        return str(data) if data is not None and self.base.itemText(self.base.currentIndex()) == text else text

    # ----- running -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.proc.running():
            return
        try:
            request = self.request()
        except Exception as exc:  # noqa: BLE001 - a bad choice is a message, not a crash
            message, _details = describe_error(exc)
            QMessageBox.warning(self, "Fine-tuning", message)
            return
        self._reset_run()
        self.log(f"starting: mama finetune {' '.join(request.cli_args())}")
        self.proc.start(request)
        self._set_running(True)

    def _reset_run(self) -> None:
        self.version_id, self.phase = None, None
        self.curve.clear_data()
        self.tabs.setCurrentIndex(0)
        self.tabs.setTabEnabled(1, False)
        self.progress.setRange(0, 0)  # busy until the first report gives counts
        self.phase_label.setText("Starting the fine-tuning process…")
        self.eta_label.setText("")
        self.activate_anyway.setChecked(False)  # an override never carries over to the next run
        self.activate_anyway.setVisible(False)

    def _set_running(self, running: bool) -> None:
        self.form_box.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_report(self, report: dict) -> None:
        self.phase = report.get("phase")
        step, total = int(report.get("step") or 0), int(report.get("total_steps") or 0)
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(step, total))
        elif self.phase in ("compare", "save"):
            self.progress.setRange(0, 0)
        self.phase_label.setText(self._phase_text(report, step, total))
        eta = report.get("eta_s")
        self.eta_label.setText(f"about {format_duration(eta)} left in this phase" if eta is not None else "")
        self.curve.add(report)
        if report.get("message"):
            self.log(f"[{self.phase}] {report['message']}")
        self.cancel_button.setEnabled(self.phase in RUNNING_PHASES_CANCELLABLE)  # registering is atomic

    @staticmethod
    def _phase_text(report: dict, step: int, total: int) -> str:
        names = {"features": "Extracting image features", "train": "Training", "validate": "Training",
                 "compare": "Comparing with the active model", "save": "Registering the new version",
                 "done": "Finished"}
        text = names.get(report.get("phase"), str(report.get("phase")))
        if total:
            text += f" — {step}/{total}"
        if report.get("loss") is not None:
            text += f" — loss {report['loss']:.4f}"
        if report.get("best_val_bacc") is not None:
            text += f" — best val bACC {report['best_val_bacc']:.3f}"
        return text

    def _on_summary(self, summary: dict) -> None:
        self.version_id = summary.get("version_id")
        if self.version_id and summary.get("comparison"):
            self.comparison.show_report(summary["comparison"])
            self.activate_anyway.setChecked(False)
            self.activate_anyway.setVisible(not self.comparison.recommended)
            self._update_activate()
            self.keep_button.setEnabled(True)
            self.tabs.setTabEnabled(1, True)
            self.tabs.setCurrentIndex(1)
            self.log(f"registered {self.version_id} (not active yet)")

    def _on_ended(self, code: int, cancelled: bool) -> None:
        self._set_running(False)
        self.progress.setRange(0, 1)
        if cancelled:
            self.progress.setValue(0)
            self.phase_label.setText("Cancelled — nothing was registered; the active model is unchanged")
            outcome = "cancelled"
        elif code == 0 and self.version_id:
            self.progress.setValue(1)
            self.phase_label.setText(f"Finished — new version {self.version_id}")
            outcome = "done"
        else:
            self.progress.setValue(0)
            self.phase_label.setText(f"Failed (exit code {code}) — see the messages below")
            outcome = "failed"
        self.eta_label.setText("")
        self.log(f"process ended ({outcome}, exit code {code})")
        self._remove_labels_file()
        self.runEnded.emit(outcome)

    def _remove_labels_file(self) -> None:
        if self._labels_file is not None:
            self._labels_file.unlink(missing_ok=True)
            self._labels_file = None

    def request_cancel(self) -> bool:
        """Ask, then terminate the process; True when it was asked to stop."""
        if not self.proc.running():
            return False
        answer = QMessageBox.question(self, "Cancel fine-tuning",
                                      "Stop the fine-tuning now? Nothing will be registered and the active "
                                      "model stays as it is.")
        if answer != QMessageBox.StandardButton.Yes:
            return False
        if self.phase not in (None, *RUNNING_PHASES_CANCELLABLE):
            self.log("too late to cancel: the new version is being registered")
            return False
        self.phase_label.setText("Cancelling…")
        self.proc.cancel()
        return True

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    # ----- the end -----------------------------------------------------------------------------
    def activate_new(self) -> None:
        if not self.version_id:
            return
        self.activate_button.setEnabled(False)
        self.keep_button.setEnabled(False)
        version = self.version_id
        self.runner.start(engine.activate_version, version, on_done=self._activated,
                          on_error=self._activate_failed)

    def _update_activate(self) -> None:
        """Activate is offered when the comparison recommends it, or after the explicit override."""
        self.activate_button.setEnabled(bool(self.version_id) and
                                        (self.comparison.recommended or self.activate_anyway.isChecked()))

    def _activated(self, version_id: str) -> None:
        self.log(f"{version_id} is now the active model")
        self.phase_label.setText(f"Active model: {version_id}")
        self.activated.emit(version_id)

    def _activate_failed(self, exc: BaseException) -> None:
        self._update_activate()
        self.keep_button.setEnabled(True)
        QMessageBox.warning(self, "Activate", describe_error(exc)[0])

    def keep_current(self) -> None:
        self.activate_button.setEnabled(False)
        self.keep_button.setEnabled(False)
        self.log(f"kept the current model; {self.version_id} stays in Models ▸ Model versions")

    def _may_close(self) -> bool:
        """Closing while training asks to cancel it first (once)."""
        return not self.proc.running() or self.proc.cancelled or self.request_cancel()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        if not self._may_close():
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:  # Esc
        if self._may_close():
            super().reject()

    def shutdown(self) -> None:
        """The application is closing: no training outlives the window."""
        self.proc.kill_now()
        self._remove_labels_file()
