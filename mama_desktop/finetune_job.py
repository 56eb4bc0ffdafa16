"""The fine-tuning job as the desktop sees it, without Qt: what to run, what the child says,
where it stands.

The dialog runs `python -m mama_core.cli finetune ... --json` in a child process (docs/method.md §3).
The child prints one `FinetuneReport.to_json()` per line, then a summary line
`{"summary": true, "version_id", "cancelled", "comparison", ...}`. This module builds that
command line (`FinetuneRequest`), splits and classifies the output (`JsonLines`, `classify`),
measures the time per step to give an ETA (`StepTimer`), keeps the curve's points
(`CurvePoints`) and the run's state (`FinetuneJob`: idle, running, cancelling, cancelled,
failed, done). Defaults come from the engine's `FinetuneConfig`; none is declared here.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mama_core.errors import ConfigError

from . import engine
from .finetune_inputs import config_default

# Phases in which a kill leaves nothing behind; 'save' publishes the version by one rename.
CANCELLABLE_PHASES = ("features", "train", "validate", "compare")
PHASE_NAMES = {"features": "Extracting image features", "train": "Training", "validate": "Training",
               "compare": "Comparing with the active model", "save": "Registering the new version",
               "done": "Finished"}
ESTIMATING = "estimating…"


# ----- the request ------------------------------------------------------------------------------
@dataclass
class FinetuneRequest:
    """What the dialog asks `mama finetune` to do; `cli_args()` is its command line. The choices
    are checked by the engine's own `FinetuneConfig`."""

    data: str
    task: str = field(default_factory=lambda: config_default("task"))
    mode: str = field(default_factory=lambda: config_default("mode"))
    labels: str | None = None
    model: str = field(default_factory=lambda: config_default("base_model"))
    max_steps: int | None = None
    device: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("choose the cases to fine-tune on", field="data")
        device = None if self.device == "auto" else self.device
        engine.FinetuneConfig(task=self.task, mode=self.mode, base_model=self.model, max_steps=self.max_steps,
                              device=device)

    def cli_args(self) -> list[str]:
        args = ["--data", self.data, "--task", self.task, "--mode", self.mode, "--model", self.model]
        if self.labels:
            args += ["--labels", self.labels]
        if self.max_steps:
            args += ["--max-steps", str(self.max_steps)]
        if self.device and self.device != "auto":
            args += ["--device", self.device]
        return args + list(self.extra_args)

    def command(self) -> tuple[str, list[str]]:
        """(program, arguments) of the child process."""
        return engine.finetune_command(self.cli_args())


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# ----- the child's output -----------------------------------------------------------------------
class JsonLines:
    """Splits a byte stream into lines; JSON objects are parsed, anything else is text."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[dict | str]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [self._parse(line) for line in lines if line.strip()]

    def flush(self) -> list[dict | str]:
        rest, self._buffer = self._buffer, b""
        return [self._parse(rest)] if rest.strip() else []

    @staticmethod
    def _parse(line: bytes) -> dict | str:
        text = line.decode("utf-8", errors="replace").strip()
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return value if isinstance(value, dict) else text


def last_console_segment(text: str) -> str:
    """tqdm-style output rewrites one line with carriage returns; keep what was last shown."""
    return text.rstrip("\r").split("\r")[-1].strip()


def classify(item: dict | str) -> tuple[str, dict | str]:
    """('summary' | 'report' | 'log', payload): a report needs a phase name; any other line,
    JSON or not, is a message to show."""
    if isinstance(item, dict):
        if item.get("summary") is True:
            return "summary", item
        if isinstance(item.get("phase"), str):
            return "report", item
        item = json.dumps(item)
    return "log", item


def was_cancelled(item: dict) -> bool:
    """The engine's cancel marker (`cancelled`, or `stopped` in other report types)."""
    return bool(item.get("cancelled") or item.get("stopped"))


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ----- measured ETA and curve points ------------------------------------------------------------
class StepTimer:
    """Seconds per step, measured: the average over the last `window` steps of the reports'
    elapsed times. A new phase or stage (steps counting again from 1) starts a new measurement."""

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.reset()

    def reset(self, key: Any = None) -> None:
        self._key = key
        self._points: deque[tuple[int, float]] = deque(maxlen=self.window + 1)

    def add(self, key: Any, step: int, elapsed: float | None) -> None:
        if key != self._key or (self._points and step < self._points[-1][0]):
            self.reset(key)
        if elapsed is None or (self._points and step <= self._points[-1][0]):
            return  # a repeated step (the early-stop notice) measures nothing
        self._points.append((step, elapsed))

    def seconds_per_step(self) -> float | None:
        if len(self._points) < 2:
            return None
        (s0, t0), (s1, t1) = self._points[0], self._points[-1]
        return (t1 - t0) / (s1 - s0) if s1 > s0 else None

    def eta(self, step: int, total: int) -> float | None:
        rate = self.seconds_per_step()
        return None if rate is None or total <= 0 else rate * max(0, total - step)


