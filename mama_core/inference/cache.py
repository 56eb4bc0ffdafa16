"""A small thread-safe LRU cache keyed by file identity (path + size + mtime).

Image features are the expensive part of inference (a ViT forward per view); text is
cheap.  Caching them per file lets a new map sentence cost only a text forward and a
matrix product (issue: live sentence maps), and an edited file is re-encoded because its
mtime or size changes."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


def file_key(path: str | Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime_ns): changes whenever the file is replaced or edited."""
    p = Path(path).resolve()
    st = os.stat(p)
    return str(p), int(st.st_size), int(st.st_mtime_ns)


class LRUCache(Generic[V]):
    def __init__(self, max_items: int = 64):
        if max_items < 1:
            raise ValueError("cache size must be >= 1")
        self.max_items = max_items
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def peek(self, key: Hashable) -> V | None:
        """The cached value without counting a hit or changing the LRU order."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], V], lock: threading.Lock | threading.RLock) -> V:
        """Cached value, else `compute()` under `lock` (re-checked inside, so two threads
        asking for the same file run the model once)."""
        value = self.get(key)
        if value is not None:
            return value
        with lock:
            with self._lock:
                value = self._items.get(key)
            if value is None:
                value = compute()
                self.put(key, value)
            return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
