"""One way a request reaches the model: a runner takes a prepared request and returns a
future of its :class:`~.base.Completion`.

Two runners implement :class:`Runner`: :class:`._batched.BatchedRunner` (requests that
arrive together share one ``model.generate`` call; any device) and
:class:`._continuous.ContinuousRunner` (the continuous-batching engine; the CUDA default).
The backend holds one and never asks which. Whatever goes wrong reaches the caller in one
form, translated here by :func:`generation_error`: out of memory, a request the KV cache
cannot hold, a closed backend, or an unexpected failure.

Imports nothing heavy (torch is looked at only if it is already loaded).
"""

from __future__ import annotations

import sys
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError, GPUOutOfMemoryError, LimitExceededError, MedmoError

__all__ = [
    "Job",
    "Runner",
    "closed_error",
    "free_accelerator_memory",
    "generation_error",
    "is_out_of_memory",
    "settle",
]


@dataclass
class Job:
    """One request on its way to the model.

    Attributes:
        payload: The prepared request (``_hf_engine.Prepared``: tokens, images, limits).
        key: Requests batch together only when their keys are equal (decoding mode).
        on_text: Receives the answer's text piece by piece (on the runner's thread).
        cancel: Once set, the request stops at its next token, its text so far kept.
        submitted_at: When the caller asked (``time.perf_counter``), for queue timings.
        future: Resolves to the Completion, or raises a :class:`MedmoError`.
    """

    payload: Any
    key: Any = None
    on_text: Any = None
    cancel: threading.Event | None = None
    submitted_at: float = field(default_factory=time.perf_counter)
    future: Future = field(default_factory=Future)


class Runner(ABC):
    """Runs prepared requests on the model, from one thread that owns it."""

    @abstractmethod
    def submit(self, job: Job) -> Future:
        """Queue ``job``; returns ``job.future``.

        Raises:
            BackendError: The runner is closed.
        """

    @property
    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Counters for monitoring and tests."""

    @abstractmethod
    def close(self) -> None:
        """Stop serving; requests still waiting fail with :class:`BackendError`."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the accelerator ran out of memory."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def free_accelerator_memory() -> None:
    """Release cached GPU blocks after an out-of-memory error, so a retry can fit."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def closed_error() -> BackendError:
    """What a request submitted to a closed runner gets."""
    return BackendError(
        "The model backend is closed.", fix="Create a new backend to keep generating."
    )


def generation_error(exc: BaseException) -> MedmoError:
    """The project error a caller sees for ``exc`` (project errors pass through).

    The original exception is kept as ``__cause__``.
    """
    if isinstance(exc, MedmoError):
        return exc
    from .engine.requests import CacheLimitError, EngineClosedError

    error: MedmoError
    if is_out_of_memory(exc):
        error = GPUOutOfMemoryError("The GPU ran out of memory while generating this answer.")
    elif isinstance(exc, CacheLimitError):
        error = _cache_limit_error(exc)
    elif isinstance(exc, EngineClosedError):
        error = BackendError(
            "The model backend was closed before this request finished.",
            fix="Create a new backend to keep generating.",
        )
    else:
        error = BackendError(
            f"Generation failed: {type(exc).__name__}: {exc}",
            fix="Retry the request; if it keeps failing, report the error.",
        )
    error.__cause__ = exc
    return error


def settle(job: Job, outcome: Any) -> None:
    """Resolve ``job.future`` with a result, or with the translated error if ``outcome`` is
    an exception (out of memory also frees cached GPU memory). A future already resolved
    (e.g. failed on close) is left alone."""
    if job.future.done():
        return
    if isinstance(outcome, BaseException):
        if is_out_of_memory(outcome):
            free_accelerator_memory()
        job.future.set_exception(generation_error(outcome))
    else:
        job.future.set_result(outcome)


def _cache_limit_error(exc: Any) -> LimitExceededError:
    longer_cache = "lower MEDMO_MAX_BATCH_SIZE so that each request gets a longer KV cache"
    if exc.field == "messages":
        return LimitExceededError(
            f"The prompt ({exc.prompt_tokens} tokens) is longer than the KV cache holds "
            f"({exc.positions} positions per request).",
            input="messages",
            fix=f"Use a smaller image (MEDMO_MAX_PIXELS) or a shorter prompt, or {longer_cache}.",
        )
    room = exc.positions - exc.prompt_tokens
    return LimitExceededError(
        f"max_new_tokens={exc.max_new_tokens} does not fit the KV cache: after this prompt "
        f"({exc.prompt_tokens} tokens) a request has room for {room} new tokens "
        f"({exc.positions} positions per request).",
        input="max_new_tokens",
        fix=f"Ask for at most {room} new tokens, shorten the prompt or image "
        f"(MEDMO_MAX_PIXELS), or {longer_cache}.",
    )
