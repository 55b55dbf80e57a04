"""One bounded, thread-safe least-recently-used store.

Every bounded cache in the project (images held for ``medmo://images/`` handles, results
held for ``medmo://results/`` URIs, volumes holding open files, a trace viewer's images)
is an :class:`LRUStore`: bounded by a number of entries and, optionally, by a total size
that a size function measures. Entries pushed out can be handed to an eviction callback,
which runs outside the store's lock so that it may close files or take other locks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LRUStore"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUStore(Generic[K, V]):
    """A map that forgets its least recently used entries past its bounds.

    Args:
        max_items: How many entries to keep (at least one is always kept).
        max_size: Total size the entries may have, as ``size`` measures them; ``None``
            for no size bound. An entry larger than this on its own is not stored.
        size: Measures one value (default: every value counts 0). Sizes are measured
            afresh on each :meth:`put`, so a value that grew since it was stored counts
            at its current size.
        on_evict: Called as ``on_evict(key, value)`` for each entry pushed out by a
            bound (not for :meth:`pop` or :meth:`discard`), after the lock is released.
    """

    def __init__(
        self,
        max_items: int,
        *,
        max_size: int | None = None,
        size: Callable[[V], int] | None = None,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        self.max_items = max_items
        self.max_size = max_size
        self._size = size or (lambda _value: 0)
        self._on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()
        # Re-entrant: a weak reference's callback may discard an entry while this thread
        # holds the lock (garbage collection can run inside any allocation).
        self._lock = threading.RLock()

    def put(self, key: K, value: V, *, max_items: int | None = None) -> bool:
        """Store ``value`` under ``key`` as the most recently used entry.

        Args:
            key: The key; an entry already under it is replaced.
            value: The value.
            max_items: A count bound for this call, in place of ``max_items`` (for a
                bound read from settings at the time of use).

        Returns:
            Whether the value is held: ``False`` when it alone is over ``max_size``
            (then nothing else is pushed out for it).
        """
        if self.max_size is not None and self._size(value) > self.max_size:
            return False
        limit = max(1, self.max_items if max_items is None else max_items)
        evicted: list[tuple[K, V]] = []
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > limit:
                evicted.append(self._items.popitem(last=False))
            if self.max_size is not None:
                total = sum(self._size(v) for v in self._items.values())
                while self._items and total > self.max_size:
                    old = self._items.popitem(last=False)
                    total -= self._size(old[1])
                    evicted.append(old)
        if self._on_evict is not None:
            for old_key, old_value in evicted:
                self._on_evict(old_key, old_value)
        return True

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value under ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Remove and return the value under ``key`` (no eviction callback)."""
        with self._lock:
            return self._items.pop(key, default)

    def discard(self, key: K) -> None:
        """Remove ``key`` if present (no eviction callback)."""
        self.pop(key)

    def keys(self) -> list[K]:
        """The keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def total_size(self) -> int:
        """The values' sizes, summed as they are now."""
        with self._lock:
            return sum(self._size(v) for v in self._items.values())

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
