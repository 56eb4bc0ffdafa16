"""Predicted BI-RADS (0-6) and breast density (1-4) as bar charts, study level by default,
per side or per view on demand. Research use only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from .state import AppState

BIRADS_LABELS = ["0", "1", "2", "3", "4", "5", "6"]
DENSITY_LABELS = ["A", "B", "C", "D"]  # tissueden 1-4
DENSITY_NAMES = ["almost entirely fatty", "scattered fibroglandular", "heterogeneously dense", "extremely dense"]
BAR_COLOUR = "#6fa8dc"
TOP_COLOUR = "#f6b26b"


class BarChart(pg.PlotWidget):
    """Probabilities as bars; the most probable class is highlighted."""

    def __init__(self, title: str, labels: list[str], parent: QWidget | None = None):
        super().__init__(parent, background="#202225")
        self.labels = labels
        self.setTitle(title, color="#dddddd", size="10pt")
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.getPlotItem().setMenuEnabled(False)
        self.setYRange(0, 1, padding=0.02)
        self.setXRange(-0.6, len(labels) - 0.4, padding=0)
        self.getAxis("bottom").setTicks([list(enumerate(labels))])
        self.setMinimumHeight(140)
        self.bars: pg.BarGraphItem | None = None
        self.values = np.zeros(len(labels))

    def set_values(self, values: np.ndarray | None) -> None:
        if self.bars is not None:
            self.removeItem(self.bars)
            self.bars = None
        if values is None:
            self.values = np.zeros(len(self.labels))
            return
        self.values = np.asarray(values, dtype=float).reshape(-1)[: len(self.labels)]
        brushes = [pg.mkBrush(TOP_COLOUR if i == int(np.argmax(self.values)) else BAR_COLOUR)
                   for i in range(len(self.values))]
        self.bars = pg.BarGraphItem(x=np.arange(len(self.values)), height=self.values, width=0.7, brushes=brushes)
        self.addItem(self.bars)


class PredictionsPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.scope = QComboBox()
        self.model_label = QLabel("—")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.birads = BarChart("BI-RADS", BIRADS_LABELS)
        self.density = BarChart("Density", DENSITY_LABELS)
        notice = QLabel("Research use only — not for diagnosis")
        notice.setObjectName("Notice")
        form = QFormLayout()
        form.addRow("Model", self.model_label)
        form.addRow("Show", self.scope)
        layout = QVBoxLayout(self)
        layout.addWidget(notice)
        layout.addLayout(form)
        layout.addWidget(self.birads)
        layout.addWidget(self.density)
        layout.addWidget(self.summary)
        self.prior_summary = QLabel("")  # the prior study's most probable classes (comparison)
        self.prior_summary.setWordWrap(True)
        layout.addWidget(self.prior_summary)
        state.priorChanged.connect(lambda prior: self._on_prior(prior))
        state.priorPredictionChanged.connect(lambda _p: self._on_prior(self.state.prior))
        self.scope.currentIndexChanged.connect(lambda _i: self._show())
        state.predictionChanged.connect(self._on_prediction)
        state.predictorChanged.connect(self._on_predictor)
        self._on_predictor(state.predictor)

    def _on_predictor(self, predictor: Any | None) -> None:
        if predictor is None:
            self.model_label.setText("no model loaded")
        else:
            self.model_label.setText(f"{getattr(predictor, 'name', '?')} · {getattr(predictor, 'method', '?')}")

    def _on_prediction(self, prediction: Any | None) -> None:
        keep = self.scope.currentText()
        self.scope.blockSignals(True)
        self.scope.clear()
        if prediction is not None:
            self.scope.addItem("Study")
            self.scope.addItems([f"Side {k}" for k in sorted(prediction.sides)])
            self.scope.addItems([f"View {k}" for k in prediction.views])
            index = self.scope.findText(keep)
            self.scope.setCurrentIndex(max(index, 0))
            self.model_label.setText(f"{prediction.model_name} · {prediction.method}")
        self.scope.blockSignals(False)
        self._show()

    def selected(self) -> tuple[np.ndarray, np.ndarray] | None:
        p = self.state.prediction
        if p is None:
            return None
        scope = self.scope.currentText()
        if scope.startswith("Side "):
            v = p.sides[scope[5:]]
            return v.birads, v.density
        if scope.startswith("View "):
            v = p.views[scope[5:]]
            return v.birads, v.density
        return p.birads, p.density

    def _show(self) -> None:
        sel = self.selected()
        self.birads.set_values(None if sel is None else sel[0])
        self.density.set_values(None if sel is None else sel[1])
        if sel is None:
            self.summary.setText("No prediction yet." if self.state.predictor else "")
            return
        b, d = int(np.argmax(sel[0])), int(np.argmax(sel[1]))
        self.summary.setText(f"Most probable: BI-RADS {b} ({sel[0][b]:.0%}), density {DENSITY_LABELS[d]} — "
                             f"{DENSITY_NAMES[d]} ({sel[1][d]:.0%})")


    def _on_prior(self, prior: Any | None) -> None:
        prediction = self.state.predictions.get(prior.uid) if prior is not None else None
        if prior is None:
            self.prior_summary.setText("")
        elif prediction is None:
            self.prior_summary.setText(f"Prior ({prior.date or '?'}): no prediction yet.")
        else:
            density, birads = short_prediction(prediction)
            self.prior_summary.setText(f"Prior ({prior.date or '?'}): BI-RADS {birads}, density {density}")


def short_prediction(prediction: Any | None) -> tuple[str, str]:
    """(density, BI-RADS) text for the worklist columns."""
    if prediction is None:
        return "", ""
    d, b = int(np.argmax(prediction.density)), int(np.argmax(prediction.birads))
    return f"{DENSITY_LABELS[d]} ({prediction.density[d]:.0%})", f"{b} ({prediction.birads[b]:.0%})"
