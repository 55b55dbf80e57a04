"""HTTP plumbing for the OpenAI-compatible backend: retries, timeouts and clear errors.

:class:`ServerClient` sends requests to one server with an ``httpx`` connection pool
(thread-safe), retries what is worth retrying (connection errors, 429, 502, 503, 504,
with exponential backoff or the server's ``Retry-After``) and turns everything else
into a :class:`~medmo_agent.errors.MedmoError` that names the server and the fix.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import BackendError, BackendUnavailableError

__all__ = ["RETRY_STATUS", "START_HINT", "ServerClient", "StatusError", "normalize_base_url"]

log = logging.getLogger("medmo_agent.backends.openai_compat")

#: Statuses that mean "busy or restarting, try again".
RETRY_STATUS = frozenset({429, 502, 503, 504})

START_HINT = (
    "Start the server, e.g. `vllm serve MBZUAI/MedMO-8B-Next --limit-mm-per-prompt "
    '\'{"image":4,"video":0}\'` (or `transformers serve CHECKPOINT_DIR`), or check '
    "--base-url / MEDMO_BASE_URL."
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


class StatusError(Exception):
    """An HTTP error status not yet translated; :meth:`ServerClient.status_error` does that."""

    def __init__(self, response: httpx.Response):
        super().__init__(response.status_code)
        self.response = response


class ServerClient:
    """One OpenAI-compatible server: a pooled ``httpx`` client plus error translation.

    Args:
        base_url: Server URL, with or without ``/v1``.
        api_key: Bearer token, if the server wants one; sent only in the header.
        timeout_s: Seconds to wait for an answer (per read while streaming).
        retries: Extra attempts after connection errors and 429/502/503/504.
        backoff_s: First retry delay; it doubles each time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        retries: int = 2,
        backoff_s: float = 0.5,
    ):
        self.base_url = normalize_base_url(base_url)
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.has_key = bool(api_key)
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def send(
        self, method: str, path: str, body: dict[str, Any] | None = None, stream: bool = False
    ) -> httpx.Response:
        """Send with retries; return the last response, which may carry an error status.

        Raises:
            BackendUnavailableError: The server cannot be reached, or it timed out.
        """
        url = self.base_url + path
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            request = self._client.build_request(method, url, json=body)
            try:
                response = self._client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                if attempt == attempts:
                    plural = "s" if attempts > 1 else ""
                    raise BackendUnavailableError(
                        f"Cannot reach the model server at {self.base_url} "
                        f"({_reason(exc)}; {attempts} attempt{plural}).",
                        input=self.base_url,
                        fix=START_HINT,
                    ) from exc
                delay = self.backoff_s * 2 ** (attempt - 1)
                reason = _reason(exc)
            except httpx.TimeoutException as exc:
                raise self.timeout_error(exc) from exc
            else:
                if response.status_code not in RETRY_STATUS or attempt == attempts:
                    return response
                delay = _retry_after(response, self.backoff_s * 2 ** (attempt - 1))
                reason = f"HTTP {response.status_code}"
                response.close()
            log.warning(
                "Retrying %s %s in %.2fs after %s (attempt %d of %d).",
                method,
                url,
                delay,
                reason,
                attempt + 1,
                attempts,
            )
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str) -> dict[str, Any]:
        """GET ``path`` and return its JSON object, translating error statuses."""
        response = self.send("GET", path)
        if response.status_code >= 400:
            raise self.status_error(response)
        return self.json(response)

    def list_models(self) -> list[str]:
        """Names of the models the server offers (``GET /models``)."""
        data = self.get_json("/models").get("data")
        if not isinstance(data, list):
            raise self.malformed(str(data))
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    # ----- reading answers -----

    def json(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object in ``response``, or a clear error when it is not one."""
        try:
            data = response.json()
        except ValueError as exc:
            raise self.malformed(response.text) from exc
        if not isinstance(data, dict):
            raise self.malformed(response.text)
        return data

    def parse_chunk(self, payload: str) -> dict[str, Any]:
        """One streamed chunk as a dict (an ``{"error": ...}`` event included)."""
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise self.malformed(payload) from exc
        if not isinstance(chunk, dict):
            raise self.malformed(payload)
        return chunk

    # ----- errors -----

    def malformed(self, text: str) -> BackendError:
        """The error for an answer that is not OpenAI-shaped."""
        return BackendError(
            f"The server at {self.base_url} answered with something that is not an OpenAI "
            f"chat completion: {text[:200]!r}",
            input=self.base_url,
            fix="Check that --base-url points at an OpenAI-compatible API (it usually ends "
            "in /v1).",
        )

    def timeout_error(self, exc: Exception) -> BackendUnavailableError:
        """The error for a server that did not answer in time."""
        return BackendUnavailableError(
            f"The model server at {self.base_url} did not answer within {self.timeout_s:g}s "
            f"({type(exc).__name__}).",
            input=self.base_url,
            fix="Raise MEDMO_REQUEST_TIMEOUT_S, ask for fewer new tokens, or check the "
            "server's load.",
        )

    def stream_error(self, chunk: dict[str, Any]) -> BackendError:
        """The error for an ``{"error": ...}`` event in the middle of a streamed answer."""
        return BackendError(
            f"The model server at {self.base_url} failed while generating: {message_of(chunk)}",
            input=self.base_url,
            fix="See the server's log; retry with a smaller image or fewer new tokens.",
        )

    def broken_stream_error(self, exc: Exception) -> BackendUnavailableError:
        """The error for a connection lost in the middle of a streamed answer."""
        return BackendUnavailableError(
            f"The connection to the model server at {self.base_url} broke while streaming "
            f"({type(exc).__name__}).",
            input=self.base_url,
            fix="Check that the server is still running (it may have crashed or restarted), "
            "then retry.",
        )

    def status_error(self, response: httpx.Response, model: str | None = None) -> BackendError:
        """Turn an error response into the error that tells the user what to do.

        Args:
            response: A response with status >= 400 (its body already read).
            model: The model name requested, to recognise "no such model" answers.
        """
        status = response.status_code
        message = message_of(_safe_json(response)) or response.text[:300]
        message = message or response.reason_phrase
        where = f"The model server at {self.base_url}"
        if status in (401, 403):
            sent = "the API key it was given" if self.has_key else "a request without an API key"
            return BackendUnavailableError(
                f"{where} refused {sent} (HTTP {status}: {message}).",
                input=self.base_url,
                fix="Set MEDMO_API_KEY (or OPENAI_API_KEY) to a key the server accepts "
                "(for vLLM, the --api-key it was started with).",
            )
        if status in (400, 404, 422) and model is not None:
            missing = self._model_missing(model)
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

    def _model_missing(self, model: str) -> BackendUnavailableError | None:
        """The error for a model name the server does not know, if that is the cause."""
        try:
            models = self.list_models()
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


def _safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response, default: float) -> float:
    """The server's ``Retry-After`` in seconds (capped at 30), else ``default``."""
    try:
        return min(30.0, max(0.0, float(response.headers.get("retry-after", ""))))
    except ValueError:
        return default


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "refused" in text.lower() or "errno 111" in text.lower():
        return "connection refused"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
