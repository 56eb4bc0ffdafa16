"""The fine-tune dialog's comparison view: the current active model and the new one on the
same held-out cases, as the registry's report states it (docs/finetuning.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

WARNING_COLOUR = "#f6b26b"
METRIC_ROWS = (("Balanced accuracy", "balanced_accuracy"), ("AUC (macro, one-vs-rest)", "auc"),
               ("Sensitivity", "sensitivity"), ("Specificity", "specificity"), ("Held-out images", "n"),
               ("Method", "method"))


def _with_ci(side: dict, key: str) -> str:
    """A metric with its 95 % bootstrap interval when the report has one."""
    ci = (side.get("ci95") or {}).get(key)
    return _number(side.get(key)) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(rows: int, columns: int, headers: list[str], vertical: list[str] | None = None) -> QTableWidget:
    table = QTableWidget(rows, columns)
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    if vertical is None:
        table.verticalHeader().hide()
    else:
        table.setVerticalHeaderLabels(vertical)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return table


def fit_height(table: QTableWidget) -> None:
    """Show every row: these tables are a handful of rows and must not scroll."""
    table.resizeColumnsToContents()
    table.resizeRowsToContents()
    rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
    header = max(table.horizontalHeader().height(), table.horizontalHeader().sizeHint().height())
    table.setFixedHeight(header + rows + 2 * table.frameWidth() + 2)


class ComparisonView(QWidget):
    """The final report: metrics of the current active model and the new one on the same
    held-out cases, and both confusion matrices (rows: truth, columns: prediction)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.metrics = _table(len(METRIC_ROWS), 3, ["Metric", "Current active model", "New model"])
        self.metrics.horizontalHeader().setStretchLastSection(True)
        self.confusions = QHBoxLayout()
        self.note = QLabel(wordWrap=True)
        self.note.setObjectName("Muted")
        self.title = QLabel()
        self.counts = QLabel(wordWrap=True)
        self.verdict = QLabel(wordWrap=True)  # the comparison's verdict in words (finetune.compare.judge)
        self.recommended = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.title, self.counts, self.verdict, self.metrics):
            layout.addWidget(widget)
        layout.addLayout(self.confusions)
        layout.addWidget(self.note)

    def show_report(self, report: dict) -> None:
        new, old = report.get("new") or {}, report.get("baseline") or {}
        self.title.setText(f"<b>{report.get('task', '?')}</b> on {report.get('n_cases', '?')} held-out images "
                           f"(patients never used for training)")
        current = Path(str(old.get("model") or "")).name or "?"
        self.metrics.setHorizontalHeaderLabels(["Metric", f"Current active model ({current})", "New model"])
        for row, (title, key) in enumerate(METRIC_ROWS):
            for column, text in enumerate((title, _with_ci(old, key), _with_ci(new, key))):
                self.metrics.setItem(row, column, QTableWidgetItem(text))
        fit_height(self.metrics)
        self._show_confusions(report.get("classes") or [], old, new)
        notices = sorted(set((report.get("notices") or {}).values()))
        self.note.setText(report.get("note", "") + "; [ ] = 95 % bootstrap interval"
                          + "".join(f"\n{n}" for n in notices))
        self._show_verdict(report)

    def _show_verdict(self, report: dict) -> None:
        counts = report.get("class_counts") or {}
        self.counts.setText("Held-out images per class: " + ", ".join(f"{c}: {n}" for c, n in counts.items()))
        verdict = report.get("verdict") or {}
        self.recommended = bool(verdict.get("activate_recommended"))
        reasons = "; ".join(verdict.get("reasons", [])) or "this report carries no verdict"
        if verdict.get("winner") is None:
            self.verdict.setText(f"<b>No winner.</b> {reasons}.")
        else:
            self.verdict.setText(f"<b>{'New model' if verdict['winner'] == 'new' else 'Current model'} is better.</b> "
                                 f"{reasons}.")
        self.verdict.setStyleSheet("" if self.recommended else f"color: {WARNING_COLOUR};")

    def _show_confusions(self, classes: list, old: dict, new: dict) -> None:
        while self.confusions.count():
            widget = self.confusions.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for title, side in (("Current active model", old), ("New model", new)):
            self.confusions.addWidget(self._confusion(title, classes, side.get("confusion") or []))

    @staticmethod
    def _confusion(title: str, classes: list, matrix: list[list[int]]) -> QGroupBox:
        names = [str(c) for c in classes] or [str(i) for i in range(len(matrix))]
        table = _table(len(names), len(names), [f"pred {n}" for n in names], [f"true {n}" for n in names])
        for r, row in enumerate(matrix):
            for c, value in enumerate(row):
                item = QTableWidgetItem(str(value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                table.setItem(r, c, item)
        fit_height(table)
        box = QGroupBox(f"Confusion matrix — {title}")
        QVBoxLayout(box).addWidget(table)
        return box
