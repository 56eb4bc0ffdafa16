"""The study browser: a sortable table of the open folder's studies (model/view)."""

from __future__ import annotations

import csv
import logging
import io
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from mama_core import fs, paths

from .predictions import short_prediction
from .state import AppState

log = logging.getLogger(__name__)
STANDARD_VIEWS = ("RCC", "LCC", "RMLO", "LMLO")
# The reader's own labels come last (logical columns 8, 9) and are moved next to the model's.
COLUMNS = ["Patient", "Date", "Views", "Problems", "Density", "BI-RADS", "Model", "Study UID",
           "Reader density", "Reader BI-RADS"]
READER_COLUMNS = {8: "density", 9: "birads"}
DENSITY_LETTERS = "ABCD"  # density 1-4 = A-D (BI-RADS atlas, 5th edition)
LABEL_FIELDS = ("study_id", "birads", "density")  # the simple labels CSV the fine-tuning reads


def reader_labels_path() -> Path:
    return paths.user_data_dir() / "reader-labels.csv"


def format_label(task: str, value: int | None) -> str:
    if value is None:
        return ""
    return DENSITY_LETTERS[value - 1] if task == "density" else str(value)


def parse_label(task: str, text: str) -> int | None:
    """'A'-'D' or 1-4 for density, 0-6 for BI-RADS; '' clears. ValueError otherwise."""
    text = text.strip().upper()
    if not text:
        return None
    if task == "density" and text in DENSITY_LETTERS:
        return DENSITY_LETTERS.index(text) + 1
    value = int(text)
    if (task == "density" and not 1 <= value <= 4) or (task == "birads" and not 0 <= value <= 6):
        raise ValueError(f"{text} is not a {task} value")
    return value


def write_labels_csv(labels: dict[str, dict[str, int]], path: Path) -> Path:
    """study_id,birads,density rows (the simple format of `mama finetune --labels`), atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(LABEL_FIELDS)
    for uid, values in sorted(labels.items()):
        writer.writerow([uid, values.get("birads", ""), values.get("density", "")])
    return fs.write_text(path, buffer.getvalue())


def read_labels_csv(path: Path) -> dict[str, dict[str, int]]:
    """The saved reader labels; a damaged file is logged and ignored, never fatal."""
    if not path.is_file():
        return {}
    labels: dict[str, dict[str, int]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                values = {t: int(row[t]) for t in ("birads", "density") if (row.get(t) or "").strip()}
                if row.get("study_id") and values:
                    labels[row["study_id"]] = values
    except (OSError, ValueError, csv.Error) as exc:
        log.warning("%s: reader labels not readable (%s); starting without them", path, exc)
    return labels


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
        state.readerLabelsChanged.connect(self._labels_changed)

    def _reset(self, _studies: list[Any]) -> None:
        self.beginResetModel()
        self.endResetModel()

    def _predictions_changed(self) -> None:
        if self.state.studies:
            self.dataChanged.emit(self.index(0, 4), self.index(len(self.state.studies) - 1, 6))

    def _labels_changed(self, _uid: str) -> None:
        if self.state.studies:
            self.dataChanged.emit(self.index(0, 8), self.index(len(self.state.studies) - 1, 9))

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsEditable if index.column() in READER_COLUMNS else base

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any,  # noqa: N802
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        task = READER_COLUMNS.get(index.column())
        if task is None or role != Qt.ItemDataRole.EditRole:
            return False
        try:
            label = parse_label(task, str(value))
        except ValueError:
            return False
        self.state.set_reader_label(self.state.studies[index.row()].uid, task, label)
        return True

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
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self.cell(study, index.column())
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 3:
            return "\n".join(getattr(study, "problems", []) or []) or None
        if role == Qt.ItemDataRole.ToolTipRole and index.column() in READER_COLUMNS:
            return "Your label for fine-tuning: double-click and type (density A-D, BI-RADS 0-6), or right-click"
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 6:
            return "The model (registry version) that produced this study's predictions"
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
        if column in READER_COLUMNS:
            task = READER_COLUMNS[column]
            return format_label(task, self.state.reader_labels.get(study.uid, {}).get(task))
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
        # Only the reader-label columns are editable (flags); the others ignore these triggers.
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        for offset, column in enumerate(READER_COLUMNS):  # show them after "Model", before the UID
            header = self.table.horizontalHeader()
            header.moveSection(header.visualIndex(column), header.visualIndex(6) + 1 + offset)
        self.filter = QLineEdit(placeholderText="Filter studies…", clearButtonEnabled=True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.folder_label = QLabel("No folder open — File ▸ Open folder, or drop a folder here")
        self.folder_label.setObjectName("Muted")
        self.folder_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(12)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.model_label = QLabel("Predictions: no model")
        self.model_label.setObjectName("Muted")
        self.model_label.setToolTip("The model (registry version) whose predictions the table shows")
        top = QHBoxLayout()
        top.addWidget(self.filter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.folder_label)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.table)
        layout.addWidget(self.model_label)
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        state.folderChanged.connect(lambda f: self.folder_label.setText(str(f) if f else ""))
        state.studyChanged.connect(self._select_current)
        state.studiesChanged.connect(lambda s: self.folder_label.setText(
            f"{self.state.folder}  ·  {len(s)} stud{'y' if len(s) == 1 else 'ies'}"))
        state.predictorChanged.connect(self._show_model)
        state.readerLabelsChanged.connect(self._save_labels)
        state.set_reader_labels(read_labels_csv(reader_labels_path()))

    def _show_model(self, predictor: Any | None) -> None:
        name = getattr(predictor, "name", None) if predictor is not None else None
        self.model_label.setText(f"Predictions: model {name}" if name else "Predictions: no model")

    def _save_labels(self, uid: str) -> None:
        if not uid:
            return  # a bulk load, not an edit
        try:
            write_labels_csv(self.state.reader_labels, reader_labels_path())
        except OSError as exc:
            log.error("could not save reader labels: %s", exc)

    def _context_menu(self, pos: Any) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        uid = self.proxy.index(index.row(), 0).data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        for task, title, values in (("density", "Reader density", range(1, 5)),
                                    ("birads", "Reader BI-RADS", range(0, 7))):
            sub = menu.addMenu(title)
            for value in values:
                sub.addAction(format_label(task, value),
                              lambda t=task, v=value: self.state.set_reader_label(uid, t, v))
            sub.addAction("Clear", lambda t=task: self.state.set_reader_label(uid, t, None))
        menu.popup(self.table.viewport().mapToGlobal(pos))

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
