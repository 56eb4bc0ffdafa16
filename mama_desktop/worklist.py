"""The study browser: a sortable table of the open folder's studies (model/view)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .predictions import short_prediction
from .state import AppState

STANDARD_VIEWS = ("RCC", "LCC", "RMLO", "LMLO")
COLUMNS = ["Patient", "Date", "Views", "Problems", "Density", "BI-RADS", "Model", "Study UID"]


def format_date(date: str | None) -> str:
    if date and len(date) == 8 and date.isdigit():
        return f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return date or ""


def views_text(images: dict[str, Any]) -> str:
    present = [k for k in STANDARD_VIEWS if k in images]
    extras = sorted(k for k in images if k not in STANDARD_VIEWS)
    missing = [k for k in STANDARD_VIEWS if k not in images]
    text = " ".join(present + extras)
    return f"{text}  (no {' '.join(missing)})" if missing else text


class StudyTableModel(QAbstractTableModel):
    def __init__(self, state: AppState, parent: Any = None):
        super().__init__(parent)
        self.state = state
        state.studiesChanged.connect(self._reset)
        state.predictionsUpdated.connect(self._predictions_changed)

    def _reset(self, _studies: list[Any]) -> None:
        self.beginResetModel()
        self.endResetModel()

    def _predictions_changed(self) -> None:
        if self.state.studies:
            self.dataChanged.emit(self.index(0, 4), self.index(len(self.state.studies) - 1, 6))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.state.studies)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        study = self.state.studies[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell(study, index.column())
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 3:
            return "\n".join(getattr(study, "problems", []) or []) or None
        if role == Qt.ItemDataRole.UserRole:
            return study.uid
        return None

    def cell(self, study: Any, column: int) -> str:
        prediction = self.state.predictions.get(study.uid)
        density, birads = short_prediction(prediction)
        problems = getattr(study, "problems", None) or []
        values = [
            study.patient_id or "",
            format_date(study.date),
            views_text(study.images),
            f"{len(problems)}" if problems else "",
            density,
            birads,
            prediction.model_name if prediction is not None else "",
            study.uid,
        ]
        return values[column]


class WorklistPanel(QWidget):
    """Table + filter + discovery progress; selecting a row opens the study."""

    studyActivated = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.model = StudyTableModel(state, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)  # newest study first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.filter = QLineEdit(placeholderText="Filter studies…", clearButtonEnabled=True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.folder_label = QLabel("No folder open — File ▸ Open folder, or drop a folder here")
        self.folder_label.setObjectName("Muted")
        self.folder_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(12)
        self.progress.setTextVisible(False)
        self.progress.hide()
        top = QHBoxLayout()
        top.addWidget(self.filter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.folder_label)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.table)
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        state.folderChanged.connect(lambda f: self.folder_label.setText(str(f) if f else ""))
        state.studyChanged.connect(self._select_current)
        state.studiesChanged.connect(lambda s: self.folder_label.setText(
            f"{self.state.folder}  ·  {len(s)} stud{'y' if len(s) == 1 else 'ies'}"))

    def set_busy(self, busy: bool) -> None:
        self.progress.setRange(0, 0)  # indeterminate until the engine reports counts
        self.progress.setVisible(busy)

    def on_progress(self, report: Any) -> None:
        done, total = getattr(report, "done", None), getattr(report, "total", None)
        if isinstance(report, tuple) and len(report) == 2:
            done, total = report
        if isinstance(done, int) and isinstance(total, int) and total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _on_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            uid = self.proxy.index(current.row(), 0).data(Qt.ItemDataRole.UserRole)
            if self.state.study is None or uid != self.state.study.uid:
                self.studyActivated.emit(uid)

    def _select_current(self, study: Any | None) -> None:
        if study is None:
            return
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data(Qt.ItemDataRole.UserRole) == study.uid:
                if self.table.currentIndex().row() != row:
                    self.table.selectRow(row)
                return

    def step(self, delta: int) -> None:
        """Next (+1) / previous (-1) study in the table's current (sorted, filtered) order."""
        rows = self.proxy.rowCount()
        if rows == 0:
            return
        current = self.table.currentIndex().row()
        row = 0 if current < 0 else min(max(current + delta, 0), rows - 1)
        self.table.selectRow(row)
