"""Background work for the GUI: every load, discovery, inference and indexing job runs here,
never on the GUI thread (docs/method.md §3).

`TaskRunner` owns the jobs it starts so that closing the window can stop and join them all;
`LatestOnly` runs at most one job of a kind at a time and drops stale requests (latest wins),
which is what live sentence maps need while the user types.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class Task:
    """What `TaskRunner.start` returns: the handle of one job. `stop` (a threading.Event) asks
    a job that `wants_control` to stop early; the job's function polls it."""

    def __init__(self, key: int) -> None:
        self.key = key
        self.stop = threading.Event()


@dataclass
class _Callbacks:
    """The GUI side of one job; lives on the GUI thread only (the worker never holds it)."""

    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    on_progress: Callable[[Any], None] | None
    on_settled: Callable[[], None] | None


def _post(runner: weakref.ref, key: int, kind: str, value: Any) -> None:
    """Report to the runner from a worker. The worker holds the runner only weakly: a job that
    outlives its runner must not be the one to destroy it (off the GUI thread)."""
    live = runner()
    if live is None:
        return
    try:
        live._report.emit(key, kind, value)
    except RuntimeError:  # its C++ side is already deleted: nobody is left to tell
        pass


class _Job(QRunnable):
    """Runs `fn(*args, **kwargs)` on a pool thread and reports through the runner's one signal.

    Ownership is explicit so that no Qt object's life depends on Python's cyclic GC: the pool
    deletes the runnable after `run` (auto-delete), the job holds no QObject of its own and no
    GUI callback, and it drops the function and its arguments as soon as they ran, so a
    closed window's predictor or study is not kept alive by a finished job."""

    def __init__(self, runner: weakref.ref, task: Task, fn: Callable[..., Any], args: tuple,
                 kwargs: dict[str, Any]):
        super().__init__()
        self.setAutoDelete(True)
        self.runner, self.task = runner, task
        self.work: tuple[Callable[..., Any], tuple, dict[str, Any]] | None = (fn, args, kwargs)

    def run(self) -> None:
        key, report = self.task.key, partial(_post, self.runner)
        fn, args, kwargs = self.work
        self.work = None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI as a value
            if not self.task.stop.is_set():
                log.debug("task %s failed", getattr(fn, "__name__", fn), exc_info=True)
            report(key, "failed", exc)
        else:
            report(key, "finished", result)
        finally:
            del fn, args, kwargs
            report(key, "done", None)


class TaskRunner(QObject):
    """Starts jobs on the global QThreadPool and routes their reports to callbacks on the GUI
    thread; `shutdown` stops and joins them all (a closing window calls it).

    Every worker report travels through the one `_report` signal of the runner (a QObject of
    the GUI thread, so cross-thread emits are queued); the callbacks stay in `_jobs` on the
    GUI thread and are dropped there when the job is done."""

    busyChanged = Signal(int)
    _report = Signal(int, str, object)  # job key, "progress" | "finished" | "failed" | "done", value

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self._jobs: dict[int, tuple[Task, _Callbacks]] = {}
        self._keys = itertools.count(1)
        self._closed = False
        self._report.connect(self._deliver)

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
        """Run `fn(*args, **kwargs)` on the pool; with `wants_control` it also receives
        `progress` (a callable that forwards a report to `on_progress`) and `stop` (the
        returned task's threading.Event). None once the runner is shut down."""
        if self._closed:
            return None
        task = Task(next(self._keys))
        me = weakref.ref(self)
        if wants_control:
            kwargs.update(progress=partial(_post, me, task.key, "progress"), stop=task.stop)
        self._jobs[task.key] = (task, _Callbacks(on_done, on_error, on_progress, on_settled))
        self.busyChanged.emit(len(self._jobs))
        self.pool.start(_Job(me, task, fn, args, kwargs))
        return task

    def _deliver(self, key: int, kind: str, value: Any) -> None:
        entry = self._jobs.get(key)
        if entry is None:  # shut down meanwhile
            return
        callbacks = entry[1]
        if kind == "done":
            del self._jobs[key]
            self.busyChanged.emit(len(self._jobs))
            if callbacks.on_settled:
                callbacks.on_settled()
            return
        slot = {"progress": callbacks.on_progress, "finished": callbacks.on_done, "failed": callbacks.on_error}[kind]
        if slot:
            slot(value)

    @property
    def active(self) -> int:
        return len(self._jobs)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Ask every job to stop and wait for the pool; True when all threads are idle."""
        self._closed = True
        for task, _callbacks in list(self._jobs.values()):
            task.stop.set()
        ok = self.pool.waitForDone(timeout_ms)
        self._jobs.clear()
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
