"""The DICOM tag panel: the header of the view under the cursor (read in the loading worker),
preceded by how the image was placed: the rule that decided its side, its view and its study."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QHeaderView, QLabel, QLineEdit, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from .hanging import PRIOR
from .state import AppState, LoadedView


def placement_rows(placement: Any) -> list[tuple[str, str, str]]:
    """Rows 'Placement: side / view / study / kind' with the deciding rule of each."""
    if placement is None:
        return []
    return [("placement", "Side", f"{placement.laterality or '?'}  ·  {placement.laterality_rule}"),
            ("placement", "View", f"{placement.view or '?'}  ·  {placement.view_rule}"),
            ("placement", "Study", placement.group_rule),
            ("placement", "Kind", placement.kind)]


class TagPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.key = ""
        self.title = QLabel("Hover over a view to see its DICOM tags")
        self.title.setObjectName("Muted")
        self.filter = QLineEdit(placeholderText="Filter tags…", clearButtonEnabled=True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Tag", "Name", "Value"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)
        self.filter.textChanged.connect(self._apply_filter)
        state.studyChanged.connect(lambda _s: self.show_view(""))

    def show_view(self, key: str) -> None:
        if key == self.key:
            return
        self.key = key
        view: LoadedView | None = self._view(key)
        rows = placement_rows(view.placement) + view.tags if view is not None else []
        self.title.setText(f"{key} — {view.image.source.name}" if view is not None else "No view")
        self.table.setRowCount(len(rows))
        for r, (tag, name, value) in enumerate(rows):
            for c, text in enumerate((tag, name, value)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self._apply_filter(self.filter.text())

    def _view(self, key: str) -> LoadedView | None:
        if key.startswith(PRIOR):
            return self.state.prior_views.get(key.removeprefix(PRIOR))
        return self.state.views.get(key)

    def _apply_filter(self, text: str) -> None:
        needle = text.lower()
        for r in range(self.table.rowCount()):
            cells = [self.table.item(r, c).text().lower() for c in range(3) if self.table.item(r, c)]
            self.table.setRowHidden(r, bool(needle) and not any(needle in c for c in cells))
