"""A bound on the files that kept volumes hold open.

A re-sliceable volume (NIfTI) keeps its file open so that later slices are read from
disk, not from memory. Images kept for ``medmo://images/`` handles may hold many such
volumes; past ``max_open_volumes`` the least recently used one closes its files, and
reopens them (through the same checks) the next time it is sliced.
"""

from __future__ import annotations

import weakref
from typing import Protocol

from ..lru import LRUStore

__all__ = ["OPEN_VOLUMES", "OpenVolumes"]


class _Closable(Protocol):
    def release(self) -> None: ...


class OpenVolumes:
    """Least-recently-used list of the volumes that hold open files (thread-safe)."""

    def __init__(self) -> None:
        # Weak references: a volume nobody holds any more drops off the list by itself.
        self._open: LRUStore[int, weakref.ref[_Closable]] = LRUStore(
            1, on_evict=lambda _key, ref: _release(ref)
        )

    def touch(self, volume: _Closable, limit: int) -> None:
        """Mark ``volume`` as just used (it holds open files); release the least
        recently used others past ``limit``.

        Call it without holding the volume's own lock: releasing another volume waits
        for that volume's lock.
        """
        key = id(volume)

        def forget_collected(_ref: weakref.ref[_Closable]) -> None:
            self._open.discard(key)

        self._open.put(key, weakref.ref(volume, forget_collected), max_items=limit)

    def forget(self, volume: _Closable) -> None:
        """Take ``volume`` off the list (it closed its files)."""
        self._open.discard(id(volume))

    def __len__(self) -> int:
        return len(self._open)


def _release(ref: weakref.ref[_Closable]) -> None:
    victim = ref()
    if victim is not None:
        victim.release()


#: The one list for the process: the descriptor limit is per process.
OPEN_VOLUMES = OpenVolumes()
