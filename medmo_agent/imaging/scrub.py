"""Keep identifying values out of logs when image libraries warn while a file is read.

pydicom (and nibabel) put the offending value into their warnings and log records, e.g.
``Invalid value for VR UI: '1.2.840...'`` for a malformed SeriesInstanceUID, and those
go to stderr and to whatever log handlers a server has. While
:func:`library_warnings_scrubbed` is active in a thread, every warning raised in that
thread and every record of the ``pydicom``/``nibabel`` loggers is reduced to its leading
words (up to the first quote, colon, bracket or digit) and logged once, at INFO, on
``medmo_agent.imaging``. Outside of it, nothing is changed.

The warning hook and logger filters are process-wide but act only for threads inside
the context, so concurrent loads need no lock, and other code's warnings are untouched.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["library_warnings_scrubbed", "scrub_text"]

log = logging.getLogger("medmo_agent.imaging")

_LIBRARIES = ("pydicom", "nibabel")
_state = threading.local()
_install_lock = threading.Lock()
_filtered: set[str] = set()
_known_loggers = -1

# Everything from the first character that usually starts a value.
_VALUE_START = re.compile(r"[\"'`:=(\[<{0-9\\/]")
_REMOVED = "(details removed: they can hold identifying values)"


def scrub_text(text: str) -> str:
    """The leading words of a library message, without the values that follow them.

    >>> scrub_text("Invalid value for VR UI: '1.2.3.4.PATIENT'. Please see <https://...>")
    'Invalid value for VR UI (details removed: they can hold identifying values)'
    """
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    match = _VALUE_START.search(first_line)
    head = first_line[: match.start()] if match else first_line
    head = head.strip().rstrip(",;.-").strip()[:120]
    return f"{head} {_REMOVED}" if head else _REMOVED


@contextmanager
def library_warnings_scrubbed() -> Iterator[None]:
    """Within the block (in this thread), library warnings and log records are scrubbed."""
    _install()
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth
        if depth == 0:
            _state.last = None


def _active() -> bool:
    return getattr(_state, "depth", 0) > 0


def _emit(origin: str, kind: str, text: str) -> None:
    line = scrub_text(text)
    if getattr(_state, "last", None) == line:
        return  # pydicom logs and warns the same message: say it once
    _state.last = line
    log.info("%s %s while reading an image: %s", origin, kind, line)


class _ScrubFilter(logging.Filter):
    """Replaces a library record's text while the current thread is loading an image."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _active():
            return True
        _emit(record.name.split(".")[0], record.levelname.lower(), record.getMessage())
        return False


def _install() -> None:
    global _known_loggers
    hooked = getattr(warnings.showwarning, "_medmo_scrub", False)
    count = len(logging.root.manager.loggerDict)
    if hooked and count == _known_loggers:
        return
    with _install_lock:
        # pytest and warnings.catch_warnings() restore showwarning on exit: put ours back
        current = warnings.showwarning
        if not getattr(current, "_medmo_scrub", False):

            def hook(message, category, filename, lineno, file=None, line=None):
                if _active():
                    origin = next((lib for lib in _LIBRARIES if lib in str(filename)), "a library")
                    _emit(origin, category.__name__, str(message))
                    return
                current(message, category, filename, lineno, file, line)

            hook._medmo_scrub = True  # type: ignore[attr-defined]
            warnings.showwarning = hook
        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in _LIBRARIES and name not in _filtered:
                logging.getLogger(name).addFilter(_ScrubFilter())
                _filtered.add(name)
        for name in _LIBRARIES:
            if name not in _filtered:
                logging.getLogger(name).addFilter(_ScrubFilter())
                _filtered.add(name)
        _known_loggers = len(logging.root.manager.loggerDict)
