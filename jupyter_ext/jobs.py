"""Background jobs: model calls run in a worker thread so the notebook never freezes.

Widgets start a :class:`Job`, show progress while it runs, and update themselves from the
worker thread when it ends (ipykernel sends widget messages from any thread). The kernel
stays free for other cells; ``job.wait()`` blocks when a script needs the answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from medmo_agent.errors import MedmoError

__all__ = ["Job", "describe_error", "wait_all"]

# Recent jobs, so a script (or CI) can wait for everything a notebook started.
_recent: list[Job] = []
_recent_lock = threading.Lock()
_KEEP = 200


def describe_error(exc: BaseException) -> str:
    """A one-paragraph message for a failure, in the project's words where possible."""
    if isinstance(exc, MedmoError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Job:
    """One unit of work running in a daemon thread.

    Args:
        fn: Called as ``fn(cancel_event)`` in the worker thread; its return value becomes
            :attr:`result`. Any exception is caught and kept in :attr:`error`, so a failure
            never escapes into the kernel.
        on_done: Called in the worker thread with the job once it has finished, failed
            or been cancelled.
        name: What the job does, for progress messages.
    """

    def __init__(
        self,
        fn: Callable[[threading.Event], Any],
        *,
        on_done: Callable[[Job], None] | None = None,
        name: str = "job",
    ):
        self.name = name
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._fn = fn
        self._on_done = on_done
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"medmo-{name}", daemon=True)

    def start(self) -> Job:
        """Start the worker thread and return the job."""
        self.started_at = time.perf_counter()
        with _recent_lock:
            _recent.append(self)
            del _recent[:-_KEEP]
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self._fn(self.cancel_event)
        except BaseException as exc:  # kept for the widget; the kernel must stay usable
            self.error = exc
        finally:
            self.finished_at = time.perf_counter()
            if self._on_done is not None:
                try:
                    self._on_done(self)
                except Exception as exc:  # a rendering bug must not pass silently
                    if self.error is None:
                        self.error = exc
            self._done.set()

    @property
    def done(self) -> bool:
        """Whether the job has ended and its widgets have been updated."""
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was requested."""
        return self.cancel_event.is_set()

    @property
    def elapsed(self) -> float:
        """Seconds since start (until the end, once finished)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return end - self.started_at

    def cancel(self) -> None:
        """Ask the work to stop; backends check the event between tokens."""
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends and return its result.

        Raises:
            TimeoutError: The job did not end within ``timeout`` seconds.
            Exception: The job's own error, re-raised.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.name} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


def wait_all(timeout: float | None = None) -> list[Job]:
    """Wait for every recently started job to end; return those that failed.

    Args:
        timeout: Seconds to wait in all.

    Raises:
        TimeoutError: Some job was still running when the time ran out.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with _recent_lock:
        jobs = list(_recent)
    for job in jobs:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not job._done.wait(left):
            raise TimeoutError(f"{job.name} still running after {timeout} s")
    return [job for job in jobs if job.error is not None]
