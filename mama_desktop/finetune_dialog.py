"""One-click local fine-tuning: choose cases, labels, task and mode; watch it train; compare; activate.

Training runs in a separate process (`finetune_process`, docs/method.md §3): the window stays
responsive, a crash cannot take the workstation down, and Cancel is a real kill. What the
process says and where the run stands is `finetune_job.FinetuneJob` (no Qt); this dialog
composes the form, the live curve and the comparison, and shows what the job reports. The new
version is registered but not activated until the reader presses Activate.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import engine
from .controllers import describe_error
from .finetune_comparison import ComparisonView
from .finetune_curve import TrainingCurve
from .finetune_form import FinetuneForm
from .finetune_job import FinetuneJob, JobState
from .finetune_process import FinetuneProcess
from .state import AppState
from .workers import TaskRunner


class FinetuneDialog(QDialog):
    """The fine-tune dialog; `activated(version_id)` fires after the new version is activated."""

    activated = Signal(str)
    runEnded = Signal(str)  # 'done' | 'cancelled' | 'failed'

    def __init__(self, state: AppState, runner: TaskRunner, device: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Fine-tune on local cases — research use only")
        self.state, self.runner = state, runner
        self.job = FinetuneJob()
        self.proc = FinetuneProcess(self)
        self.form = FinetuneForm(state, runner, device)
        self._build()
        self._wire()
        self.resize(840, 900)

    @property
    def version_id(self) -> str | None:
        return self.job.version_id

    # ----- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
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

    def _build_buttons(self) -> QHBoxLayout:
        self.start_button = QPushButton("Start", default=True)
        self.cancel_button = QPushButton("Cancel training", enabled=False)
        self.close_button = QPushButton("Close")
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        row.addWidget(self.close_button)
        return row

    def _build_progress(self) -> QGridLayout:
        self.progress = QProgressBar(minimum=0, maximum=1, value=0)
        self.phase_label = QLabel(self.job.status_text())
        self.eta_label = QLabel("", objectName="Muted")
        grid = QGridLayout()
        grid.addWidget(self.phase_label, 0, 0)
        grid.addWidget(self.eta_label, 0, 1, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.progress, 1, 0, 1, 2)
        return grid

    def _build_report(self) -> QGroupBox:
        self.report_box = QGroupBox("Comparison: new model vs the current active model")
        layout = QVBoxLayout(self.report_box)
        self.comparison = ComparisonView()
        layout.addWidget(self.comparison)
        self.activate_button = QPushButton("Activate the new model")
        self.keep_button = QPushButton("Keep current")
        # Explicit override: shown only when the comparison names no winner, unchecked by default.
        self.activate_anyway = QCheckBox("Allow activation although the comparison names no winner", visible=False)
        row = QHBoxLayout()
        row.addWidget(self.activate_anyway)
        row.addStretch(1)
        row.addWidget(self.keep_button)
        row.addWidget(self.activate_button)
        layout.addLayout(row)
        return self.report_box

    def _wire(self) -> None:
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.request_cancel)
        self.close_button.clicked.connect(self.close)
        self.activate_anyway.toggled.connect(self._update_activate)
        self.activate_button.clicked.connect(self.activate_new)
        self.keep_button.clicked.connect(self.keep_current)
        self.proc.report.connect(self._on_report)
        self.proc.summary.connect(self._on_summary)
        self.proc.logLine.connect(self.log)
        self.proc.ended.connect(self._on_ended)

    # ----- running -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.job.running:
            return
        try:
            request = self.form.request()
            program, args = self.job.start(request)
        except Exception as exc:  # noqa: BLE001 - a bad choice is a message, not a crash
            QMessageBox.warning(self, "Fine-tuning", describe_error(exc)[0])
            return
        self._reset_view()
        self.log(f"starting: mama finetune {' '.join(request.cli_args())}")
        self.proc.start_command(program, args)
        self._set_running(True)

    def _reset_view(self) -> None:
        self.curve.show_points(self.job.curve)
        self.tabs.setCurrentIndex(0)
        self.tabs.setTabEnabled(1, False)
        self.progress.setRange(0, 0)  # busy until the first report gives counts
        self.phase_label.setText(self.job.status_text())
        self.eta_label.setText("")
        self.activate_anyway.setChecked(False)  # an override never carries over to the next run
        self.activate_anyway.setVisible(False)

    def _set_running(self, running: bool) -> None:
        self.form.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_report(self, report: dict) -> None:
        shown = self.job.on_report(report)
        self.progress.setRange(0, shown.maximum)
        self.progress.setValue(shown.value)
        if self.job.state == JobState.RUNNING:
            self.phase_label.setText(shown.text)
        self.eta_label.setText(shown.eta)
        self.curve.show_points(self.job.curve)
        if report.get("message"):
            self.log(f"[{self.job.phase}] {report['message']}")
        self.cancel_button.setEnabled(self.job.can_cancel)  # registering is atomic: too late then

    def _on_summary(self, summary: dict) -> None:
        if not self.job.on_summary(summary):
            return
        self.comparison.show_report(self.job.comparison)
        self.activate_anyway.setChecked(False)
        self.activate_anyway.setVisible(not self.comparison.recommended)
        self._update_activate()
        self.keep_button.setEnabled(True)
        self.tabs.setTabEnabled(1, True)
        self.tabs.setCurrentIndex(1)
        self.log(f"registered {self.job.version_id} (not active yet)")

    def _on_ended(self, code: int, cancelled: bool) -> None:
        outcome = self.job.finish(code, killed_by_user=cancelled)
        self._set_running(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if outcome == JobState.DONE else 0)
        self.phase_label.setText(self.job.status_text())
        self.eta_label.setText("")
        self.log(f"process ended ({outcome.value}, exit code {code})")
        self.form.remove_labels_file()
        self.runEnded.emit(outcome.value)

    def request_cancel(self) -> bool:
        """Ask, then terminate the process; True when it was asked to stop."""
        if not self.job.running or self.job.state == JobState.CANCELLING:
            return False
        answer = QMessageBox.question(self, "Cancel fine-tuning",
                                      "Stop the fine-tuning now? Nothing will be registered and the active "
                                      "model stays as it is.")
        if answer != QMessageBox.StandardButton.Yes:
            return False
        if not self.job.request_cancel():
            self.log("too late to cancel: the new version is being registered")
            return False
        self.phase_label.setText(self.job.status_text())
        self.cancel_button.setEnabled(False)
        self.proc.cancel()
        return True

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    # ----- the end -----------------------------------------------------------------------------
    def activate_new(self) -> None:
        if not self.job.version_id:
            return
        self.activate_button.setEnabled(False)
        self.keep_button.setEnabled(False)
        self.runner.start(engine.activate_version, self.job.version_id, on_done=self._activated,
                          on_error=self._activate_failed)

    def _update_activate(self) -> None:
        """Activate is offered when the comparison recommends it, or after the explicit override."""
        self.activate_button.setEnabled(bool(self.job.version_id) and
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
        self.log(f"kept the current model; {self.job.version_id} stays in Models ▸ Model versions")

    def _may_close(self) -> bool:
        """Closing while training asks to cancel it first (once)."""
        return not self.job.running or self.job.state == JobState.CANCELLING or self.request_cancel()

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
        self.form.remove_labels_file()