class CurvePoints:
    """Training loss and validation bACC against the optimiser step, for the live plot."""

    def __init__(self) -> None:
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.bacc_x: list[float] = []
        self.bacc_y: list[float] = []
        self._offset, self._last_step, self._stage = 0, 0, None

    def add(self, report: dict) -> bool:
        """True when a point was added."""
        if report.get("phase") not in ("train", "validate"):
            return False
        x = self._x(report)
        # Each step reports once, as 'train' or (when it validated) 'validate', both with the
        # step's training loss; a repeated step (the early-stop notice) adds no new point.
        added = self._append(self.loss_x, self.loss_y, x, _float(report.get("loss")))
        return self._append(self.bacc_x, self.bacc_y, x, _float(report.get("val_bacc"))) or added

    @staticmethod
    def _append(xs: list[float], ys: list[float], x: float, y: float | None) -> bool:
        if y is None or (xs and x == xs[-1]):
            return False
        xs.append(x)
        ys.append(y)
        return True

    def _x(self, report: dict) -> float:
        # LoRA/full first fit a head, then the encoder: steps restart, the x axis continues.
        stage = (report.get("extra") or {}).get("stage")
        step = _int(report.get("step"))
        if stage != self._stage and self._last_step and step < self._last_step:
            self._offset += self._last_step
        self._stage, self._last_step = stage, step
        return float(self._offset + step)


# ----- the run ----------------------------------------------------------------------------------
class JobState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    DONE = "done"


@dataclass
class Progress:
    """What the progress line shows after a report: bar (maximum 0 = busy), phase and ETA."""

    value: int
    maximum: int
    text: str
    eta: str


class FinetuneJob:
    """One run's state; the dialog feeds it what the process says and shows what it returns."""

    def __init__(self) -> None:
        self.state = JobState.IDLE
        self.reset()

    def reset(self) -> None:
        self.phase: str | None = None
        self.version_id: str | None = None
        self.comparison: dict | None = None
        self.exit_code: int | None = None
        self.engine_cancelled = False
        self.timer = StepTimer()
        self.curve = CurvePoints()

    @property
    def running(self) -> bool:
        return self.state in (JobState.RUNNING, JobState.CANCELLING)

    @property
    def can_cancel(self) -> bool:
        return self.state == JobState.RUNNING and self.phase in (None, *CANCELLABLE_PHASES)

    def start(self, request: FinetuneRequest) -> tuple[str, list[str]]:
        if self.running:
            raise ConfigError("a fine-tuning run is already going", field="state")
        self.reset()
        self.state = JobState.RUNNING
        return request.command()

    def on_report(self, report: dict) -> Progress:
        self.phase = report.get("phase")
        self.engine_cancelled |= was_cancelled(report)
        step, total = _int(report.get("step")), _int(report.get("total_steps"))
        bucket = "train" if self.phase == "validate" else self.phase
        self.timer.add((bucket, (report.get("extra") or {}).get("stage")), step, _float(report.get("elapsed_s")))
        self.curve.add(report)
        if total:
            return Progress(min(step, total), total, self._phase_text(report, step, total), self._eta(step, total))
        busy = self.phase in ("compare", "save")
        return Progress(0, 0 if busy else 1, self._phase_text(report, step, total), "")

    def _eta(self, step: int, total: int) -> str:
        if step >= total:
            return ""
        seconds = self.timer.eta(step, total)
        return ESTIMATING if seconds is None else f"about {format_duration(seconds)} left in this phase"

    @staticmethod
    def _phase_text(report: dict, step: int, total: int) -> str:
        text = PHASE_NAMES.get(report.get("phase"), str(report.get("phase")))
        if total:
            text += f" — {step}/{total}"
        loss, best = _float(report.get("loss")), _float(report.get("best_val_bacc"))
        if loss is not None:
            text += f" — loss {loss:.4f}"
        if best is not None:
            text += f" — best val bACC {best:.3f}"
        return text

    def on_summary(self, summary: dict) -> bool:
        """True when the run registered a version with a comparison to show."""
        self.engine_cancelled |= was_cancelled(summary)
        self.version_id = summary.get("version_id") or None
        self.comparison = summary.get("comparison") if isinstance(summary.get("comparison"), dict) else None
        return bool(self.version_id and self.comparison)

    def request_cancel(self) -> bool:
        """True when the process should be stopped now (not too late, not already asked)."""
        if not self.can_cancel:
            return False
        self.state = JobState.CANCELLING
        return True

    def finish(self, code: int, killed_by_user: bool = False) -> JobState:
        self.exit_code = code
        if killed_by_user or self.state == JobState.CANCELLING or self.engine_cancelled:
            self.state = JobState.CANCELLED
        elif code == 0 and self.version_id:
            self.state = JobState.DONE
        else:
            self.state = JobState.FAILED
        return self.state

    def status_text(self) -> str:
        return {JobState.IDLE: "Not started", JobState.RUNNING: "Starting the fine-tuning process…",
                JobState.CANCELLING: "Cancelling…",
                JobState.CANCELLED: "Cancelled — nothing was registered; the active model is unchanged",
                JobState.DONE: f"Finished — new version {self.version_id}",
                JobState.FAILED: f"Failed (exit code {self.exit_code}) — see the messages below"}[self.state]
