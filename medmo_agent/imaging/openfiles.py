"""A bound on the files that kept volumes hold open.

A re-sliceable volume (NIfTI) keeps its file open so that later slices are read from
disk, not from memory. Images kept for ``medmo://images/`` handles may hold many such
volumes; past ``max_open_volumes`` the least recently used one closes its files, and
reopens them (through the same checks) the next time it is sliced.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Protocol

__all__ = ["OPEN_VOLUMES", "OpenVolumes"]


class _Closable(Protocol):
    def release(self) -> None: ...


class OpenVolumes:
    """Least-recently-used list of the volumes that hold open files (thread-safe)."""

    def __init__(self) -> None:
        self._open: OrderedDict[int, weakref.ref[_Closable]] = OrderedDict()
        self._lock = threading.Lock()

    def touch(self, volume: _Closable, limit: int) -> None:
        """Mark ``volume`` as just used (it holds open files); release the least
        recently used others past ``limit``.

        Call it without holding the volume's own lock: releasing another volume waits
        for that volume's lock.
        """
        key = id(volume)
        victims = []
        with self._lock:
            if key not in self._open:
                self._open[key] = weakref.ref(volume, lambda _ref: self._drop(key))
            self._open.move_to_end(key)
            while len(self._open) > max(1, limit):
                _, ref = self._open.popitem(last=False)
                victim = ref()
                if victim is not None:
                    victims.append(victim)
        for victim in victims:
            victim.release()

    def forget(self, volume: _Closable) -> None:
        """Take ``volume`` off the list (it closed its files)."""
        self._drop(id(volume))

    def _drop(self, key: int) -> None:
        with self._lock:
            self._open.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)


#: The one list for the process: the descriptor limit is per process.
OPEN_VOLUMES = OpenVolumes()
