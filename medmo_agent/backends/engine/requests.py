"""What goes into and comes out of the decode engine, and the typed messages its threads
exchange (a queue item says what it is by its type, never by its shape)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CacheLimitError",
    "Close",
    "EngineClosedError",
    "EngineRequest",
    "EngineResult",
    "Exclusive",
    "PrefillBatch",
    "Prefilled",
    "Started",
    "Submit",
    "check_fits",
    "finish_reason",
]


@dataclass
class EngineRequest:
    """One prompt to decode greedily.

    ``inputs`` is the processor's output for this prompt alone (batch of one, on any
    device). ``on_token`` is called with each new token id from the engine thread and may
    return True to stop the request (a stop string was reached); if it raises, the request
    ends and its future carries that exception.
    """

    inputs: dict[str, Any]
    max_new_tokens: int
    on_token: Callable[[int], bool | None] | None = None
    cancel: threading.Event | None = None
    submitted: float = field(default_factory=time.perf_counter)

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prompt (image placeholders included)."""
        return int(self.inputs["input_ids"].shape[1])


@dataclass
class EngineResult:
    """Generated token ids (end-of-sequence token included when it came) and timings."""

    tokens: list[int]
    finish_reason: str
    prompt_tokens: int
    queue_seconds: float
    first_token_seconds: float
    total_seconds: float


class CacheLimitError(ValueError):
    """A request does not fit the KV cache: its prompt, or its prompt plus its new tokens.

    Attributes:
        field: ``"messages"`` (the prompt alone is too long) or ``"max_new_tokens"``.
        prompt_tokens: The prompt's length.
        max_new_tokens: New tokens asked for.
        positions: Positions one request has in the cache.
    """

    def __init__(self, field: str, prompt_tokens: int, max_new_tokens: int, positions: int):
        self.field = field
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.positions = positions
        if field == "messages":
            text = (
                f"prompt of {prompt_tokens} tokens does not fit the KV cache "
                f"({positions} positions per request)"
            )
        else:
            text = (
                f"max_new_tokens={max_new_tokens} after a prompt of {prompt_tokens} tokens "
                f"does not fit the KV cache ({positions} positions per request, so at most "
                f"{positions - prompt_tokens} new tokens)"
            )
        super().__init__(text)


class EngineClosedError(RuntimeError):
    """The engine was closed before the request finished (or was submitted after)."""


def check_fits(request: EngineRequest, positions: int) -> None:
    """Refuse a request that the cache cannot hold to its last token.

    A request of ``n`` new tokens writes ``n - 1`` of them to the cache (the last is never
    fed back), so it fits when ``prompt + n - 1 < positions``.

    Raises:
        CacheLimitError: The prompt, or the prompt plus ``max_new_tokens``, is too long.
    """
    prompt = request.prompt_tokens
    if prompt >= positions:
        raise CacheLimitError("messages", prompt, request.max_new_tokens, positions)
    if prompt + request.max_new_tokens > positions:
        raise CacheLimitError("max_new_tokens", prompt, request.max_new_tokens, positions)


def finish_reason(
    *, ended: bool, count: int, limit: int, cancel: threading.Event | None
) -> str | None:
    """Why a request stops after its latest token, or None while it goes on.

    Args:
        ended: The token ends the answer (an end-of-sequence token or a stop string).
        count: Tokens generated so far.
        limit: The request's ``max_new_tokens``.
        cancel: Its cancel event; once set, the request stops at this token.
    """
    if ended:
        return "stop"
    if count >= limit:
        return "length"
    if cancel is not None and cancel.is_set():
        return "cancelled"
    return None


# ---- messages to the engine (decode) thread -----------------------------------------------


@dataclass(frozen=True)
class Submit:
    """A request asking for a slot."""

    request: EngineRequest
    future: Future


@dataclass(frozen=True)
class Exclusive:
    """Work that must run where prefills run, alone there (e.g. a sampled ``generate``)."""

    fn: Callable[[], Any]
    future: Future

    def run(self) -> None:
        """Call ``fn`` and settle the future with its result or its exception."""
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            self.future.set_result(self.fn())
        except BaseException as exc:  # delivered to the caller; the engine goes on
            self.future.set_exception(exc)


@dataclass(frozen=True)
class Started:
    """A prefilled request, ready to take a slot: its first token and its prompt's cache."""

    request: EngineRequest
    future: Future
    first_token: int
    keys: list[Any]
    values: list[Any]
    rope_delta: int
    started_at: float


@dataclass(frozen=True)
class Prefilled:
    """Prefill results handed from the prefill thread back to the decode thread."""

    started: list[Started]
    count: int  # requests this batch of work covered (failed ones included)
    event: Any = None  # CUDA event recorded after the prefill's kernels


@dataclass(frozen=True)
class Close:
    """Stop the thread that reads it."""


# ---- messages to the prefill thread -------------------------------------------------------


@dataclass(frozen=True)
class PrefillBatch:
    """Requests given slots, to be prefilled together."""

    requests: list[Submit]
