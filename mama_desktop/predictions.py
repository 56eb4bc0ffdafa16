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
GREY_COLOUR = "#5f6368"  # bars of images outside the model's experience
OOD_STYLE = "background: #b45f06; color: white; font-weight: bold; padding: 3px; border-radius: 3px;"


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

    def set_values(self, values: np.ndarray | None, greyed: bool = False) -> None:
        if self.bars is not None:
            self.removeItem(self.bars)
            self.bars = None
        if values is None:
            self.values = np.zeros(len(self.labels))
            return
        self.values = np.asarray(values, dtype=float).reshape(-1)[: len(self.labels)]
        top = int(np.argmax(self.values))
        brushes = [pg.mkBrush(GREY_COLOUR if greyed else (TOP_COLOUR if i == top else BAR_COLOUR))
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
        self.ood_badge = QLabel("")  # out-of-distribution badge (mama_core.inference.ood)
        self.ood_badge.setWordWrap(True)
        self.ood_badge.setStyleSheet(OOD_STYLE)
        self.ood_badge.hide()
        self.model_notice = QLabel("")  # what the model is (e.g. the demo model's notice)
        self.model_notice.setWordWrap(True)
        self.model_notice.setObjectName("Muted")
        self.model_notice.hide()
        form = QFormLayout()
        form.addRow("Model", self.model_label)
        form.addRow("Show", self.scope)
        layout = QVBoxLayout(self)
        layout.addWidget(notice)
        layout.addLayout(form)
        layout.addWidget(self.ood_badge)
        layout.addWidget(self.model_notice)
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

    def selected_ood(self) -> Any | None:
        """The OOD verdict of what is shown: the study's, one view's, or a side's (its most
        unusual view); None when the prediction carries none."""
        p = self.state.prediction
        if p is None:
            return None
        scope = self.scope.currentText()
        if scope.startswith("View "):
            return getattr(p.views[scope[5:]], "ood", None)
        if scope.startswith("Side "):
            members = [v.ood for k, v in p.views.items() if k[:1] == scope[5:] and getattr(v, "ood", None)]
            flagged = [o for o in members if o.flagged]
            return flagged[0] if flagged else (members[0] if members else None)
        return getattr(p, "ood", None)

    def _show_trust(self) -> bool:
        """Badge and notice for the current selection; True when the bars must be greyed."""
        p, ood = self.state.prediction, self.selected_ood()
        notice = getattr(p, "notice", None) if p is not None else None
        self.model_notice.setText(f"Note — {notice}" if notice else "")  # no symbol glyph: fonts lack it
        self.model_notice.setVisible(bool(notice))
        flagged = bool(ood is not None and ood.flagged)
        if flagged:
            views = getattr(ood, "views_flagged", None)
            which = f" ({', '.join(views)})" if views else ""
            self.ood_badge.setText(f"⚠ Outside this model's experience{which}: these images are unlike the ones "
                                   f"it was fitted to, so its probabilities do not apply "
                                   f"(score {ood.score:.3f} > threshold {ood.threshold:.3f}).")
        elif ood is not None and ood.flagged is None:
            self.ood_badge.setText("Out-of-distribution check unavailable: this model has no statistics for it.")
        self.ood_badge.setStyleSheet(OOD_STYLE if flagged else "")
        self.ood_badge.setObjectName("" if flagged else "Muted")
        self.ood_badge.setVisible(ood is not None and (flagged or ood.flagged is None))
        return flagged

    def _show(self) -> None:
        sel = self.selected()
        greyed = self._show_trust()
        self.birads.set_values(None if sel is None else sel[0], greyed)
        self.density.set_values(None if sel is None else sel[1], greyed)
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
