"""The official ``openai`` client, set up for a self-hosted server, and its failures as
:class:`~medmo_agent.errors.MedmoError` s.

:func:`make_client` gives a client with this project's retry policy and connection pool;
:class:`ServerErrors` turns every ``openai`` error into the error that names the server
and the fix. Nothing else in the backend looks at HTTP statuses or exceptions.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import openai

from ..errors import BackendError, BackendUnavailableError

__all__ = [
    "START_HINT",
    "ServerErrors",
    "make_client",
    "message_of",
    "normalize_base_url",
    "request_headers",
]

log = logging.getLogger("medmo_agent.backends.openai_compat")

#: Statuses that mean "busy or restarting, try again".
RETRY_STATUS = frozenset({429, 502, 503, 504})

START_HINT = (
    "Start the server, e.g. `vllm serve MBZUAI/MedMO-8B-Next --limit-mm-per-prompt "
    '\'{"image":4,"video":0}\'` (or `transformers serve CHECKPOINT_DIR`), or check '
    "--base-url / MEDMO_BASE_URL."
)


def make_client(
    base_url: str, *, api_key: str | None, timeout_s: float, retries: int, backoff_s: float
) -> openai.OpenAI:
    """A thread-safe client for the server at ``base_url`` (already normalised).

    At most 64 requests are in flight to one server; more wait for a connection.
    """
    timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
    return _Client(
        backoff_s=backoff_s,
        base_url=base_url,
        api_key=api_key or "unused",  # without a key the header is omitted: see request_headers
        max_retries=retries,
        timeout=timeout,
        http_client=httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        ),
    )


def request_headers(api_key: str | None) -> dict[str, Any]:
    """Per-request header overrides: the server is not OpenAI's, so it gets no organisation
    or project from the environment, and no ``Authorization`` header without a key."""
    headers: dict[str, Any] = {
        "OpenAI-Organization": openai.Omit(),
        "OpenAI-Project": openai.Omit(),
    }
    if not api_key:
        headers["Authorization"] = openai.Omit()
    return headers


class _Client(openai.OpenAI):
    """The official client with this backend's retry policy.

    Retried: connection failures and 429/502/503/504, after ``backoff_s`` doubling each
    time, or the server's ``Retry-After`` (at most 30 s). Not retried: a server that
    does not answer in time (it is still working; asking again doubles its load) and
    every other status (``transformers serve`` answers 500 for fields it cannot handle,
    which the backend's fallback deals with).
    """

    def __init__(self, *, backoff_s: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.backoff_s = backoff_s

    def _should_retry(self, response: Any) -> bool:
        return response.status_code in RETRY_STATUS

    def _sleep_for_retry(
        self, *, retries_taken: int, max_retries: int, options: Any, response: Any
    ) -> None:
        # The client calls this while it handles the failure, so that is the one here.
        failure = sys.exc_info()[1]
        if isinstance(failure, httpx.TimeoutException) and not isinstance(
            failure, httpx.ConnectTimeout
        ):
            # our client is an httpx one (openai accepts it); openai's hints name httpx2's
            raise openai.APITimeoutError(request=cast(Any, failure.request)) from failure
        delay = self.backoff_s * 2**retries_taken
        if response is not None:
            delay, reason = _retry_after(response, delay), f"HTTP {response.status_code}"
        else:
            reason = _reason(failure)
        log.warning(
            "Retrying %s %s in %.2fs after %s (attempt %d of %d).",
            options.method.upper(),
            str(self.base_url).rstrip("/") + options.url,
            delay,
            reason,
            retries_taken + 2,
            max_retries + 1,
        )
        time.sleep(delay)


class ServerErrors:
    """Translates the failures of one server into errors that say what to do.

    Args:
        base_url: The server's URL, as shown in messages.
        timeout_s: The read timeout, as shown in messages.
        retries: Extra attempts the client makes, as shown in messages.
        has_key: Whether requests carry an API key (the key itself is never shown).
    """

    def __init__(self, base_url: str, *, timeout_s: float, retries: int, has_key: bool):
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.retries = retries
        self.has_key = has_key

    def translate(
        self,
        exc: openai.APIError,
        *,
        mid_stream: bool = False,
        model: str | None = None,
        served_models: Callable[[], list[str]] | None = None,
    ) -> BackendError:
        """The error for ``exc``.

        Args:
            exc: What the client raised.
            mid_stream: Whether text had already been streamed (a break is then not a
                refused connection, and an error event is a generation failure).
            model: The model requested, to recognise "no such model" answers.
            served_models: Lists the server's models, for that case.
        """
        where = f"The model server at {self.base_url}"
        cause = exc.__cause__ or exc
        if isinstance(exc, openai.APITimeoutError):
            return BackendUnavailableError(
                f"{where} did not answer within {self.timeout_s:g}s ({type(cause).__name__}).",
                input=self.base_url,
                fix="Raise MEDMO_REQUEST_TIMEOUT_S, ask for fewer new tokens, or check the "
                "server's load.",
            )
        if isinstance(exc, openai.APIConnectionError) and mid_stream:
            return BackendUnavailableError(
                f"The connection to the model server at {self.base_url} broke while "
                f"streaming ({type(cause).__name__}).",
                input=self.base_url,
                fix="Check that the server is still running (it may have crashed or "
                "restarted), then retry.",
            )
        if isinstance(exc, openai.APIConnectionError):
            attempts = self.retries + 1
            return BackendUnavailableError(
                f"Cannot reach the model server at {self.base_url} ({_reason(cause)}; "
                f"{attempts} attempt{'s' if attempts > 1 else ''}).",
                input=self.base_url,
                fix=START_HINT,
            )
        if isinstance(exc, openai.APIStatusError):
            # an httpx response at run time: the client is ours (see make_client)
            return self._status_error(cast(httpx.Response, exc.response), model, served_models)
        message = message_of({"error": exc.body}) or exc.message
        if mid_stream:
            return BackendError(
                f"{where} failed while generating: {message}",
                input=self.base_url,
                fix="See the server's log; retry with a smaller image or fewer new tokens.",
            )
        return BackendError(
            f"{where} failed (HTTP 500): {message}",
            input=self.base_url,
            fix="See the server's log for the cause.",
        )

    def malformed(self, text: str) -> BackendError:
        """The error for an answer that is not OpenAI-shaped."""
        return BackendError(
            f"The server at {self.base_url} answered with something that is not an OpenAI "
            f"chat completion: {text[:200]!r}",
            input=self.base_url,
            fix="Check that --base-url points at an OpenAI-compatible API (it usually ends "
            "in /v1).",
        )

    def _status_error(
        self,
        response: httpx.Response,
        model: str | None,
        served_models: Callable[[], list[str]] | None,
    ) -> BackendError:
        status = response.status_code
        try:
            message = message_of(response.json())
        except ValueError:
            message = ""
        message = message or response.text[:300] or response.reason_phrase
        where = f"The model server at {self.base_url}"
        if status in (401, 403):
            sent = "the API key it was given" if self.has_key else "a request without an API key"
            return BackendUnavailableError(
                f"{where} refused {sent} (HTTP {status}: {message}).",
                input=self.base_url,
                fix="Set MEDMO_API_KEY (or OPENAI_API_KEY) to a key the server accepts "
                "(for vLLM, the --api-key it was started with).",
            )
        if status in (400, 404, 422) and model is not None and served_models is not None:
            missing = self._model_missing(model, served_models)
            if missing is not None:
                return missing
        if status == 404:
            return BackendUnavailableError(
                f"{where} has no {response.request.url.path} endpoint (HTTP 404: {message}).",
                input=self.base_url,
                fix="Check --base-url / MEDMO_BASE_URL; it usually ends in /v1.",
            )
        if status in (400, 413, 422):
            return BackendError(
                f"{where} rejected the request (HTTP {status}): {message}",
                input=model or self.base_url,
                fix="Act on the server's message; a smaller or fewer images, or fewer new "
                "tokens, often helps.",
            )
        if status in RETRY_STATUS:
            return BackendUnavailableError(
                f"{where} is busy or unavailable (HTTP {status}: {message}) after "
                f"{self.retries + 1} attempts.",
                input=self.base_url,
                fix="Retry later, lower the request rate, or add server replicas.",
            )
        return BackendError(
            f"{where} failed (HTTP {status}): {message}",
            input=self.base_url,
            fix="See the server's log for the cause.",
        )

    def _model_missing(
        self, model: str, served_models: Callable[[], list[str]]
    ) -> BackendUnavailableError | None:
        """The error for a model name the server does not know, if that is the cause."""
        try:
            models = served_models()
        except BackendError:
            return None
        if not models or model in models:
            return None
        return BackendUnavailableError(
            f"The model server at {self.base_url} does not serve model {model!r}; "
            f"it serves: {', '.join(models)}.",
            input=model,
            fix="Set MEDMO_SERVED_MODEL (or --model) to one of those names, or start the "
            "server with this model.",
        )


def normalize_base_url(url: str) -> str:
    """Add ``/v1`` to a URL with no path (``http://h:8000`` -> ``http://h:8000/v1``).

    A URL with a path (``https://gateway/medmo/v1``) is kept, minus a final ``/``.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendUnavailableError(
            f"Base URL {url!r} is not an http(s) URL.",
            input=url,
            fix="Use a URL such as http://localhost:8000/v1 (--base-url or MEDMO_BASE_URL).",
        )
    return url if parts.path else url + "/v1"


def message_of(data: Any) -> str:
    """The human message in an error body: OpenAI/vLLM ``error.message``, FastAPI
    ``detail``, or a bare ``error`` string."""
    if not isinstance(data, dict):
        return ""
    for key in ("error", "detail", "message"):
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("message") or value.get("detail") or json.dumps(value)
        if isinstance(value, list):
            value = "; ".join(
                str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value
            )
        if value:
            return str(value)
    return ""


def _retry_after(response: Any, default: float) -> float:
    """The server's ``Retry-After`` in seconds (capped at 30), else ``default``."""
    try:
        return min(30.0, max(0.0, float(response.headers.get("retry-after", ""))))
    except ValueError:
        return default


def _reason(exc: BaseException | None) -> str:
    text = str(exc).strip()
    if "refused" in text.lower() or "errno 111" in text.lower():
        return "connection refused"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
