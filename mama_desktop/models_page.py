"""Models ▸ Model versions: the registry's versions, and activate / roll back / delete / export.

Every registry operation runs in a worker (a delete or an export moves hundreds of MB on a
real model); the table is re-read from the registry after each one, so it always shows
what is on disk. Switching the active model emits `activeChanged`, on which the main window
reloads its predictor (and so re-predicts the open study).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import engine
from .controllers import describe_error
from .workers import TaskRunner

log = logging.getLogger(__name__)
COLUMNS = ["Active", "ID", "Name", "Kind", "Created", "Parent", "Key metric"]
ACTIVE_MARK = "●"


class ModelsPage(QDialog):
    """A non-modal window over `mama_core.registry` (through engine.py)."""

    activeChanged = Signal(str)  # the new active version id
    changed = Signal()  # the table was re-read after an operation

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Model versions")
        self.runner = runner
        self.rows: list[dict[str, Any]] = []
        self.table = self._build_table()
        self.status = QLabel("", objectName="Muted", wordWrap=True)
        self.buttons = {name: QPushButton(name) for name in ("Activate", "Roll back", "Delete", "Export…", "Refresh")}
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        for name, button in self.buttons.items():
            row.addWidget(button)
            if name == "Export…":
                row.addStretch(1)
        layout.addLayout(row)
        self._wire()
        self.resize(900, 420)
        self.refresh()

    def _build_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(COLUMNS)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().hide()
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        return table

    def _wire(self) -> None:
        b = self.buttons
        b["Activate"].clicked.connect(self.activate_selected)
        b["Roll back"].clicked.connect(self.rollback)
        b["Delete"].clicked.connect(self.delete_selected)
        b["Export…"].clicked.connect(self.export_selected)
        b["Refresh"].clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _i: self.activate_selected())

    # ----- the table -----------------------------------------------------------------------------
    def refresh(self) -> None:
        selected = self.selected_id()
        try:
            self.rows = engine.list_versions()
        except Exception as exc:  # noqa: BLE001 - an unreadable registry is a message
            self.rows = []
            self.status.setText(describe_error(exc)[0])
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            self._fill_row(r, row)
        if not self.rows:
            self.status.setText("No model versions yet: fine-tune one (Models ▸ Fine-tune) or build the demo model.")
        self.select(selected or self.active_id())
        self._update_buttons()
        self.changed.emit()

    def _fill_row(self, r: int, row: dict[str, Any]) -> None:
        values = [ACTIVE_MARK if row["active"] else "", row["id"], row["name"], row["kind"], row["created"],
                  row["parent"] or "-", row["key_metric"]]
        for c, value in enumerate(values):
            item = QTableWidgetItem(str(value))
            item.setData(Qt.ItemDataRole.UserRole, row["id"])
            if row["active"]:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            if c == 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setToolTip("the active model: what the workstation predicts with" if row["active"] else "")
            self.table.setItem(r, c, item)

    def active_id(self) -> str | None:
        return next((row["id"] for row in self.rows if row["active"]), None)

    def selected_id(self) -> str | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def select(self, version_id: str | None) -> None:
        for r, row in enumerate(self.rows):
            if row["id"] == version_id:
                self.table.selectRow(r)
                return

    def _update_buttons(self) -> None:
        selected = self.selected_id()
        self.buttons["Activate"].setEnabled(selected is not None and selected != self.active_id())
        self.buttons["Delete"].setEnabled(selected is not None)
        self.buttons["Export…"].setEnabled(selected is not None)

    # ----- operations ----------------------------------------------------------------------------
    def _run(self, fn: Any, *args: Any, done: Any) -> None:
        self.setEnabled(False)
        self.runner.start(fn, *args, on_done=done, on_error=self._failed, on_settled=self._settled)

    def _settled(self) -> None:
        self.setEnabled(True)
        self.refresh()

    def _failed(self, exc: BaseException) -> None:
        message, details = describe_error(exc)
        self.status.setText(message)
        log.warning("registry operation failed: %s\n%s", message, details)
        QMessageBox.warning(self, "Model versions", message)

    def activate_selected(self) -> None:
        version = self.selected_id()
        if version is not None and version != self.active_id():
            self._run(engine.activate_version, version, done=self._switched)

    def rollback(self) -> None:
        self._run(engine.rollback_version, done=self._switched)

    def _switched(self, version_id: str) -> None:
        self.status.setText(f"Active model: {version_id} — reloading the predictor")
        self.activeChanged.emit(version_id)

    def delete_selected(self) -> None:
        version = self.selected_id()
        if version is None:
            return
        if version == self.active_id():
            QMessageBox.warning(self, "Delete model version",
                                f"{version} is the active model and cannot be deleted. Activate another "
                                "version (or Roll back) first.")
            return
        answer = QMessageBox.question(self, "Delete model version",
                                      f"Delete {version}? Its weights and report are removed for good.")
        if answer == QMessageBox.StandardButton.Yes:
            self._run(engine.delete_version, version, done=lambda v: self.status.setText(f"Deleted {v}"))

    def export_selected(self) -> None:
        version = self.selected_id()
        if version is None:
            return
        target, _ = QFileDialog.getSaveFileName(self, "Export model version", str(Path.home() / f"{version}.zip"),
                                                "Zip archives (*.zip)")
        if target:
            self._run(engine.export_version, version, target, done=self._exported)

    def _exported(self, path: Path) -> None:
        self.status.setText(f"Exported to {path}")
        QMessageBox.information(self, "Exported — check the data licence",
                                f"Saved {path}.\n\n{engine.licence_note()}")
