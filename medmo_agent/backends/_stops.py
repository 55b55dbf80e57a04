"""Stop strings applied on the client side, for servers that ignore or reject ``stop``.

Pure text logic, kept apart from HTTP so it can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopFilter", "truncate_at_stop"]


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; return (text, whether one was found)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


class StopFilter:
    """Applies stop strings to streamed text without ever emitting text past a stop.

    Servers normally stop at ``stop`` themselves; this is the safety net for those that
    ignore the field. Text that could be the start of a stop string is held back until
    the next piece decides it.

    Args:
        stops: Stop strings; empty strings are ignored.
    """

    def __init__(self, stops: Sequence[str] | None):
        self.stops = [s for s in (stops or []) if s]
        self.stopped = False
        self._held = ""

    def feed(self, piece: str) -> str:
        """Add a piece of text; return the part that is safe to emit now."""
        if self.stopped:
            return ""
        if not self.stops:
            return piece
        text = self._held + piece
        head, found = truncate_at_stop(text, self.stops)
        if found:
            self.stopped = True
            self._held = ""
            return head
        keep = max(_overlap(text, s) for s in self.stops)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Return text still held back, at the end of the stream."""
        held, self._held = self._held, ""
        return "" if self.stopped else held


def _overlap(text: str, stop: str) -> int:
    """Length of the longest proper prefix of ``stop`` that ``text`` ends with."""
    for k in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0
