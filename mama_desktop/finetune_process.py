"""The `mama finetune --json` child process in a QProcess: a crash cannot take the workstation
down and Cancel is a real kill. What the lines mean is `finetune_job`'s business; this module
only moves bytes and signals."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from . import engine
from .finetune_job import FinetuneRequest, JsonLines, classify, last_console_segment

log = logging.getLogger(__name__)

KILL_AFTER_MS = 5000  # after terminate(), a process that has not exited is killed


class FinetuneProcess(QObject):
    """The child process and its report stream."""

    report = Signal(dict)  # one FinetuneReport.to_json()
    summary = Signal(dict)  # the final summary line
    logLine = Signal(str)  # stderr and stdout lines that are not reports
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
        self.start_command(*request.command())

    def start_command(self, program: str, args: list[str]) -> None:
        self.cancelled = False
        self._stdout, self._stderr = JsonLines(), b""
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
            kind, payload = classify(item)
            {"summary": self.summary, "report": self.report, "log": self.logLine}[kind].emit(payload)

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
