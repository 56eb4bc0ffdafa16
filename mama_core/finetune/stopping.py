"""The stop flag of a long job: a `threading.Event`, any object with `is_set()`, or a
zero-argument callable returning True when the run should end."""

from __future__ import annotations

from typing import Any, Callable

StopFlag = Callable[[], bool] | Any | None


def should_stop(stop: StopFlag) -> bool:
    if stop is None:
        return False
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())


class Cancelled(Exception):
    """Raised inside the run when the stop flag is seen; `finetune` turns it into a final
    'cancelled' report, so callers never see an exception for a cancel they asked for."""
