"""Start-up, settings, missing model, shutdown without leaked threads, the command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool

from mama_desktop import engine
from mama_desktop.app import parse_args
from mama_desktop.main_window import MainWindow
from mama_desktop.settings import DesktopSettings, load_settings, save_settings, settings_path

from .conftest import open_and_wait

REPO = Path(__file__).resolve().parents[2]


def _live_threads() -> int:
    # Pool threads that ran Python code show up as _DummyThread entries that Python 3.11 never
    # removes; real leaks are Python-started threads and busy pool threads.
    return sum(1 for t in threading.enumerate() if not isinstance(t, threading._DummyThread))


def test_settings_round_trip_in_user_config_dir(user_dirs: Path) -> None:
    save_settings(DesktopSettings(model="/models/x", device="cpu", cache_dir="/tmp/c", sync_zoom=False))
    assert settings_path().parent == user_dirs / "user-config"
    got = load_settings()
    assert (got.model, got.device, got.cache_dir, got.sync_zoom) == ("/models/x", "cpu", "/tmp/c", False)


def test_bad_setting_value_falls_back_to_defaults() -> None:
    save_settings(DesktopSettings())
    from mama_desktop.settings import qsettings

    store = qsettings()
    store.setValue("general/device", "quantum")
    store.sync()
    assert load_settings().device == "auto"


def test_missing_model_is_a_notification_and_the_viewer_works(qtbot, window, studies_dir: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setenv("MAMA_RESOURCES", str(tmp_path / "resources-without-demo"))  # as before the demo is built
    assert not (engine.demo_model_dir() / "config.json").exists()
    window.load_model("demo", "cpu")
    qtbot.waitUntil(lambda: any("demo" in n.message for n in window.notes.history), timeout=30000)
    note = next(n for n in window.notes.history if "demo" in n.message)
    assert note.level == "warning" and note.details
    assert window.state.predictor is None
    open_and_wait(qtbot, window, studies_dir)
    assert all(window.hanging.panes[k].view is not None for k in ("RCC", "LCC", "RMLO", "LMLO"))
    assert "no model" in window.predictions.model_label.text()


def test_closing_stops_and_joins_every_worker(qtbot, studies_dir: Path, tiny_model_dir: Path) -> None:
    baseline = _live_threads()
    win = MainWindow(DesktopSettings())
    qtbot.addWidget(win)
    win.show()
    win.load_model(str(tiny_model_dir), "cpu")
    win.open_folder(studies_dir)
    win.sentence_maps.set_text("A mass is present in the breast.")
    qtbot.waitUntil(lambda: win.runner.active > 0, timeout=5000)
    win.close()  # while work is still in flight
    assert win.runner.active == 0
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert _live_threads() <= baseline
    assert not win.maps.timer.isActive()


def test_window_geometry_is_restored(qtbot) -> None:
    first = MainWindow(DesktopSettings())
    qtbot.addWidget(first)
    first.show()
    first.resize(760, 760)  # inside the offscreen screen, which restoreGeometry clamps to
    qtbot.wait(20)
    expected = first.size()
    first.close()
    second = MainWindow(DesktopSettings())
    qtbot.addWidget(second)
    assert second.size() == expected and expected.width() < 1500, "not the 1500x950 default"
    second.close()


def test_command_line_arguments() -> None:
    args = parse_args(["/data", "--model", "m", "--study", "1.2", "--query", "A mass.", "--screenshot", "x.png"])
    assert (args.folder, args.model, args.study, args.query, args.screenshot) == ("/data", "m", "1.2", "A mass.",
                                                                                Path("x.png"))
    assert parse_args(["--demo"]).demo


def _run_app(argv: list[str], env_dirs: Path, extra_env: dict[str, str] | None = None, timeout: int = 240):
    env = dict(os.environ)
    for name in ("CONFIG", "LOG", "CACHE", "DATA"):
        env[f"MAMA_{name}_DIR"] = str(env_dirs / f"user-{name.lower()}")
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "mama_desktop.app", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_screenshot_after_study_predictions_and_maps(user_dirs: Path, studies_dir: Path, tiny_model_dir: Path) -> None:
    out = user_dirs / "shot.png"
    uid = sorted(p for p in studies_dir.iterdir() if p.is_dir())[0]
    from mama_core.dicom import find_studies

    study = next(s for s in find_studies(studies_dir) if Path(s.images["RCC"]).parent == uid)
    proc = _run_app([str(studies_dir), "--model", str(tiny_model_dir), "--device", "cpu", "--study", study.uid,
                     "--query", "A mass is present in the breast.", "--screenshot", str(out)], user_dirs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = (user_dirs / "user-log" / "mama-desktop.log").read_text()
    assert "screenshot saved" in log and "not everything was ready" not in log


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (apt-get install xvfb)")
def test_real_window_under_xvfb(user_dirs: Path, studies_dir: Path) -> None:
    display = ":97"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1920x1080x24", "-nolisten", "tcp"])
    try:
        out = user_dirs / "xvfb.png"
        proc = _run_app([str(studies_dir), "--screenshot", str(out)], user_dirs,
                        {"QT_QPA_PLATFORM": "xcb", "DISPLAY": display})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert out.stat().st_size > 10_000
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def test_the_engine_is_frozen_for_the_collector_but_the_model_is_not(
        tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first load moves the engine's modules into the collector's permanent generation
    (gc.freeze), so full collections stop walking them under the GIL; the model itself must stay
    where the collector sees it, or a model caught in a reference cycle would never be freed
    after a model switch."""
    import gc

    monkeypatch.setattr(engine, "_frozen", False)  # as in a fresh app, whatever loaded before
    gc.unfreeze()
    try:
        first = engine.load_predictor(str(tiny_model_dir), "cpu")
        assert gc.get_freeze_count() > 10_000  # torch, transformers, peft, the engine
        second = engine.load_predictor(str(tiny_model_dir), "cpu")  # a switch freezes nothing more
        seen = {id(o) for o in gc.get_objects()}
        assert id(first.model) in seen and id(second.model) in seen
    finally:
        gc.unfreeze()
