"""A chat-model planner's failures as one clear :class:`~medmo_agent.errors.MedmoError`.

A LangChain chat model on an OpenAI-compatible server fails with the ``openai`` client's
exceptions (server unreachable, 400 for a prompt over the context length, 401, 404 for an
unknown model name). They are the user's to fix, so they become a ``BackendError`` with
the fix rather than a traceback; any other exception is left alone (it is a bug).
"""

from __future__ import annotations

import sys

from ..errors import BackendError, BackendUnavailableError, MedmoError

__all__ = ["planner_error"]


def planner_error(exc: BaseException) -> MedmoError | None:
    """``exc`` as a ``MedmoError`` when it is a planner server's failure, else ``None``."""
    openai = sys.modules.get("openai")  # only an imported client can have raised its errors
    if openai is None or not isinstance(exc, getattr(openai, "APIError", ())):
        return None
    url = _url(exc)
    where = f"The planner's server{f' at {url}' if url else ''}"
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
        return BackendUnavailableError(
            f"{where} cannot be reached ({_reason(exc)}).",
            input="--planner-base-url",
            fix="Start the server, or pass its address as --planner-base-url "
            "(e.g. http://host:8000/v1).",
        )
    status = getattr(exc, "status_code", None)
    detail = _reason(exc)
    if status in (401, 403):
        fix = "Pass the server's key as --planner-api-key or set OPENAI_API_KEY."
    elif status == 404:
        fix = (
            "Check --planner-model names a model the server serves, and that "
            "--planner-base-url ends in /v1."
        )
    elif status == 400:
        fix = (
            "Check that the server's context length fits the agent's prompt and "
            "--max-new-tokens (e.g. vLLM --max-model-len), and that --planner-model is right."
        )
    elif status == 429 or (status is not None and status >= 500):
        fix = "The server is overloaded or failing; retry later or check its log."
    else:
        fix = "Check the planner's server and --planner-model."
    code = f"HTTP {status}: " if status is not None else ""
    return BackendError(f"{where} refused the request ({code}{detail}).", input=url, fix=fix)


def _url(exc: BaseException) -> str:
    request = getattr(exc, "request", None)
    try:
        url = request.url if request is not None else None
    except RuntimeError:  # httpx raises when the request was never built
        return ""
    return str(url) if url else ""


def _reason(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return _one_line(str(message))
    # the client's own text ("Connection error.") hides the reason; the causes say it
    # (langchain-openai wraps the client's error, which wraps httpx's)
    current: BaseException | None = exc
    for _ in range(6):
        if current is None:
            break
        text = str(current)
        if text and text not in _GENERIC:
            return _one_line(text)
        current = current.__cause__ or current.__context__
    return _one_line(str(exc) or type(exc).__name__)


_GENERIC = {"Connection error.", "Request timed out."}


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
