"""`mama-desktop [FOLDER] [--demo] [--model M] [--study UID] [--query TEXT] [--screenshot FILE]`.

Sets up logging (a rotating file in user_log_dir()), the excepthook, the dark theme, and the
main window; `--screenshot` renders the window once the study, predictions and maps are
ready (or after a timeout), saves a PNG and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download weights (docs/method.md §7)

from PySide6.QtCore import QObject, QTimer, Signal  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from mama_core import paths  # noqa: E402
from mama_desktop import engine  # noqa: E402

log = logging.getLogger("mama_desktop")
SCREENSHOT_TIMEOUT_S = 180


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mama-desktop", description="MaMA reading workstation (research use only).")
    p.add_argument("folder", nargs="?", help="a folder of DICOM studies to open")
    p.add_argument("--demo", action="store_true", help="open generated demo studies with the demo model")
    p.add_argument("--model", help="'demo', 'active' or a model directory (overrides the setting)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), help="inference device (overrides the setting)")
    p.add_argument("--study", help="StudyInstanceUID to open after the folder is read")
    p.add_argument("--query", help="sentences for the live maps (and the search field)")
    p.add_argument("--screenshot", type=Path, help="save a PNG of the window when ready, then exit")
    p.add_argument("--timeout", type=float, default=SCREENSHOT_TIMEOUT_S, help="screenshot wait limit (s)")
    return p.parse_args(argv)


def setup_logging() -> Path:
    log_file = paths.user_log_dir() / "mama-desktop.log"
    handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    handler.addFilter(engine.redacting_log_filter())  # no patient names/IDs in the log file (docs/reliability.md)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        root.addHandler(handler)
    return log_file


class ScreenshotJob(QObject):
    """Waits (on the state's signals) until the study, its prediction and its maps are shown."""

    saved = Signal(str)

    def __init__(self, window, target: Path, timeout_s: float, expect_folder: bool = False):
        super().__init__(window)
        self.window, self.target = window, target
        # With a folder (or --demo, whose studies may still be generating) a screenshot
        # before the folder is open would show an empty window.
        self.expect_folder = expect_folder
        self.model_settled = False
        self.failed_parts: set[str] = set()
        self._done = False
        window.resize(1600, 1000)  # a fixed size: screenshots must not depend on saved geometry
        w, s = window, window.state
        s.predictorChanged.connect(self._model_settled)
        for signal in (s.viewsChanged, s.predictionChanged, s.mapsChanged, w.folders.discovered):
            signal.connect(self.check)
        w.studies.predictionFailed.connect(lambda _m: self._part_failed("prediction"))
        w.maps.failed.connect(lambda _m: self._part_failed("maps"))
        w.folders.busyChanged.connect(lambda _b: self.check())
        self.discovered = False
        w.folders.discovered.connect(self._discovered)
        QTimer.singleShot(int(timeout_s * 1000), self._timeout)

    def _discovered(self, _studies) -> None:
        self.discovered = True
        self.check()

    def _model_settled(self, _p) -> None:
        self.model_settled = True
        self.check()

    def _part_failed(self, part: str) -> None:
        self.failed_parts.add(part)
        self.check()

    def ready(self) -> bool:
        s = self.window.state
        if not self.model_settled:
            return False
        if s.study is None:  # nothing to show yet, unless there is no folder or it holds no study
            if s.folder is None:
                return not self.expect_folder
            return self.discovered and not s.studies
        if not s.views:
            return False
        if s.predictor is None:
            return True
        prediction_ok = s.prediction is not None or "prediction" in self.failed_parts
        maps_ok = not s.sentences or s.maps is not None or "maps" in self.failed_parts
        return prediction_ok and maps_ok

    def check(self, *_args) -> None:
        if not self._done and self.ready():
            self._done = True
            QTimer.singleShot(400, self.capture)  # let the last paint settle

    def _timeout(self) -> None:
        if not self._done:
            log.warning("screenshot: not everything was ready after the timeout; saving what is shown")
            self._done = True
            self.capture()

    def capture(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        ok = self.window.grab().save(str(self.target), "PNG")
        log.info("screenshot %s -> %s", "saved" if ok else "FAILED", self.target)
        self.saved.emit(str(self.target))
        self.window.close()
        QApplication.instance().exit(0 if ok else 1)


def start(window, args: argparse.Namespace) -> None:
    """Apply the command line to a shown window."""
    if args.query:
        window.sentence_maps.set_text(args.query)
        window.search.field.setText(args.query)
    if args.study:
        def pick(studies: list) -> None:
            if window.state.study_by_uid(args.study) is not None:
                window.open_study(args.study)
            else:
                window.notes.notify("warning", f"study {args.study} is not in this folder")
        window.folders.discovered.connect(pick)
    if args.demo:
        window.open_demo()
        return
    window.load_model(args.model, args.device)
    folder = args.folder or None
    if folder:
        window.open_folder(folder)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_file = setup_logging()
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MaMA Workstation")
    from .main_window import MainWindow
    from .notifications import install_excepthook
    from .settings import apply_cache_dir, load_settings
    from .theme import apply_dark_theme

    apply_dark_theme(app)
    icon = paths.resources_dir() / "icons" / "mama-desktop.svg"
    if icon.exists():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    settings = load_settings()
    if args.model:
        settings.model = args.model
    if args.device:
        settings.device = args.device
    apply_cache_dir(settings)
    window = MainWindow(settings)
    install_excepthook(window.notes)
    log.info("mama-desktop started; log file %s", log_file)
    if args.screenshot:
        ScreenshotJob(window, args.screenshot.resolve(), args.timeout, expect_folder=bool(args.demo or args.folder))
    window.show()
    # What start-up built (modules, the window and its panels) lives until exit: frozen, it is
    # never scanned again, so every later cyclic collection is short (docs/architecture.md).
    # Before start(): that begins loading the model, and a frozen model would never be freed
    # after a model switch (the engine freezes its own modules at the first load, likewise).
    gc.freeze()
    start(window, args)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
