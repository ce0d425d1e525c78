"""A small byte-bounded LRU cache for filter banks (host or device arrays)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

__all__ = ["FilterCache", "filter_cache"]


class FilterCache:
    """Least-recently-used cache bounded by the total ``nbytes`` of its values."""

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
        value = build()
        size = int(getattr(value, "nbytes", 0))
        with self._lock:
            self.misses += 1
            if size <= self.max_bytes and key not in self._data:
                self._data[key] = value
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, old = self._data.popitem(last=False)
                    self._bytes -= int(getattr(old, "nbytes", 0))
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)


#: The process-wide cache shared by the CWT and smoothing kernels.
filter_cache = FilterCache()
