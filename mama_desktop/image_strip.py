"""The strip under the hanging protocol: the study's images that hang in no screening pane.

- *Unplaced* images (side or view undecided by every rule): the reader picks the side and the
  view and presses Place; the choice is stored as a per-file override in the user's data
  folder (used by every command) and the folder is scanned again.
- *Extra* views (spot, magnification, stereotactic, ML, XCCL, ...): a button each shows the
  view alone; Esc returns to the reading layout.
The strip hides itself when the study has neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QWidget

from .state import AppState

SCREENING_KEYS = ("RCC", "LCC", "RMLO", "LMLO")
SIDES = ["?", "R", "L"]
VIEWS = ["?", "CC", "MLO", "ML", "LM", "XCCL", "XCCM", "XCC", "FB", "SIO", "ISO", "LMO"]


def _rule_text(placement: Any) -> str:
    if placement is None:
        return "no placement recorded"
    return (f"side: {placement.laterality or '?'} ({placement.laterality_rule}); "
            f"view: {placement.view or '?'} ({placement.view_rule}); study: {placement.group_rule}")


class UnplacedItem(QFrame):
    """One unplaced file: its name, side and view choosers and a Place button."""

    place = Signal(object, str, str)  # path, laterality, view

    def __init__(self, path: Path, placement: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = path
        self.setObjectName("UnplacedItem")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.name = QLabel(path.name)
        self.name.setToolTip(f"{path}\n{_rule_text(placement)}")
        self.side = QComboBox()
        self.side.addItems(SIDES)
        self.view = QComboBox()
        self.view.addItems(VIEWS)
        if placement is not None:
            self.side.setCurrentText(placement.laterality or "?")
            self.view.setCurrentText(placement.view or "?")
        self.button = QPushButton("Place")
        self.button.clicked.connect(self._emit)
        self.side.currentTextChanged.connect(self._update)
        self.view.currentTextChanged.connect(self._update)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        for widget in (self.name, self.side, self.view, self.button):
            row.addWidget(widget)
        self._update()

    def _update(self) -> None:
        self.button.setEnabled(self.side.currentText() != "?" and self.view.currentText() != "?")

    def _emit(self) -> None:
        self.place.emit(self.path, self.side.currentText(), self.view.currentText())


class ImageStrip(QScrollArea):
    placeRequested = Signal(object, str, str)  # path, laterality ('L'/'R'), view ('CC', ...)
    extraRequested = Signal(str)  # view key of an extra image

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setWidgetResizable(True)
        self.setFixedHeight(48)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.items: list[UnplacedItem] = []
        self.extra_buttons: dict[str, QPushButton] = {}
        state.studyChanged.connect(lambda _s: self.rebuild())
        state.viewsChanged.connect(lambda _v: self.rebuild())
        self.rebuild()

    def rebuild(self) -> None:
        study = self.state.study
        unplaced = list(getattr(study, "unplaced", None) or []) if study is not None else []
        placements = getattr(study, "placements", None) or {}
        extras = [k for k in self.state.views if k not in SCREENING_KEYS]
        content = QWidget()
        row = QHBoxLayout(content)
        row.setContentsMargins(4, 2, 4, 2)
        self.items, self.extra_buttons = [], {}
        if unplaced:
            row.addWidget(QLabel(f"Unplaced ({len(unplaced)}):"))
            for path in unplaced:
                item = UnplacedItem(Path(path), placements.get(Path(path)))
                item.place.connect(self.placeRequested.emit)
                row.addWidget(item)
                self.items.append(item)
        if extras:
            row.addWidget(QLabel("Extra views:"))
            for key in extras:
                button = QPushButton(key)
                button.setToolTip(_rule_text(self.state.views[key].placement))
                button.clicked.connect(lambda _=False, k=key: self.extraRequested.emit(k))
                row.addWidget(button)
                self.extra_buttons[key] = button
        row.addStretch(1)
        self.setWidget(content)
        self.setVisible(bool(unplaced or extras))
