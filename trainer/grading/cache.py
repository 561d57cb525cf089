"""A least-recently-used cache bounded by an estimate of its memory, not only by count.

Compiled graders and templates are cached in long-lived processes (the web app, workers)
and their size is chosen by whoever writes the grader, so a count alone does not bound
memory: 4,096 templates of 100 kB each would be 400 MB. Each entry carries a cost (its
source's size in bytes, a fair proxy for what compiling it allocates).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
_MISSING = object()


class SizedLRU(Generic[V]):
    """Thread-safe LRU holding at most `max_entries` entries and `max_cost` total cost."""

    def __init__(self, *, max_entries: int, max_cost: int):
        self.max_entries = max_entries
        self.max_cost = max_cost
        self._data: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._cost = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: object = None) -> V | object:
        with self._lock:
            entry = self._data.get(key, _MISSING)
            if entry is _MISSING:
                return default
            self._data.move_to_end(key)
            return entry[0]  # type: ignore[index]

    def peek(self, key: Hashable) -> V | None:
        """`get` without the lock or the LRU update: one dict read, for the hottest path
        (a dict read is atomic in CPython; a hot entry evicted anyway is simply rebuilt)."""
        entry = self._data.get(key)
        return None if entry is None else entry[0]

    def put(self, key: Hashable, value: V, cost: int) -> None:
        """Store `value`; one costing more than the whole budget is simply not kept."""
        if cost > self.max_cost:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._cost -= old[1]
            self._data[key] = (value, cost)
            self._cost += cost
            while len(self._data) > self.max_entries or self._cost > self.max_cost:
                _, (_, evicted) = self._data.popitem(last=False)
                self._cost -= evicted

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._cost = 0

    @property
    def cost(self) -> int:
        return self._cost

    def __len__(self) -> int:
        return len(self._data)
