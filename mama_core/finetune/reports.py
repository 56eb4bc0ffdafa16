"""The small report a fine-tuning run yields at every stage (docs/method.md §8.3: long jobs are
generators of reports; the CLI prints them, the GUI dialog shows them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PHASES = ("features", "train", "validate", "compare", "save", "done")


@dataclass
class FinetuneReport:
    phase: str  # one of PHASES
    step: int = 0  # progress within the phase (optimiser steps in 'train', images in 'features')
    total_steps: int = 0
    loss: float | None = None
    val_bacc: float | None = None  # latest validation balanced accuracy
    eta_s: float | None = None  # seconds left in this phase, None when unknown
    message: str = ""
    elapsed_s: float = 0.0  # since the run started
    best_val_bacc: float | None = None
    comparison: dict[str, Any] | None = None  # final report only
    version_id: str | None = None  # final report only, when a version was registered
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "step": self.step, "total_steps": self.total_steps,
            "loss": self.loss, "val_bacc": self.val_bacc, "best_val_bacc": self.best_val_bacc,
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "elapsed_s": round(self.elapsed_s, 2), "message": self.message,
            "comparison": self.comparison, "version_id": self.version_id,
            "cancelled": self.cancelled, **({"extra": self.extra} if self.extra else {}),
        }


class Clock:
    """Elapsed time of the run and a linear ETA within a phase."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.phase_start = self.start

    def new_phase(self) -> None:
        self.phase_start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self, done: int, total: int) -> float | None:
        if done <= 0 or total <= 0:
            return None
        spent = time.perf_counter() - self.phase_start
        return spent / done * max(0, total - done)
