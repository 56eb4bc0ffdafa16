"""The main window composes the panels and wires them to the state and the controllers.

It owns no reading state itself (that is `AppState`) and does no work (that is the
controllers, in workers); it builds widgets, menus and shortcuts, and routes signals.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QVBoxLayout, QWidget

from . import engine
from .controllers import FolderController, ModelController, StudyController, describe_error
from .finetune_dialog import FinetuneDialog
from .hanging import WINDOW_PRESETS, HangingProtocol
from .help import HelpDialog
from .image_strip import ImageStrip
from .models_page import ModelsPage
from .notifications import NotificationBar
from .predictions import PredictionsPanel
from .search import SearchController, SearchPanel
from .sentence_maps import MapsController, SentenceMapsPanel
from .settings import DesktopSettings, SettingsDialog, apply_cache_dir, load_geometry, save_geometry, save_settings
from .state import AppState
from .tags import TagPanel
from .workers import TaskRunner
from .worklist import WorklistPanel

log = logging.getLogger(__name__)
NOTICE = "Research use only — not for diagnosis"


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, settings: DesktopSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        engine.preload_gil_heavy_modules()  # before the event loop runs: their import cannot be hidden on a worker
        self.settings = settings or DesktopSettings()
        self.setWindowTitle("MaMA Workstation — " + NOTICE)
        self.setAcceptDrops(True)
        self.state = AppState(self)
        self.runner = TaskRunner(self)
        self.notes = NotificationBar()
        self.hanging = HangingProtocol(self.state)
        self._build_controllers()
        self._build_panels()
        self._build_central()
        self._build_status_bar()
        self._build_actions()
        self._wire()
        self._pending_focus: str | None = None
        self._reopen: str | None = None  # study to reopen after a rescan (manual placement)
        self.finetune_dialog: FinetuneDialog | None = None
        self.models_page: ModelsPage | None = None
        self.resize(1500, 950)
        self._restore_geometry()

    # ----- construction ----------------------------------------------------------------------
    def _build_controllers(self) -> None:
        s, r, n = self.state, self.runner, self.notes
        self.folders = FolderController(s, r, n, self)
        self.studies = StudyController(s, r, n, self)
        self.models = ModelController(s, r, n, self)
        self.maps = MapsController(s, r, self)
        self.searcher = SearchController(s, r, self)

    def _build_panels(self) -> None:
        self.worklist = WorklistPanel(self.state)
        self.predictions = PredictionsPanel(self.state)
        self.sentence_maps = SentenceMapsPanel(self.state, self.maps)
        self.search = SearchPanel(self.state, self.searcher)
        self.tags = TagPanel(self.state)
        self.docks: dict[str, QDockWidget] = {}
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        for title, widget, area in (("Studies", self.worklist, left), ("Search", self.search, left),
                                    ("Predictions", self.predictions, right),
                                    ("Sentence maps", self.sentence_maps, right), ("DICOM tags", self.tags, right)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{title}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[title] = dock
        self.tabifyDockWidget(self.docks["Predictions"], self.docks["DICOM tags"])
        self.docks["Predictions"].raise_()
        self.resizeDocks([self.docks["Studies"], self.docks["Predictions"]], [380, 380], Qt.Orientation.Horizontal)

    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notes)
        layout.addWidget(self.hanging, 1)
        self.strip = ImageStrip(self.state)
        layout.addWidget(self.strip)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        self.hover_label = QLabel("")
        self.busy_label = QLabel("")
        self.busy_label.setObjectName("Muted")
        notice = QLabel(NOTICE)
        notice.setObjectName("Notice")
        bar = self.statusBar()
        bar.addWidget(self.hover_label, 1)
        bar.addPermanentWidget(self.busy_label)
        bar.addPermanentWidget(notice)
        self.notice_label = notice

    def _action(self, menu: Any, text: str, slot: Any, keys: list[str] | None = None, checkable: bool = False,
                checked: bool = False) -> QAction:
        action = QAction(text, self, checkable=checkable)
        if checkable:
            action.setChecked(checked)
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _=False: slot())
        if keys:
            action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        menu.addAction(action)
        self.addAction(action)  # shortcuts work while the menu bar is hidden too
        self.shortcut_actions.append(action)
        return action

    def _build_actions(self) -> None:
        self.shortcut_actions: list[QAction] = []
        bar = self.menuBar()
        f = bar.addMenu("&File")
        self._action(f, "&Open folder…", self.choose_folder, ["Ctrl+O"])
        self._action(f, "Open &demo studies", self.open_demo, ["Ctrl+D"])
        self._action(f, "&PACS…", self.show_pacs, ["Ctrl+Shift+P"])
        self._action(f, "&Settings…", self.edit_settings, ["Ctrl+,"])
        f.addSeparator()
        self._action(f, "&Quit", self.close, ["Ctrl+Q"])
        st = bar.addMenu("&Study")
        self._action(st, "&Next study", lambda: self.worklist.step(+1), ["N", "PgDown"])
        self._action(st, "&Previous study", lambda: self.worklist.step(-1), ["P", "PgUp"])
        v = bar.addMenu("&View")
        h = self.hanging
        self._action(v, "&Fit to window", h.fit, ["F"])
        self._action(v, "&Reset view", h.reset, ["R"])
        self._action(v, "Zoom &in", lambda: h.zoom(1.25), ["+", "="])
        self._action(v, "Zoom &out", lambda: h.zoom(0.8), ["-"])
        self._action(v, "All four &views", h.restore, ["Esc"])
        self._action(v, "&Current vs prior / four views", self.toggle_layout, ["C"])
        v.addSeparator()
        self.invert_action = self._action(v, "&Invert", h.set_invert, ["I"], checkable=True)
        self.magnifier_action = self._action(v, "&Magnifier (3x)", h.set_magnifier, ["M"], checkable=True)
        self.sync_action = self._action(v, "&Synchronise zoom/pan", self._set_sync, ["S"], checkable=True,
                                        checked=self.settings.sync_zoom)
        self.outlines_action = self._action(v, "Annotated lesion &outlines (ground truth)", h.set_outlines, ["O"],
                                            checkable=True)
        self.maps_action = self._action(v, "Show &heat maps", self.sentence_maps.show_maps.setChecked, ["H"],
                                        checkable=True, checked=True)
        v.addSeparator()
        self._action(v, "Next &window preset", h.cycle_preset, ["W"])
        for i, name in enumerate(WINDOW_PRESETS, 1):
            self._action(v, f"Window: {name}", lambda n=name: h.set_preset(n), [str(i)])
        v.addSeparator()
        self._action(v, "F&ull screen", self._toggle_full_screen, ["F11"])
        mm = bar.addMenu("&Models")
        self._action(mm, "&Fine-tune on local cases…", self.show_finetune, ["Ctrl+Shift+F"])
        self._action(mm, "Model &versions…", self.show_models, ["Ctrl+Shift+M"])
        docks = bar.addMenu("&Panels")
        for dock in self.docks.values():
            docks.addAction(dock.toggleViewAction())
        hm = bar.addMenu("&Help")
        self._action(hm, "&Keyboard shortcuts", self.show_help, ["F1"])
        hanging_sync = self.settings.sync_zoom
        h.set_sync(hanging_sync)

    def _wire(self) -> None:
        self.worklist.studyActivated.connect(self.open_study)
        self.folders.busyChanged.connect(self.worklist.set_busy)
        self.folders.discovered.connect(self._after_discovery)
        self.hanging.hoverText.connect(self.hover_label.setText)
        self.hanging.hoveredView.connect(self.tags.show_view)
        self.sentence_maps.displayChanged.connect(self._show_maps)
        self.sentence_maps.show_maps.toggled.connect(self.maps_action.setChecked)
        self.search.openHit.connect(self.open_hit)
        self.strip.placeRequested.connect(self.place_image)
        self.strip.extraRequested.connect(self.show_extra)
        self.state.priorMapsChanged.connect(lambda _m: self.sentence_maps.refresh())
        self.state.viewsChanged.connect(self._apply_pending_focus)
        for signal, text in ((self.studies.loading, "loading images…"), (self.studies.predicting, "predicting…"),
                             (self.models.loading, "loading model…"), (self.maps.busyChanged, "computing maps…")):
            signal.connect(lambda busy, t=text: self._set_busy(t, busy))
        self._busy: set[str] = set()

    # ----- actions -----------------------------------------------------------------------------
    def choose_folder(self) -> None:
        start = self.settings.last_folder or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of mammograms (DICOM or image files)", start)
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> None:
        self.settings.last_folder = str(folder)
        self.folders.open(folder)

    def open_study(self, uid: str) -> None:
        study = self.state.study_by_uid(uid)
        if study is not None and (self.state.study is None or self.state.study.uid != uid):
            self.state.set_study(study)

    def open_hit(self, uid: str, view: str, query: str) -> None:
        """A search result: open the study, map the query, highlight the best view."""
        self._pending_focus = view
        self.sentence_maps.set_text(query)
        if self.state.study is not None and self.state.study.uid == uid:
            self._apply_pending_focus(self.state.views)
        else:
            self.open_study(uid)

    def _apply_pending_focus(self, views: dict) -> None:
        if self._pending_focus and views:
            self.state.focusViewChanged.emit(self._pending_focus)
            self._pending_focus = None

    def _after_discovery(self, studies: list[Any]) -> None:
        uid, self._reopen = self._reopen, None
        if uid is not None and self.state.study_by_uid(uid) is not None:
            self.open_study(uid)
        elif studies and self.state.study is None:
            self.worklist.step(0)

    def toggle_layout(self) -> None:
        name = self.hanging.toggle_layout()
        if name == "compare" and self.state.study is not None and self.state.prior is None:
            self.notes.notify("info", "This study has no prior in the folder: the prior's panes stay empty.")

    def show_extra(self, key: str) -> None:
        view = self.state.views.get(key)
        if view is not None:
            self.hanging.show_extra(view)

    def place_image(self, path: Path, laterality: str, view: str) -> None:
        """The reader placed an unplaced image: keep it as an override and scan again."""
        try:
            engine.set_placement(path, laterality, view)
        except Exception as exc:  # noqa: BLE001 - a refused value is a notification
            self.notes.notify("error", *describe_error(exc))
            return
        self.notes.notify("info", f"{Path(path).name} placed as {laterality}{view}; reading the folder again…")
        if self.state.folder is not None:
            self._reopen = self.state.study.uid if self.state.study is not None else None
            self.folders.open(self.state.folder)

    def load_model(self, name: str | None = None, device: str | None = None) -> None:
        self.models.load(name or self.settings.model, device or self.settings.device)

    def open_demo(self) -> None:
        """Generate the demo studies on first use (in a worker), open them, load the demo model."""
        target = engine.demo_studies_dir()
        if self.settings.model != "demo" or self.state.predictor is None:
            # "demo" is also the default setting: a fresh profile has it but nothing loaded yet.
            self.settings.model = "demo"
            self.load_model("demo")
        if (target / "ground_truth.json").exists():  # written last: a complete earlier run
            self.open_folder(target)
            return
        self.notes.notify("info", f"Generating demo studies in {target}…")
        self._set_busy("generating demo studies…", True)
        self.runner.start(engine.generate_demo_studies, target, 8, 2024,
                          on_done=lambda _s: self._demo_ready(target), on_error=self._demo_failed)

    def _demo_ready(self, target: Path) -> None:
        self._set_busy("generating demo studies…", False)
        self.open_folder(target)

    def _demo_failed(self, exc: BaseException) -> None:
        self._set_busy("generating demo studies…", False)
        self.notes.notify("error", *describe_error(exc))

    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        accepted = dialog.exec()
        try:
            new = dialog.result_settings() if accepted else None
        except Exception as exc:  # noqa: BLE001 - a bad value is a notification, not a crash
            self.notes.notify("error", *describe_error(exc))
            return
        finally:
            dialog.deleteLater()  # each opening builds a new dialog: do not keep the old ones
        if new is not None:
            reload = (new.model, new.device) != (self.settings.model, self.settings.device)
            self.settings = new
            apply_cache_dir(new)
            save_settings(new)
            if reload:
                self.load_model()

    def show_pacs(self) -> Any:
        """The PACS source (pacs_panel.py) in a dock, built on first use; a retrieved study opens
        through the ordinary open-folder path."""
        if getattr(self, "pacs_panel", None) is None:
            from .pacs_panel import PacsPanel

            self.pacs_panel = PacsPanel(self.runner, self.state, self.notes.notify)
            self.pacs_panel.studyRetrieved.connect(lambda result: self.open_folder(result.folder))
            dock = QDockWidget("PACS", self)
            dock.setObjectName("dock-PACS")
            dock.setWidget(self.pacs_panel)
            self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
            self.docks["PACS"] = dock
        self.pacs_panel.reload_nodes()
        self.docks["PACS"].show()
        self.docks["PACS"].raise_()
        return self.pacs_panel

    def show_finetune(self) -> FinetuneDialog:
        """One dialog per window: reopening it shows the run in progress."""
        if self.finetune_dialog is None:
            device = None if self.settings.device == "auto" else self.settings.device
            self.finetune_dialog = FinetuneDialog(self.state, self.runner, device, self)
            self.finetune_dialog.activated.connect(self.use_active_model)
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()
        return self.finetune_dialog

    def show_models(self) -> ModelsPage:
        if self.models_page is None:
            self.models_page = ModelsPage(self.runner, self)
            self.models_page.activeChanged.connect(self.use_active_model)
        self.models_page.refresh()
        self.models_page.show()
        self.models_page.raise_()
        return self.models_page

    def use_active_model(self, version_id: str = "") -> None:
        """The registry's active model changed: predict with it from now on (and re-predict)."""
        self.settings.model = "active"
        try:
            save_settings(self.settings)
        except Exception:  # noqa: BLE001 - the switch still applies to this session
            log.exception("could not save settings")
        self.notes.notify("info", f"Switching to the active model {version_id}".rstrip() + "…")
        self.load_model("active")
        if self.models_page is not None:
            self.models_page.refresh()

    def show_help(self) -> None:
        dialog = HelpDialog(self.shortcut_actions, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # a new one per opening
        dialog.show()

    def _set_sync(self, on: bool) -> None:
        self.settings.sync_zoom = on
        self.hanging.set_sync(on)

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _show_maps(self, display: Any) -> None:
        if display is None:
            self.hanging.clear_maps()
        else:
            self.hanging.show_maps(display.per_view, display.lut, display.levels, display.opacity, display.badges,
                                   display.sample)

    def _set_busy(self, text: str, busy: bool) -> None:
        (self._busy.add if busy else self._busy.discard)(text)
        self.busy_label.setText(" · ".join(sorted(self._busy)))

    # ----- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if path.is_dir():
                self.open_folder(path)
                event.acceptProposedAction()
                return
            if path.is_file():
                self.open_folder(path.parent)
                event.acceptProposedAction()
                return

    # ----- geometry and shutdown ---------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry, window_state = load_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if window_state is not None:
            self.restoreState(window_state)

    def closeEvent(self, event: QEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop timers, stop and join every worker, persist settings and geometry."""
        self.maps.timer.stop()
        self.maps.latest.cancel()
        if self.finetune_dialog is not None:
            self.finetune_dialog.shutdown()
        self.runner.shutdown()
        try:
            save_settings(self.settings)
            save_geometry(self.saveGeometry(), self.saveState())
        except Exception:  # noqa: BLE001 - never block closing on a settings write
            log.exception("could not save settings")
        self.closed.emit()
