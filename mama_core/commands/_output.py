"""Small helpers shared by the command modules: JSON lines and plain tables."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_json(obj: Any) -> None:
    """One JSON document on one line (JSON-lines friendly), flushed at once."""
    sys.stdout.write(json.dumps(obj, default=_default) + "\n")
    sys.stdout.flush()


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def print_summary(headline: str, items: dict[str, Any] | None = None) -> None:
    """A job's final words for people: one headline, then aligned `name: value` lines
    (paths, counts, times), never a Python repr."""
    print(headline)
    items = {k: v for k, v in (items or {}).items() if v is not None and v != ""}
    width = max((len(k) for k in items), default=0)
    for key, value in items.items():
        print(f"  {(key + ':').ljust(width + 1)} {value}")
    sys.stdout.flush()
