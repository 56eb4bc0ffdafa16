"""The one progress display of the `mama` command line (all long jobs use it).

Progress always goes to stderr, so stdout carries only results (and, with `--json`, only
JSON). Three behaviours, chosen once per job:

- stderr is a terminal: a live single-line bar (rich) with done/total, rate and ETA;
- stderr is a file or a pipe (logs, CI): a plain line every `interval` seconds and at the
  end of each phase, so a log shows that the job moves without a line per item;
- `--json` (enabled=False): nothing at all.

A job with several phases (features, then training, ...) calls `update` with a new
description or total; the rate and ETA then restart for that phase.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from rich.console import Console
from rich.table import Column
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

PLAIN_INTERVAL_S = 10.0


def format_duration(seconds: float | None) -> str:
    """4.2 s, 12:05, 3:04:05 (m:ss past a minute, h:mm:ss past an hour); '?' when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rate: float | None, unit: str) -> str:
    if not rate:
        return f"? {unit}/s"
    if rate < 1:
        return f"{1 / rate:.1f} s/{unit.rstrip('s')}"
    return f"{rate:.1f} {unit}/s"


class _CountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:  # a job that cannot count its work: the pulsing bar and the time say enough
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(format_rate(task.speed, task.fields.get("unit", "items")), style="progress.data.speed")


class _InfoColumn(ProgressColumn):
    """Free text; its column is the only one that may shrink, and the text is cut, not wrapped."""

    def render(self, task: Task) -> Text:
        return Text(task.fields.get("info", ""), no_wrap=True, overflow="ellipsis")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        if task.finished:
            return Text("done", style="progress.remaining")
        return Text(f"ETA {format_duration(task.time_remaining)}", style="progress.remaining")


class JobProgress:
    """Progress of one command's long job; use as a context manager.

    `update(done, total=None, description=None, info=None)` after each unit of work; `info`
    is a short free text shown after the numbers (e.g. "loss 0.4213")."""

    def __init__(self, description: str, total: int | None = None, unit: str = "items", *,
                 enabled: bool = True, stream: IO[str] | None = None, interval: float = PLAIN_INTERVAL_S):
        self.description, self.total, self.unit = description, total, unit
        self.enabled, self.interval = enabled, interval
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.info = ""
        self._live: Progress | None = None
        self._task: Any = None
        self._phase_start = time.monotonic()
        self._phase_done0 = 0
        self._last_plain = None  # monotonic time of the last plain line
        self._plain_pending = False

    # ---- context manager
    def __enter__(self) -> "JobProgress":
        if self.enabled and _is_terminal(self.stream):
            # On a narrow terminal the free text is cut first; the numbers never wrap.
            fixed = dict(table_column=Column(no_wrap=True))
            self._live = Progress(
                TextColumn("[progress.description]{task.description}", **fixed), BarColumn(bar_width=24),
                _CountColumn(**fixed), _RateColumn(**fixed), _EtaColumn(**fixed), TimeElapsedColumn(**fixed),
                _InfoColumn(),
                console=Console(file=self.stream), transient=False, refresh_per_second=8)
            self._live.start()
            self._task = self._live.add_task(self.description, total=self.total, unit=self.unit, info="")
        elif self.enabled and self.total is None:
            self.message(f"{self.description} ...")  # plain mode: a job that may never report a count
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def live(self) -> bool:
        """True when a terminal bar is shown (else plain lines or nothing)."""
        return self._live is not None

    # ---- updates
    def update(self, done: int, total: int | None = None, description: str | None = None,
               info: str | None = None, unit: str | None = None) -> None:
        # A new phase: another description, or another total once one was known (a first
        # total only completes the phase the job started with).
        new_phase = (description is not None and description != self.description) or \
                    (total is not None and self.total is not None and total != self.total)
        if new_phase:
            self._finish_plain_phase()
            self.description = description or self.description
            # The rate counts from this first report of the phase (its work started unseen).
            self._phase_start, self._phase_done0, self._last_plain = time.monotonic(), done, None
        if total is not None:
            self.total = total
        if unit is not None:
            self.unit = unit
        self.done = done
        if info is not None:
            self.info = info
        if not self.enabled:
            return
        if self._live is not None:
            if new_phase:
                self._live.reset(self._task, total=self.total, description=self.description)
            self._live.update(self._task, total=self.total, completed=done, info=self.info, unit=self.unit)
        else:
            self._plain(force=self.total is not None and done >= self.total)

    def message(self, text: str) -> None:
        """A line of its own above the bar (or in the log); never on stdout."""
        if not self.enabled:
            return
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self.enabled:
            self._finish_plain_phase()

    # ---- plain lines
    def rate(self) -> float | None:
        elapsed = time.monotonic() - self._phase_start
        done = self.done - self._phase_done0
        return done / elapsed if elapsed > 0 and done > 0 else None

    def line(self) -> str:
        """The plain progress line: 'indexing: 7/12 files (58 %), 2.3 files/s, ETA 0:02'."""
        rate = self.rate()
        parts = [f"{self.description}: {self.done}" + (f"/{self.total} {self.unit}" if self.total else f" {self.unit}")]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f} %)"
        parts.append(format_rate(rate, self.unit))
        if self.total:
            remaining = (self.total - self.done) / rate if rate else None
            parts.append(f"ETA {format_duration(remaining)}")
        parts.append(f"elapsed {format_duration(time.monotonic() - self._phase_start)}")
        if self.info:
            parts.append(self.info)
        return ", ".join(parts)

    def _plain(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or self._last_plain is None or now - self._last_plain >= self.interval:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_plain, self._plain_pending = now, False
        else:
            self._plain_pending = True

    def _finish_plain_phase(self) -> None:
        """The last state of a phase is always logged, even between two intervals."""
        if self.enabled and self._live is None and self._plain_pending:
            self._plain(force=True)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
