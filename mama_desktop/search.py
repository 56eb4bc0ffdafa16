"""Text search over the open folder: rank its studies by a description.

The first search in a folder builds the engine's search index in the background (with
progress; later runs only encode new or changed files). Clicking a result opens the study,
puts the query into the sentence-map box and highlights the best-matching view. "Rank by"
sets the share of the sentence-to-patch score (docs/inference.md, `--local-weight`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import engine
from .controllers import describe_error
from .state import AppState
from .workers import TaskRunner


# (label, share of the local score); the first is mama_core's DEFAULT_LOCAL_WEIGHT (not
# imported here: it would load torch when the window is built)
RANKINGS = (("Whole image and where seen", 0.5), ("Where the finding is seen", 1.0), ("Whole image", 0.0))


def build_and_search(folder: Path, predictor: Any, text: str, indexed: bool, local_weight: float,
                     progress: Any, stop: Any) -> list[Any]:
    """Worker: (re)build the folder's index when needed, then rank its studies."""
    if not indexed:
        for report in engine.build_index(folder, predictor, stop=stop):
            progress(report)
    return engine.search(text, predictor, folder, top_k=20, local_weight=local_weight)


class SearchController(QObject):
    progress = Signal(int, int)
    busyChanged = Signal(bool)
    results = Signal(str, list)  # query, hits
    failed = Signal(str)

    def __init__(self, state: AppState, runner: TaskRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.runner = state, runner
        self._indexed: set[tuple[str, str]] = set()  # (folder, model) pairs indexed this session
        self._busy = False
        state.folderChanged.connect(lambda _f: self.results.emit("", []))

    def search(self, text: str, local_weight: float) -> bool:
        text = text.strip()
        folder, predictor = self.state.folder, self.state.predictor
        if not text or folder is None or predictor is None or self._busy:
            if predictor is None and text:
                self.failed.emit("Load a model first (File ▸ Settings) to search.")
            return False
        key = (str(folder), str(getattr(predictor, "name", "")))
        self._busy = True
        self.busyChanged.emit(True)
        self.runner.start(build_and_search, folder, predictor, text, key in self._indexed, local_weight,
                          wants_control=True,
                          on_done=lambda hits: self._done(key, text, hits), on_error=self._failed,
                          on_progress=lambda r: self.progress.emit(int(r.done), int(r.total)))
        return True

    def _done(self, key: tuple[str, str], text: str, hits: list[Any]) -> None:
        self._indexed.add(key)
        self._busy = False
        self.busyChanged.emit(False)
        self.results.emit(text, hits)

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        self.busyChanged.emit(False)
        self.failed.emit(describe_error(exc)[0])


class SearchPanel(QWidget):
    """Search field, progress and ranked results; activating a result opens the study."""

    openHit = Signal(str, str, str)  # study uid, best view, query

    def __init__(self, state: AppState, controller: SearchController, parent: QWidget | None = None):
        super().__init__(parent)
        self.state, self.controller = state, controller
        self.field = QLineEdit(placeholderText="Describe what to find, e.g. A mass is present in the breast.",
                               clearButtonEnabled=True)
        self.go = QPushButton("Search")
        self.rank_by = QComboBox()
        # long labels must not widen the dock (and with it the window's minimum size)
        self.rank_by.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.rank_by.setMinimumContentsLength(6)
        for label, weight in RANKINGS:
            self.rank_by.addItem(label, weight)
        self.rank_by.setToolTip("Whole image: the caption-level match. Where seen: the best sentence-to-patch "
                                "match, which finds focal findings such as masses best.")
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(12)
        self.progress.hide()
        self.status = QLabel("")
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)
        self.results = QListWidget()
        self.query = ""
        row = QHBoxLayout()
        row.addWidget(self.field, 1)
        row.addWidget(self.go)
        rank_row = QHBoxLayout()
        rank_row.addWidget(QLabel("Rank by"))
        rank_row.addWidget(self.rank_by, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(rank_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        self.field.returnPressed.connect(self.run)
        self.go.clicked.connect(self.run)
        self.results.itemActivated.connect(self._activate)
        self.results.itemClicked.connect(self._activate)
        self.rank_by.currentIndexChanged.connect(lambda _i: self.query and self.run())
        controller.progress.connect(self._on_progress)
        controller.busyChanged.connect(self._on_busy)
        controller.results.connect(self._show)
        controller.failed.connect(self.status.setText)

    def run(self) -> None:
        if self.controller.search(self.field.text(), float(self.rank_by.currentData())):
            self.status.setText("Indexing and searching…")

    def _on_busy(self, busy: bool) -> None:
        self.go.setEnabled(not busy)
        self.progress.setVisible(busy)
        self.progress.setRange(0, 0)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(f"Indexing {done}/{total} images…")

    def _show(self, query: str, hits: list[Any]) -> None:
        self.query = query
        self.results.clear()
        for rank, hit in enumerate(hits, 1):
            study = self.state.study_by_uid(hit.study_uid)
            who = getattr(study, "patient_id", None) or hit.study_uid[-12:]
            item = QListWidgetItem(f"{rank}. {who}  ·  {hit.best_view}  ·  score {hit.score:+.3f}")
            item.setData(Qt.ItemDataRole.UserRole, (hit.study_uid, hit.best_view))
            item.setToolTip(f"{hit.study_uid}\nglobal {hit.global_score:+.3f}, local {hit.local_score:+.3f}")
            self.results.addItem(item)
        self.status.setText(f"{len(hits)} result{'s' if len(hits) != 1 else ''} for “{query}”" if query else "")

    def _activate(self, item: QListWidgetItem) -> None:
        uid, view = item.data(Qt.ItemDataRole.UserRole)
        self.openHit.emit(uid, view, self.query)
