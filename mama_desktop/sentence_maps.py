"""Live sentence maps: free text in, one similarity map set per sentence out, updated while
the user types (150 ms debounce, stale requests dropped: latest wins).

Display rules (docs/desktop.md): one colour map whose alpha ramps up from 0, an absolute scale
(SimilarityMaps.value_range, never per-map min-max) shown on a colour bar with the model's
"no match" threshold marked, and a "no match" state for maps whose maximum is below it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from . import engine
from .controllers import describe_error
from .hanging import PRIOR
from .state import AppState
from .workers import LatestOnly, TaskRunner

DEBOUNCE_MS = 150
COLOUR_MAPS = ["inferno", "viridis", "plasma", "magma", "turbo", "CET-L4"]


def split_sentences(text: str) -> list[str]:
    """One sentence per line, and lines split after '.' or ';' (the engine's sentence ends)."""
    out: list[str] = []
    for line in text.splitlines():
        for part in re.split(r"(?<=[.;])\s+", line.strip()):
            part = part.strip()
            if part and any(ch.isalnum() for ch in part):
                out.append(part)
    return out


def heat_lut(name: str, threshold_pos: float = 0.0) -> np.ndarray:
    """[256, 4] uint8 RGBA: the colour map with an alpha ramp that starts at 0.

    `threshold_pos` (0-1 along the scale) is where the ramp starts, so values below the
    model's "no match" threshold are fully transparent."""
    cmap = pg.colormap.get(name)
    lut = np.asarray(cmap.getLookupTable(0.0, 1.0, 256, alpha=True), dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    start = float(np.clip(threshold_pos, 0.0, 0.95))
    alpha = np.clip((x - start) / (1.0 - start), 0.0, 1.0) ** 0.8
    lut[:, 3] = alpha * 255.0
    return np.round(lut).astype(np.uint8)


def threshold_position(threshold: float, value_range: tuple[float, float]) -> float:
    lo, hi = value_range
    return float((threshold - lo) / (hi - lo)) if hi > lo else 0.0


@dataclass
class MapDisplay:
    """What the hanging protocol should draw for the selected sentence."""

    per_view: dict[str, np.ndarray | None]
    badges: dict[str, str]
    lut: np.ndarray
    levels: tuple[float, float]
    opacity: float
    sample: Callable[[str, int, int], float] | None = None  # (pane key, row, col) -> native-pixel value


def view_display(maps: Any, index: int, visible: bool, prefix: str = "") -> tuple[dict[str, np.ndarray | None], dict[str, str]]:
    """Per-view map grid for sentence `index` (drawn stretched over its view) and the per-view
    badge ('no match' when the map's peak is below the threshold); keys get `prefix` (the
    prior's panes are 'prior:RCC', ...)."""
    per_view: dict[str, np.ndarray | None] = {}
    badges: dict[str, str] = {}
    for key, stack in maps.grids.items():
        if index >= stack.shape[0]:
            continue
        if not maps.matches(key, index):
            per_view[prefix + key], badges[prefix + key] = None, "no match"
        else:
            per_view[prefix + key] = stack[index] if visible else None
    return per_view, badges


class ColourBar(pg.PlotWidget):
    """A vertical colour bar on the absolute similarity scale, with the threshold marked."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="#202225")
        self.setFixedWidth(86)
        self.setMinimumHeight(150)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.getPlotItem().hideAxis("bottom")
        self.getPlotItem().setMenuEnabled(False)
        self.bar = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.bar)
        self.line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#ffffff", width=2, style=Qt.PenStyle.DashLine))
        self.addItem(self.line)
        self.value_range = (0.0, 1.0)
        self.threshold = 0.0

    def set_scale(self, lut: np.ndarray, value_range: tuple[float, float], threshold: float) -> None:
        lo, hi = value_range
        self.value_range, self.threshold = (lo, hi), threshold
        ramp = np.linspace(lo, hi, 256, dtype=np.float32)[:, None].repeat(2, axis=1)
        self.bar.setImage(ramp, autoLevels=False, levels=(lo, hi))
        self.bar.setLookupTable(lut)
        self.bar.setRect(0, lo, 1, hi - lo)
        self.line.setValue(threshold)
        self.setRange(xRange=(0, 1), yRange=(lo, hi), padding=0)


class MapsController(QObject):
    """Debounces sentence edits and computes maps in a worker; the latest request wins."""

    busyChanged = Signal(bool)
    failed = Signal(str)

    def __init__(self, state: AppState, runner: TaskRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.latest = LatestOnly(runner, self)
        self.latest.result.connect(self._on_result)
        self.latest.error.connect(self._on_error)
        self.latest.busyChanged.connect(self.busyChanged.emit)
        self.timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS, timeout=self.compute)
        state.sentencesChanged.connect(lambda _s: self.timer.start())
        state.viewsChanged.connect(lambda _v: self.timer.start())
        state.priorViewsChanged.connect(lambda v: self.timer.start() if v else None)
        state.predictorChanged.connect(lambda _p: self.timer.start())
        state.studyChanged.connect(lambda _s: self.latest.cancel())

    def compute(self) -> None:
        study, predictor, sentences = self.state.study, self.state.predictor, list(self.state.sentences)
        if study is None or predictor is None or not sentences or not self.state.views:
            self.latest.cancel()
            self.state.set_maps(None)
            self.state.set_prior_maps(None)
            return
        prior = self.state.prior if self.state.prior_views else None
        self.latest.submit(lambda: (predictor.similarity_maps(study, sentences),
                                    predictor.similarity_maps(prior, sentences) if prior is not None else None))

    def _on_result(self, _request: int, result: tuple[Any, Any]) -> None:
        """Current and prior maps of one request (both or neither: the same sentences)."""
        current, prior = result
        self.state.prior_maps = prior  # shown together with the current maps, one refresh
        self.state.set_maps(current)

    def _on_error(self, _request: int, exc: BaseException) -> None:
        message, _details = describe_error(exc)
        self.failed.emit(message)


class SentenceMapsPanel(QWidget):
    """Text box, presets, sentence selector, display options and the colour bar."""

    displayChanged = Signal(object)  # MapDisplay

    def __init__(self, state: AppState, controller: MapsController, parent: QWidget | None = None):
        super().__init__(parent)
        self.state, self.controller = state, controller
        self.text = QPlainTextEdit(placeholderText="Type sentences, one per line — e.g. A mass is present in the breast.")
        self.text.setMaximumHeight(110)
        self.presets = QComboBox()
        self.presets.addItem("Presets…")
        self.presets.addItems(engine.preset_sentences())
        self.selector = QComboBox()
        self.cmap = QComboBox()
        self.cmap.addItems(COLOUR_MAPS)
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=70)
        self.show_maps = QCheckBox("Show maps", checked=True)
        self.status = QLabel("")
        self.status.setObjectName("Muted")
        self.colour_bar = ColourBar()
        self._build_layout()
        self.text.textChanged.connect(self._on_text)
        self.presets.activated.connect(self._on_preset)
        for signal in (self.selector.currentIndexChanged, self.cmap.currentIndexChanged,
                       self.opacity.valueChanged, self.show_maps.toggled):
            signal.connect(self.refresh)
        state.mapsChanged.connect(self._on_maps)
        state.predictorChanged.connect(lambda _p: self._update_status())
        controller.busyChanged.connect(lambda busy: self._update_status(busy))
        controller.failed.connect(lambda msg: self.status.setText(f"Maps failed: {msg}"))

    def _build_layout(self) -> None:
        form = QFormLayout()
        form.addRow("Sentence", self.selector)
        form.addRow("Colour map", self.cmap)
        form.addRow("Opacity", self.opacity)
        form.addRow("", self.show_maps)
        left = QVBoxLayout()
        left.addWidget(self.text)
        left.addWidget(self.presets)
        left.addLayout(form)
        left.addWidget(self.status)
        left.addStretch(1)
        bar = QVBoxLayout()
        bar.addWidget(QLabel("cosine"), 0, Qt.AlignmentFlag.AlignHCenter)
        bar.addWidget(self.colour_bar, 1)
        legend = QLabel("- - - no match\nbelow the line")
        legend.setObjectName("Muted")
        bar.addWidget(legend)
        row = QHBoxLayout(self)
        row.addLayout(left, 1)
        row.addLayout(bar)

    # ----- input ---------------------------------------------------------------------------
    def set_text(self, text: str) -> None:
        self.text.setPlainText(text)

    def _on_text(self) -> None:
        self.state.set_sentences(split_sentences(self.text.toPlainText()))

    def _on_preset(self, index: int) -> None:
        if index <= 0:
            return
        sentence = self.presets.itemText(index)
        current = self.text.toPlainText().rstrip()
        self.text.setPlainText(f"{current}\n{sentence}" if current else sentence)
        self.presets.setCurrentIndex(0)

    # ----- output --------------------------------------------------------------------------
    def _on_maps(self, maps: Any) -> None:
        self.selector.blockSignals(True)
        keep = self.selector.currentIndex()
        self.selector.clear()
        if maps is not None:
            self.selector.addItems([f"{i + 1}. {s}" for i, s in enumerate(maps.sentences)])
            self.selector.setCurrentIndex(min(max(keep, 0), len(maps.sentences) - 1))
        self.selector.blockSignals(False)
        self._update_status()
        self.refresh()

    def current_display(self) -> MapDisplay | None:
        maps = self.state.maps
        if maps is None:
            return None
        lo, hi = (float(v) for v in maps.value_range)
        lut = heat_lut(self.cmap.currentText(), threshold_position(float(maps.threshold), (lo, hi)))
        index, visible = max(self.selector.currentIndex(), 0), self.show_maps.isChecked()
        per_view, badges = view_display(maps, index, visible)
        prior = self.state.prior_maps
        if prior is not None and prior.sentences == maps.sentences:
            more, more_badges = view_display(prior, index, visible, prefix=PRIOR)
            per_view.update(more)
            badges.update(more_badges)

        def sample(key: str, row: int, col: int) -> float:
            source = prior if key.startswith(PRIOR) else maps
            return source.value_at(key.removeprefix(PRIOR), index, row, col)

        return MapDisplay(per_view, badges, lut, (lo, hi), self.opacity.value() / 100.0, sample)

    def refresh(self) -> None:
        display = self.current_display()
        if display is not None:
            self.colour_bar.set_scale(display.lut, display.levels, float(self.state.maps.threshold))
        self.displayChanged.emit(display)

    def _update_status(self, busy: bool = False) -> None:
        if self.state.predictor is None:
            self.status.setText("Load a model (Settings) to compute maps.")
        elif busy:
            self.status.setText("Computing maps…")
        elif self.state.maps is not None:
            lo, hi = self.state.maps.value_range
            self.status.setText(f"Scale {lo:+.2f} … {hi:+.2f} (absolute); no match below "
                                f"{self.state.maps.threshold:+.2f}")
        else:
            self.status.setText("")
