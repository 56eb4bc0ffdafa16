"""Background work for the GUI: every load, discovery, inference and indexing job runs here,
never on the GUI thread (docs/method.md §3).

`TaskRunner` owns the jobs it starts so that closing the window can stop and join them all;
`LatestOnly` runs at most one job of a kind at a time and drops stale requests (latest wins),
which is what live sentence maps need while the user types.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class TaskSignals(QObject):
    """Signals of one task. Created on the GUI thread, so emits from the worker are queued."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    done = Signal()  # after finished/failed, whatever happened


class Task(QRunnable):
    """Runs `fn(*args, progress=..., stop=..., **kwargs)` on a pool thread.

    `fn` receives the keyword arguments `progress` (a callable that forwards a report to the
    GUI) and `stop` (a threading.Event) only when `wants_control` is true.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, wants_control: bool = False, **kwargs: Any):
        super().__init__()
        self.setAutoDelete(False)  # the runner keeps the Python object alive until `done`
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.wants_control = wants_control
        self.stop = threading.Event()
        self.signals = TaskSignals()

    def run(self) -> None:
        try:
            kwargs = dict(self.kwargs)
            if self.wants_control:
                kwargs.update(progress=self.signals.progress.emit, stop=self.stop)
            result = self.fn(*self.args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI as a value
            if not self.stop.is_set():
                log.debug("task %s failed", getattr(self.fn, "__name__", self.fn), exc_info=True)
            self.signals.failed.emit(exc)
        else:
            self.signals.finished.emit(result)
        finally:
            self.signals.done.emit()


class TaskRunner(QObject):
    """Starts tasks on the global QThreadPool and remembers them until they are done."""

    busyChanged = Signal(int)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self._tasks: set[Task] = set()
        self._closed = False

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_settled: Callable[[], None] | None = None,
        wants_control: bool = False,
        **kwargs: Any,
    ) -> Task | None:
        """Run `fn` on the pool. Callbacks are connected before the task starts, since a
        queued signal only reaches the slots connected when it was emitted."""
        if self._closed:
            return None
        task = Task(fn, *args, wants_control=wants_control, **kwargs)
        if on_done:
            task.signals.finished.connect(on_done)
        if on_error:
            task.signals.failed.connect(on_error)
        if on_progress:
            task.signals.progress.connect(on_progress)
        if on_settled:
            task.signals.done.connect(on_settled)
        task.signals.done.connect(lambda t=task: self._forget(t))
        self._tasks.add(task)
        self.busyChanged.emit(len(self._tasks))
        self.pool.start(task)
        return task

    def _forget(self, task: Task) -> None:
        self._tasks.discard(task)
        self.busyChanged.emit(len(self._tasks))

    @property
    def active(self) -> int:
        return len(self._tasks)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Ask every task to stop and wait for the pool; True when all threads are idle."""
        self._closed = True
        for task in list(self._tasks):
            task.stop.set()
        ok = self.pool.waitForDone(timeout_ms)
        self._tasks.clear()
        return ok


class LatestOnly(QObject):
    """One job at a time; while it runs only the newest pending request is kept.

    Each request gets a number from a counter; a result is delivered only when it answers the
    newest request, so a slow answer to an old sentence never overwrites a newer one.
    """

    result = Signal(int, object)  # request id, value
    error = Signal(int, object)
    busyChanged = Signal(bool)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self.counter = 0
        self._running: Task | None = None
        self._pending: tuple[int, Callable[[], Any]] | None = None

    def submit(self, fn: Callable[[], Any]) -> int:
        self.counter += 1
        self._pending = (self.counter, fn)
        if self._running is None:
            self._launch()
        return self.counter

    def cancel(self) -> None:
        """Forget pending work and ignore whatever is running."""
        self.counter += 1
        self._pending = None

    def _launch(self) -> None:
        if self._pending is None:
            self.busyChanged.emit(False)
            return
        request, fn = self._pending
        self._pending = None
        task = self.runner.start(
            fn,
            on_done=lambda value, r=request: self._deliver(r, value, self.result),
            on_error=lambda exc, r=request: self._deliver(r, exc, self.error),
            on_settled=self._finished,
        )
        self._running = task
        if task is not None:
            self.busyChanged.emit(True)

    def _deliver(self, request: int, value: Any, signal: Signal) -> None:
        if request == self.counter:  # stale answers are dropped
            signal.emit(request, value)

    def _finished(self) -> None:
        self._running = None
        self._launch()

    @property
    def busy(self) -> bool:
        return self._running is not None
