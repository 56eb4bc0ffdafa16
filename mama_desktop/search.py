"""Text search over the open folder: rank its studies by a description.

The first search in a folder builds the engine's search index in the background (with
progress; later runs only encode new or changed files). Everything runs on a worker thread:
the ranked list appears and is refined while the engine re-ranks its candidates, then each
of the first hits gets a thumbnail of its best view with the sentence's map. Clicking a
result opens the study, puts the query into the sentence-map box and highlights the
best-matching view. "Rank by" sets the share of the sentence-to-patch score
(docs/inference.md, `--local-weight`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
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
from .sentence_maps import COLOUR_MAPS, heat_lut, threshold_position
from .state import AppState
from .workers import TaskRunner

THUMBNAILS = 10  # hits that get a best-view thumbnail (each costs a map of one image)
THUMB_PX = 72


# (label, share of the local score); the first is mama_core's DEFAULT_LOCAL_WEIGHT (not
# imported here: it would load torch when the window is built)
RANKINGS = (("Whole image and where seen", 0.5), ("Where the finding is seen", 1.0), ("Whole image", 0.0))


@dataclass
class Ranked:
    """The running ranking (reported while the engine re-ranks)."""

    hits: list[Any]


@dataclass
class Thumbnail:
    """A hit's best view, small: grey pixels [h, w] in 0-1 and the sentence's map on them."""

    study_uid: str
    pixels: np.ndarray
    heat: np.ndarray
    threshold: float
    value_range: tuple[float, float]


def build_and_search(folder: Path, predictor: Any, text: str, indexed: bool, local_weight: float,
                     progress: Any, stop: Any) -> list[Any]:
    """Worker: (re)build the folder's index when needed, rank its studies (reporting each
    refinement), then report thumbnails of the first hits."""
    if not indexed:
        for report in engine.build_index(folder, predictor, stop=stop):
            progress(report)
        if stop.is_set():  # cancelled: what was indexed is saved, nothing is searched
            return []
    hits: list[Any] = []
    for hits in engine.search_progressively(text, predictor, folder, top_k=20, local_weight=local_weight):
        progress(Ranked(list(hits)))
    for hit in hits[:THUMBNAILS]:
        if stop.is_set():
            break
        thumb = hit_thumbnail(predictor, hit, text)
        if thumb is not None:
            progress(thumb)
    return hits


def hit_thumbnail(predictor: Any, hit: Any, text: str) -> Thumbnail | None:
    """The best view and its map, subsampled to about THUMB_PX; None when it cannot be read
    (the hit itself stays in the list)."""
    try:
        pixels, heat, threshold, value_range = engine.view_map(predictor, hit.best_path, text)
    except (engine.MamaError, OSError, ValueError, StopIteration):
        return None
    step = max(1, int(np.ceil(max(pixels.shape) / THUMB_PX)))
    return Thumbnail(hit.study_uid, np.ascontiguousarray(pixels[::step, ::step]),
                     np.ascontiguousarray(heat[::step, ::step]), threshold, value_range)


def thumbnail_pixmap(thumb: Thumbnail) -> QPixmap:
    """Grey image with the map blended on top: the sentence maps' colours, alpha ramp and
    absolute scale (nothing drawn below the no-match threshold)."""
    lo, hi = thumb.value_range
    lut = heat_lut(COLOUR_MAPS[0], threshold_position(thumb.threshold, thumb.value_range)).astype(np.float32)
    index = np.clip((thumb.heat - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.intp)
    rgba = lut[index]
    alpha = rgba[..., 3:4] / 255.0
    grey = np.clip(thumb.pixels, 0, 1)[..., None] * 255.0
    rgb = np.ascontiguousarray((grey * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8))
    h, w = rgb.shape[:2]
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class SearchController(QObject):
    progress = Signal(int, int)
    busyChanged = Signal(bool)
    ranked = Signal(str, list)  # query, the ranking so far
    thumbnail = Signal(object)  # Thumbnail
    results = Signal(str, list)  # query, hits (final)
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
                          on_progress=lambda r: self._report(text, r))
        return True

    def _report(self, text: str, report: Any) -> None:
        if isinstance(report, Ranked):
            self.ranked.emit(text, report.hits)
        elif isinstance(report, Thumbnail):
            self.thumbnail.emit(report)
        else:
            self.progress.emit(int(report.done), int(report.total))

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
        self.results.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.query = ""
        self._thumbs: dict[str, QPixmap] = {}  # study uid -> thumbnail, for the shown query
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
        controller.ranked.connect(self._show)
        controller.results.connect(self._show)
        controller.thumbnail.connect(self._on_thumbnail)
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
        if query != self.query:
            self._thumbs.clear()
        self.query = query
        self.results.clear()
        for rank, hit in enumerate(hits, 1):
            study = self.state.study_by_uid(hit.study_uid)
            who = getattr(study, "patient_id", None) or hit.study_uid[-12:]
            flagged = getattr(hit.ood, "flagged", False)
            mark = "  ·  ⚠ outside the model's experience" if flagged else ""
            item = QListWidgetItem(f"{rank}. {who}  ·  {hit.best_view}  ·  score {hit.score:+.3f}{mark}")
            item.setData(Qt.ItemDataRole.UserRole, (hit.study_uid, hit.best_view))
            item.setToolTip(f"{hit.study_uid}\nglobal {hit.global_score:+.3f}, local {hit.local_score:+.3f}")
            if hit.study_uid in self._thumbs:
                item.setIcon(QIcon(self._thumbs[hit.study_uid]))
            self.results.addItem(item)
        self.status.setText(f"{len(hits)} result{'s' if len(hits) != 1 else ''} for “{query}”" if query else "")

    def _on_thumbnail(self, thumb: Thumbnail) -> None:
        self._thumbs[thumb.study_uid] = pixmap = thumbnail_pixmap(thumb)
        for row in range(self.results.count()):
            item = self.results.item(row)
            if item.data(Qt.ItemDataRole.UserRole)[0] == thumb.study_uid:
                item.setIcon(QIcon(pixmap))

    def _activate(self, item: QListWidgetItem) -> None:
        uid, view = item.data(Qt.ItemDataRole.UserRole)
        self.openHit.emit(uid, view, self.query)
