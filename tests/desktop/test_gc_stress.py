"""Windows opened and closed with Python's cyclic GC running, work in flight (docs/architecture.md,
"Object lifetimes and the garbage collector").

A C++ destructor run from a cyclic collection runs on whichever thread allocated at that
moment, and Shiboken releases the GIL around it; a Qt object destroyed there can deadlock
against a worker (a full run once hung in pyqtgraph's ViewBox.addItem during a collection;
the hang was never reproduced, these tests included). The desktop's
rule is that no Qt object it creates depends on the cyclic GC to be destroyed: these tests
check the rule directly (a collection frees no Qt object) and under load (many windows, GC
thresholds lowered so that collections also fire on pool threads, a watchdog that dumps every
thread's stack and fails instead of hanging)."""

from __future__ import annotations

import faulthandler
import gc
import random
import sys
import threading
import weakref
from collections import Counter
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QThreadPool

from mama_desktop import engine
from mama_desktop.main_window import MainWindow
from mama_desktop.settings import DesktopSettings

SENTENCE = "A mass is present in the breast."
WATCHDOG_S = 120  # per window, far above a healthy one; a deadlock dumps all stacks and ends the run


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path):
    """One loaded model shared by every window (loading it is not what is under test)."""
    return engine.load_predictor(str(tiny_model_dir), "cpu")


@pytest.fixture
def aggressive_gc():
    """Automatic GC on, with low thresholds: collections start on whichever thread allocates,
    GUI or pool, many times per window. Yields the count of collections by thread kind."""
    was_enabled, thresholds = gc.isenabled(), gc.get_threshold()
    counts: Counter = Counter()
    gui = threading.main_thread().ident

    def count(phase: str, _info: dict) -> None:
        if phase == "start":
            counts["GUI thread" if threading.get_ident() == gui else "other threads"] += 1

    gc.callbacks.append(count)
    gc.enable()
    gc.set_threshold(200, 5, 5)
    try:
        yield counts
    finally:
        faulthandler.cancel_dump_traceback_later()
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
        if not was_enabled:
            gc.disable()


def qt_objects_freed_by_gc() -> Counter:
    """Qt wrappers that one full cyclic collection frees, by type (empty when the rule holds)."""
    tracked = [(weakref.ref(o), type(o).__qualname__) for o in gc.get_objects()
               if issubclass(type(o), shiboken6.Shiboken.Object)]
    gc.collect()
    return Counter(name for ref, name in tracked if ref() is None)


def open_window(qtbot, predictor, folder: Path) -> MainWindow:
    win = MainWindow(DesktopSettings())
    win.show()
    win.state.set_predictor(predictor)
    win.sentence_maps.set_text(SENTENCE)
    win.open_folder(folder)
    return win


def close_window(qtbot, win: MainWindow) -> weakref.ref:
    win.close()
    win.deleteLater()
    return weakref.ref(win)


def test_a_finished_job_keeps_nothing_alive(qtbot) -> None:
    """The job, its function's closure and its callbacks go by reference counting once it is
    done (no collection allowed): nothing of a closed window's work stays behind."""
    from mama_desktop.workers import TaskRunner

    class Payload:
        pass

    runner = TaskRunner()
    payload, settled = Payload(), []
    refs = [weakref.ref(payload)]
    task = runner.start(lambda p=payload: p, on_done=lambda value, p=payload: None,
                        on_settled=lambda: settled.append(threading.current_thread()))
    refs.append(weakref.ref(task))
    del payload, task
    gc.disable()
    try:
        qtbot.waitUntil(lambda: bool(settled) and all(ref() is None for ref in refs), timeout=5000)
    finally:
        gc.enable()
    assert settled == [threading.main_thread()], "callbacks run on the GUI thread"
    assert runner.shutdown(5000)


@pytest.fixture
def no_automatic_gc():
    """Only explicit collections: whatever the session leaves to the collector is still there
    when the test looks for it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_cyclic_collection_frees_no_qt_object(qtbot, predictor, studies_dir: Path, no_automatic_gc) -> None:
    """After a full reading session (discovery, views, prediction, maps, a second study, the
    outlines and the magnifier), neither the open window nor the closed one leaves a Qt object
    for the collector: the closed window goes by reference counting alone."""
    win = open_window(qtbot, predictor, studies_dir)
    qtbot.waitUntil(lambda: win.state.maps is not None and len(win.state.views) == 4, timeout=60000)
    first = win.state.study.uid
    win.hanging.set_outlines(True)
    win.hanging.set_magnifier(True)
    win.worklist.step(+1)
    qtbot.waitUntil(lambda: win.state.study.uid != first and len(win.state.views) == 4
                    and win.state.maps is not None, timeout=60000)
    assert qt_objects_freed_by_gc() == Counter(), "open window"
    ref = close_window(qtbot, win)
    del win
    qtbot.waitUntil(lambda: ref() is None, timeout=10000)
    assert qt_objects_freed_by_gc() == Counter(), "closed window"


@pytest.mark.parametrize("windows", [pytest.param(200, marks=pytest.mark.slow), 4])
def test_windows_open_and_close_with_gc_running_and_work_in_flight(qtbot, predictor, studies_dir: Path,
                                                                  aggressive_gc, windows: int) -> None:
    """Each window opens the folder with a model and a sentence (discovery, view loading,
    prediction and maps in workers) and is closed after a random delay: before anything
    started, mid-work or once idle; the last one once its maps are shown. Every tenth window a
    full collection runs on this thread."""
    rng = random.Random(13)
    closed: list[weakref.ref] = []
    shown = 0
    for i in range(windows):
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=sys.stderr)  # re-armed per window
        win = open_window(qtbot, predictor, studies_dir)
        if i == windows - 1:  # the last one goes the whole way: study shown, predicted, mapped
            qtbot.waitUntil(lambda: len(win.state.views) == 4 and win.state.maps is not None, timeout=60000)
        else:
            qtbot.wait(rng.choice([0, 5, 20, 60, 150, 400]))
        shown += len(win.state.views) == 4
        closed.append(close_window(qtbot, win))
        assert win.runner.active == 0, "closing joined every job"
        del win
        if i % 10 == 9:
            qtbot.wait(10)  # deferred deletes
            gc.collect()
    qtbot.waitUntil(lambda: all(ref() is None for ref in closed), timeout=20000)
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    print(f"{windows} windows, {shown} showed the study before closing; collections: {dict(aggressive_gc)}")
    assert qt_objects_freed_by_gc() == Counter()


def test_dialogs_opened_again_and_again_do_not_accumulate(qtbot, window, monkeypatch) -> None:
    from mama_desktop.help import HelpDialog
    from mama_desktop.settings import SettingsDialog

    monkeypatch.setattr(SettingsDialog, "exec", lambda self: 0)  # the reader cancels
    for _ in range(3):
        window.edit_settings()
        window.show_help()
        for dialog in window.findChildren(HelpDialog):
            dialog.close()
    qtbot.waitUntil(lambda: not window.findChildren(SettingsDialog) and not window.findChildren(HelpDialog),
                    timeout=5000)
