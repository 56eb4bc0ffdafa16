"""Early stopping on validation balanced accuracy, keeping the best state seen."""

from __future__ import annotations

import copy
from typing import Any


class EarlyStopping:
    """Tracks the best validation balanced accuracy (ties: the lower validation loss wins)
    and a copy of the state that produced it; `should_stop` after `patience` validations
    without improvement."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_bacc: float | None = None
        self.best_loss = float("inf")
        self.best_state: Any = None
        self.best_step = 0
        self.bad_rounds = 0

    def update(self, bacc: float, loss: float, step: int, state: Any) -> bool:
        """Record one validation; returns True when it is the new best."""
        better = self.best_bacc is None or bacc > self.best_bacc + 1e-9 or (
            abs(bacc - self.best_bacc) <= 1e-9 and loss < self.best_loss)
        if better:
            self.best_bacc, self.best_loss, self.best_step = bacc, loss, step
            self.best_state = copy.deepcopy(state)
            self.bad_rounds = 0
        else:
            self.bad_rounds += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.bad_rounds >= self.patience
