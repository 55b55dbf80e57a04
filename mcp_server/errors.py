"""The one place where this surface translates :class:`MedmoError` for MCP clients.

A tool failure becomes a tool result with ``isError`` set, whose text says what was
wrong, with which input, and what to do: an LLM caller reads it and retries with a fixed
argument. A resource failure becomes an MCP resource error with the same text. Anything
that is not a ``MedmoError`` is a bug and is left to the SDK, which reports it without
internals and keeps serving.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import CallToolResult, ResourceLink, TextContent

from medmo_agent.errors import BackendError, MedmoError, NotFoundError
from medmo_agent.tasks.results import GroundingResult, TaskResult

__all__ = [
    "UnreadableAnswerError",
    "check_answer",
    "error_text",
    "resource_error",
    "tool_error_result",
]

_EXCERPT = 300


class UnreadableAnswerError(BackendError):
    """The model answered, but not in a form the task can use (no boxes, no text).

    The parsed result is kept (``result``) so the caller still sees the raw answer.
    """

    def __init__(self, message: str, *, result: TaskResult, fix: str):
        super().__init__(message, input=result.task, fix=fix)
        self.result = result


def check_answer(result: TaskResult) -> None:
    """Raise :class:`UnreadableAnswerError` when ``result`` carries no usable answer.

    The task parsers never raise (a batch run keeps every answer); a tool caller, though,
    is better served by an error it can act on than by a result with nothing in it.
    """
    raw = result.raw_text.strip()
    kept = f" The full answer is kept at {result.result_uri}." if result.result_uri else ""
    if not raw:
        raise UnreadableAnswerError(
            "MedMO returned an empty answer." + kept,
            result=result,
            fix="Retry, rephrase the request, or raise max_new_tokens.",
        )
    if isinstance(result, GroundingResult) and result.found and not result.boxes:
        excerpt = raw if len(raw) <= _EXCERPT else raw[:_EXCERPT] + "..."
        raise UnreadableAnswerError(
            f"MedMO answered, but no bounding boxes could be read from its answer: "
            f"{excerpt!r}.{kept}",
            result=result,
            fix="Retry with a larger max_new_tokens if the answer was cut off, name the "
            "targets explicitly, or ask with `vqa` for an answer in words.",
        )


def error_text(exc: MedmoError) -> str:
    """``"<ErrorClass>: <message> [input: ...] Fix: ..."``, one paragraph."""
    return f"{type(exc).__name__}: {exc}"


def tool_error_result(exc: MedmoError, hide_paths: tuple[str, ...] = ()) -> CallToolResult:
    """A tool result flagged as an error, carrying the explanation as text.

    An unreadable answer also carries the parsed result as structured content, and a
    link to it as the server keeps it, so a client can still show what the model said.
    ``hide_paths`` are replaced by labels (``medmo_agent.privacy``) in the text and the
    structured content.
    """
    from medmo_agent.privacy import scrub_data, scrub_text

    from .render import result_links

    structured = None
    content: list[TextContent | ResourceLink] = [
        TextContent(type="text", text=scrub_text(error_text(exc), hide_paths))
    ]
    if isinstance(exc, UnreadableAnswerError):
        structured = exc.result.model_dump(mode="json")
        if hide_paths:
            structured = scrub_data(structured, paths=hide_paths)
        content.extend(result_links(exc.result, overlay=False))
    return CallToolResult(
        content=content,
        structured_content=structured,
        is_error=True,
    )


def resource_error(exc: MedmoError) -> ResourceError:
    """The SDK exception to raise from a resource reader for ``exc``."""
    if isinstance(exc, NotFoundError):
        return ResourceNotFoundError(error_text(exc))
    return ResourceError(error_text(exc))
