"""Non-blocking notifications: a bar above the images with a message, Details and Dismiss.

Errors (a corrupt file, a missing model, an unexpected exception) land here instead of a
modal dialog or a crash. `install_excepthook` routes uncaught exceptions from any thread to
the log file and to this bar.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from dataclasses import dataclass
from types import TracebackType

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

log = logging.getLogger(__name__)

LEVEL_COLOURS = {"info": "#2d5f8a", "warning": "#8a6d1f", "error": "#8a2d2d"}


@dataclass
class Notice:
    level: str  # 'info' | 'warning' | 'error'
    message: str
    details: str = ""


class NotificationBar(QFrame):
    """Shows one notice at a time; further notices queue behind it (the count is shown)."""

    shown = Signal(object)  # Notice, for tests and the log

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("NotificationBar")
        self.history: list[Notice] = []
        self._queue: list[Notice] = []
        self._current: Notice | None = None
        self._label = QLabel(wordWrap=True)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._more = QLabel()
        self._details = QPushButton("Details…")
        self._dismiss = QPushButton("Dismiss")
        self._details.clicked.connect(self._show_details)
        self._dismiss.clicked.connect(self.next)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 6, 4)
        for w in (self._label, self._more, self._details, self._dismiss):
            row.addWidget(w, 1 if w is self._label else 0)
        self._timer = QTimer(self, singleShot=True, timeout=self.next)
        self.hide()

    def notify(self, level: str, message: str, details: str = "") -> None:
        notice = Notice(level, message, details)
        self.history.append(notice)
        log.log(logging.ERROR if level == "error" else logging.INFO, "%s: %s", level, message)
        self._queue.append(notice)
        if self._current is None:
            self.next()
        self._update_count()
        self.shown.emit(notice)

    def next(self) -> None:
        self._timer.stop()
        self._current = self._queue.pop(0) if self._queue else None
        if self._current is None:
            self.hide()
            return
        n = self._current
        self._label.setText(n.message)
        self._details.setVisible(bool(n.details))
        self.setStyleSheet(f"#NotificationBar {{ background: {LEVEL_COLOURS.get(n.level, '#444')}; }}")
        self._update_count()
        self.show()
        if n.level == "info":  # information fades; warnings and errors wait for the user
            self._timer.start(6000)

    def _update_count(self) -> None:
        self._more.setText(f"+{len(self._queue)} more" if self._queue else "")

    def _show_details(self) -> None:
        if self._current is None:
            return
        box = QMessageBox(QMessageBox.Icon.Information, "Details", self._current.message, parent=self)
        box.setDetailedText(self._current.details)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    @property
    def current(self) -> Notice | None:
        return self._current


class _ExceptionRelay(QObject):
    """Carries an exception report from any thread to the GUI thread."""

    raised = Signal(str, str)


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def install_excepthook(bar: NotificationBar) -> _ExceptionRelay:
    """Log every uncaught exception and show it in `bar`; the application keeps running."""
    relay = _ExceptionRelay(bar)
    relay.raised.connect(lambda msg, details: bar.notify("error", msg, details))

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        details = "".join(traceback.format_exception(kind, exc, tb))
        log.error("uncaught exception\n%s", details)
        relay.raised.emit(f"Unexpected error: {exc}", details)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            hook(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook
    return relay
