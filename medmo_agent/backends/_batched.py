"""The batched runner: one worker thread owns the model; requests that arrive together
share one ``generate`` call.

Jobs that arrive together (within ``batch_wait_s`` of the first, up to ``max_batch_size``)
and share a batching key (the decoding mode) run as one batch. The runner knows nothing
about torch: an *engine* (:class:`._hf_engine.HFEngine`) runs a batch.

Out of memory on a batch: the engine frees what it can, the batch is retried one job at
a time, and only a job that fails alone gets :class:`GPUOutOfMemoryError`. The worker
keeps serving whatever happens.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..errors import BackendError
from ._runner import Job, Runner, closed_error, is_out_of_memory, settle

__all__ = ["BatchedRunner", "Engine"]

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What the batched runner drives."""

    generate_calls: int

    def run_batch(self, jobs: Sequence[Job]) -> list[Any]:
        """Run jobs together; return one result (or exception instance) per job, in order."""

    def recover_from_out_of_memory(self) -> None:
        """Free cached memory after an out-of-memory error."""


@dataclass
class _Counters:
    batches: int = 0  # engine.run_batch calls
    requests: int = 0  # jobs completed (with a result or an error)
    largest_batch: int = 0
    oom_retries: int = 0


_STOP = object()


class BatchedRunner(Runner):
    """Queue + single worker thread around an :class:`Engine`.

    Args:
        engine: Runs batches on the model.
        max_batch_size: Most jobs in one batch.
        batch_wait_s: How long the first job of a batch waits for companions.
        name: Worker thread name.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
        name: str = "medmo-generate",
    ):
        self.engine = engine
        self.max_batch_size = max(1, int(max_batch_size))
        self.batch_wait_s = max(0.0, float(batch_wait_s))
        self._counters = _Counters()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._held: deque[Job] = deque()  # jobs drawn but left for a later batch (other key)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue a job; its future resolves to the engine's result or raises its error."""
        if self._closed.is_set():
            raise closed_error()
        self._queue.put(job)
        return job.future

    @property
    def stats(self) -> dict[str, int]:
        """``generate_calls`` (the engine's), ``batches``, ``requests``, ``largest_batch``,
        ``oom_retries``."""
        return {"generate_calls": self.engine.generate_calls, **asdict(self._counters)}

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the worker after the batch in progress; jobs still queued fail."""
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- worker ---------------------------------------------------------------------

    def _work(self) -> None:
        while not self._closed.is_set():
            batch = self._collect()
            if batch is None:
                break
            self._run(batch)
        self._fail_pending()

    def _next(self, timeout: float | None) -> Any:
        if self._held:
            return self._held.popleft()
        try:
            return self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _collect(self) -> list[Job] | None:
        first = self._next(timeout=None)
        if first is _STOP:
            return None
        batch = [first]
        skipped: list[Job] = []
        deadline = time.perf_counter() + self.batch_wait_s
        # companions already held back from an earlier round come first
        while self._held and len(batch) < self.max_batch_size:
            job = self._held.popleft()
            (batch if job.key == first.key else skipped).append(job)
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # seen again once this batch is done
                break
            (batch if item.key == first.key else skipped).append(item)
        self._held.extendleft(reversed(skipped))
        return batch

    def _run(self, batch: list[Job]) -> None:
        self._counters.batches += 1
        self._counters.largest_batch = max(self._counters.largest_batch, len(batch))
        try:
            results = self.engine.run_batch(batch)
        except BaseException as exc:
            if not is_out_of_memory(exc) or len(batch) == 1:
                self._settle_all(batch, exc)
                return
            self.engine.recover_from_out_of_memory()
            log.warning("Out of memory on a batch of %d; retrying one at a time.", len(batch))
            self._counters.oom_retries += 1
            for job in batch:
                self._run_single(job)
            return
        for job, result in zip(batch, results, strict=True):
            self._settle(job, result)

    def _run_single(self, job: Job) -> None:
        self._counters.batches += 1
        try:
            (result,) = self.engine.run_batch([job])
        except BaseException as exc:
            result = exc
        self._settle(job, result)

    def _settle_all(self, batch: list[Job], exc: BaseException) -> None:
        for job in batch:
            self._settle(job, exc)

    def _settle(self, job: Job, result: Any) -> None:
        self._counters.requests += 1
        if is_out_of_memory(result):
            self.engine.recover_from_out_of_memory()
        settle(job, result)

    def _fail_pending(self) -> None:
        closed = BackendError("The model backend was closed before this request ran.")
        pending = list(self._held)
        self._held.clear()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                pending.append(item)
        for job in pending:
            if not job.future.done():
                job.future.set_exception(closed)
