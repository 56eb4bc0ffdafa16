"""PACS source: search a node, retrieve a study (with priors) into the local cache, send the
current study's results back as DICOM (docs/pacs.md).

Every network call and every report written runs in a worker (`TaskRunner`); the panel only
shows progress and results, so the event loop never waits on a server. A refusal or a
failure is a notice naming the stage that failed (DNS, refused, association, auth, TLS).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QProcess, QProcessEnvironment, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
    QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from . import engine
from .workers import Task, TaskRunner

COLUMNS = ("Date", "Patient", "Accession", "Modalities", "Images", "Study UID")
Notify = Callable[[str, str, str], None]  # (level, message, details)


# ---- worker bodies (run on pool threads; no Qt here) ------------------------------------------
def report_command(folder: Path, study_uid: str, model_dir: Path, device: str, sentences: list[str],
                   out: Path) -> tuple[str, list[str]]:
    """(program, arguments) of the `mama report` child that writes the results.

    A child process and not a worker thread: highdicom parses its DICOM standard tables with
    one long C call on first use that holds the GIL for up to seconds, which would freeze the
    event loop however the work is threaded."""
    args = ["-m", "mama_core.cli", "report", str(folder), "--study-uid", study_uid, "--out", str(out),
            "--model", str(model_dir), "--device", device, "--json"]
    if sentences:
        args += ["--maps", *sentences]
    return sys.executable, args


class SendPreview(QDialog):
    """What will be sent, to which server, before anything leaves the machine."""

    def __init__(self, server: str, lines: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Send results to {server}")
        text = QPlainTextEdit("\n".join(lines))
        text.setReadOnly(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.send_button = buttons.addButton("Send", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"These DICOM objects will be stored on <b>{server}</b> "
                                "(research use only — not for diagnosis):"))
        layout.addWidget(text, 1)
        layout.addWidget(buttons)
        self.text = text


class PacsPanel(QWidget):
    """Search fields, a results table, retrieve with progress and cancel, send results."""

    studyRetrieved = Signal(object)  # mama_core.pacs.StudyRetrieval (its .folder holds the study)
    searchDone = Signal(list)
    sendDone = Signal(object)  # the store result dict, or the exception when refused
    statusChanged = Signal(str)

    def __init__(self, runner: TaskRunner, state: Any = None, notify: Notify | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.runner, self.state = runner, state
        self._notify = notify
        self.studies: list = []
        self._retrieval: Task | None = None
        self.preview: SendPreview | None = None
        self._pending_files: list[Path] = []
        self._build()
        self.reload_nodes()

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.server = QComboBox()
        self.test_button = QPushButton("Test connection")
        self.patient, self.date, self.accession = QLineEdit(), QLineEdit(), QLineEdit()
        self.date.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.modality = QLineEdit("MG")
        self.search_button = QPushButton("Search")
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.server, 1)
        row.addWidget(self.test_button)
        form.addRow("Server", row)
        for label, field in (("Patient ID", self.patient), ("Date", self.date), ("Accession", self.accession),
                             ("Modality", self.modality)):
            form.addRow(label, field)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.priors = QCheckBox("with priors")
        self.retrieve_button, self.cancel_button = QPushButton("Retrieve"), QPushButton("Cancel")
        self.send_button = QPushButton("Send results…")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        actions = QHBoxLayout()
        for w in (self.priors, self.retrieve_button, self.cancel_button, self.send_button):
            actions.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.search_button)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.search_button.clicked.connect(self.search)
        self.test_button.clicked.connect(self.test_connection)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button.clicked.connect(self.cancel)
        self.send_button.clicked.connect(self.prepare_send)
        self.table.doubleClicked.connect(lambda _i: self.retrieve())

    def reload_nodes(self) -> None:
        """Fill the server list from the PACS settings (`mama pacs add`)."""
        try:
            settings = engine.pacs_settings()
        except Exception as exc:  # noqa: BLE001 - a broken settings file is a notice
            self._fail(exc)
            return
        self._nodes = dict(settings.nodes)
        self.server.clear()
        self.server.addItems(sorted(self._nodes))
        self.priors.setChecked(settings.auto_priors)
        if not self._nodes:
            self._say("No PACS configured: add one with `mama pacs add` (docs/pacs.md).")

    # ---- helpers -------------------------------------------------------------------------------
    def node(self) -> Any:
        return self._nodes.get(self.server.currentText())

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.statusChanged.emit(text)

    def _fail(self, exc: BaseException, what: str = "") -> None:
        message = f"{what}{exc}"  # a PacsError already names the node and the stage that failed
        self.status.setStyleSheet("color: #c0392b;")
        self._say(message)
        if self._notify is not None:
            self._notify("error", message, "")

    def _ok(self, text: str) -> None:
        self.status.setStyleSheet("")
        self._say(text)

    def _need_node(self) -> Any:
        node = self.node()
        if node is None:
            self._say("Choose a server first.")
        return node

    # ---- search / test ---------------------------------------------------------------------------
    def search(self) -> None:
        node = self._need_node()
        if node is None:
            return
        self._ok(f"Searching {node.name}…")
        self.search_button.setEnabled(False)
        self.runner.start(engine.pacs_find, node, self.patient.text().strip(), self.date.text().strip(),
                          self.accession.text().strip(), self.modality.text().strip(),
                          on_done=self._show_results, on_error=lambda e: self._fail(e, "Search failed: "),
                          on_settled=lambda: self.search_button.setEnabled(True))

    def _show_results(self, studies: list) -> None:
        self.studies = list(studies)
        self.table.setRowCount(len(self.studies))
        for r, s in enumerate(self.studies):
            cells = (s.date or "", s.patient_id or "", s.accession or "", "/".join(s.modalities),
                     "" if s.n_images is None else str(s.n_images), s.study_uid)
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        if self.studies:
            self.table.selectRow(0)
        self._ok(f"{len(self.studies)} studies found.")
        self.searchDone.emit(self.studies)

    def test_connection(self) -> None:
        node = self._need_node()
        if node is not None:
            self._ok(f"Testing {node.name}…")
            self.runner.start(engine.pacs_check, node, on_done=self._show_check, on_error=self._fail)

    def _show_check(self, report: Any) -> None:
        if report.ok:
            self._ok(f"{report.node}: OK — {report.message}")
        else:
            self._fail(RuntimeError(f"{report.node}: failed at {report.stage}: {report.message}"))

    # ---- retrieve ---------------------------------------------------------------------------------
    def selected_study(self) -> Any:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.studies[rows[0].row()] if rows else None

    def retrieve(self) -> None:
        node, study = self._need_node(), self.selected_study()
        if node is None or study is None or self._retrieval is not None:
            return
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.retrieve_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._ok(f"Retrieving {study.study_uid}…")
        self._retrieval = self.runner.start(
            engine.pacs_retrieve, node, study.study_uid, self.priors.isChecked(), wants_control=True,
            on_progress=self._show_progress, on_done=self._retrieved,
            on_error=lambda e: self._fail(e, "Retrieve failed (files already fetched are kept; retrieve again "
                                             "to resume): "),
            on_settled=self._retrieve_settled)

    def _show_progress(self, report: Any) -> None:
        self.progress.setRange(0, max(report.total, 1))
        self.progress.setValue(report.done)
        self._ok(f"{report.study_uid[-12:]}: {report.done}/{report.total} "
                 f"({report.fetched} fetched, {report.already_local} already local)")

    def _retrieved(self, result: Any) -> None:
        if result.cancelled:
            self._ok("Retrieve cancelled; files fetched so far are kept (retrieve again to resume).")
            return
        priors = f" and {len(result.priors)} prior(s)" if result.priors else ""
        self._ok(f"Retrieved study{priors} into {result.folder}")
        self.studyRetrieved.emit(result)

    def _retrieve_settled(self) -> None:
        self._retrieval = None
        self.progress.setVisible(False)
        self.retrieve_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def cancel(self) -> None:
        if self._retrieval is not None:
            self._retrieval.stop.set()
            self._ok("Cancelling after the current file…")

    # ---- send results -------------------------------------------------------------------------------
    def prepare_send(self) -> None:
        """Write the current study's results (worker), then show what would be sent."""
        node = self._need_node()
        state = self.state
        if node is None:
            return
        if state is None or getattr(state, "study", None) is None or getattr(state, "predictor", None) is None:
            self._say("Open a study and load a model first: results are computed for the current study.")
            return
        folder = getattr(state, "folder", None) or next(iter(state.study.images.values())).parent
        out = Path(tempfile.mkdtemp(prefix="mama-results-"))
        program, args = report_command(Path(folder), state.study.uid, state.predictor.model_dir,
                                       state.predictor.device.type, list(getattr(state, "sentences", []) or []), out)
        self.send_button.setEnabled(False)
        self._ok("Preparing results (model predictions and maps, in a separate process)…")
        self._report_process = process = QProcess(self)
        process.setProcessEnvironment(self._child_environment())
        process.finished.connect(lambda code, _status: self._report_written(node, process, code))
        process.errorOccurred.connect(lambda err: self._report_written(node, process, -1)
                                      if err == QProcess.ProcessError.FailedToStart else None)
        process.start(program, args)

    @staticmethod
    def _child_environment() -> QProcessEnvironment:
        from .engine import child_environment

        env = QProcessEnvironment.systemEnvironment()
        for key, value in child_environment().items():
            env.insert(key, value)
        return env

    @staticmethod
    def _child_result(process: QProcess, code: int) -> dict | str:
        """A `mama ... --json` child's last JSON line, or the reason it failed in words."""
        out = bytes(process.readAllStandardOutput()).decode("utf-8", "replace").strip().splitlines()
        err = bytes(process.readAllStandardError()).decode("utf-8", "replace").strip().splitlines()
        try:
            result = json.loads(out[-1]) if code == 0 and out else None
        except ValueError:
            result = None
        if isinstance(result, dict):
            return result
        return next((line for line in reversed(err) if line.startswith("mama ")), err[-1] if err else f"exit {code}")

    def _report_written(self, node: Any, process: QProcess, code: int) -> None:
        self.send_button.setEnabled(True)
        result = self._child_result(process, code)
        if not isinstance(result, dict):
            self._fail(RuntimeError(result), "Could not prepare the results: ")
            return
        self.runner.start(engine.describe_report, result, on_done=lambda r: self._show_preview(node, *r),
                          on_error=lambda e: self._fail(e, "Could not read the results: "))

    def _show_preview(self, node: Any, files: list[Path], lines: list[str]) -> None:
        self._pending_files = list(files)
        self.preview = SendPreview(node.name, lines, self)
        self.preview.accepted.connect(lambda: self.send(node))
        self.preview.open()  # window-modal, never a nested event loop
        self._ok(f"{len(self._pending_files)} objects ready to send to {node.name}.")

    def send(self, node: Any = None) -> None:
        node = node or self._need_node()
        if node is None or not self._pending_files:
            return
        self._ok(f"Sending {len(self._pending_files)} objects to {node.name}…")
        # A `mama pacs store` child, like the report: parsing the result files (the SR's
        # thousands of content items) in a worker thread held the GIL for a third of a second.
        self._store_process = process = QProcess(self)
        process.setProcessEnvironment(self._child_environment())
        process.finished.connect(lambda code, _status: self._stored(node, process, code))
        process.errorOccurred.connect(lambda err: self._stored(node, process, -1)
                                      if err == QProcess.ProcessError.FailedToStart else None)
        process.start(sys.executable, ["-m", "mama_core.cli", "pacs", "store", "--server", node.name, "--json",
                                       *map(str, self._pending_files)])

    def _stored(self, node: Any, process: QProcess, code: int) -> None:
        result = self._child_result(process, code)
        if isinstance(result, dict):
            self._sent(result)
        else:
            self._refused(node, RuntimeError(result))

    def _sent(self, result: dict) -> None:
        self._ok(f"{result['server']} stored {len(result['stored'])} objects.")
        self.sendDone.emit(result)

    def _refused(self, node: Any, exc: BaseException) -> None:
        self._fail(exc, f"{node.name} did not accept the results: ")
        self.sendDone.emit(exc)
