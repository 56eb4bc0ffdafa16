"""The live training plot of the fine-tune dialog (points kept by `finetune_job.CurvePoints`)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from .finetune_job import CurvePoints


class TrainingCurve(pg.PlotWidget):
    """Training loss and validation balanced accuracy against the optimiser step."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="#17191c")
        self.setMinimumHeight(150)
        self.addLegend(offset=(-10, 10))
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("bottom", "step")
        self.loss = self.plot([], [], pen=pg.mkPen("#f6b26b", width=1.5), name="training loss")
        self.bacc = self.plot([], [], pen=pg.mkPen("#6fa8dc", width=2), symbol="o", symbolSize=5,
                              symbolBrush="#6fa8dc", name="validation bACC")
        self.points = CurvePoints()

    def show_points(self, points: CurvePoints) -> None:
        """Plot `points` (the run's; a new run brings new ones)."""
        self.points = points
        self.loss.setData(points.loss_x, points.loss_y)
        self.bacc.setData(points.bacc_x, points.bacc_y)
