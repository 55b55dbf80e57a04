"""The one place where this surface translates :class:`MedmoError` for MCP clients.

A tool failure becomes a tool result with ``isError`` set, whose text says what was
wrong, with which input, and what to do: an LLM caller reads it and retries with a fixed
argument. A resource failure becomes an MCP resource error with the same text. Anything
that is not a ``MedmoError`` is a bug and is left to the SDK, which reports it without
internals and keeps serving.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import CallToolResult, TextContent

from medmo_agent.errors import MedmoError, NotFoundError

__all__ = ["error_text", "resource_error", "tool_error_result"]


def error_text(exc: MedmoError) -> str:
    """``"<ErrorClass>: <message> [input: ...] Fix: ..."``, one paragraph."""
    return f"{type(exc).__name__}: {exc}"


def tool_error_result(exc: MedmoError) -> CallToolResult:
    """A tool result flagged as an error, carrying the explanation as text."""
    return CallToolResult(content=[TextContent(type="text", text=error_text(exc))], is_error=True)


def resource_error(exc: MedmoError) -> ResourceError:
    """The SDK exception to raise from a resource reader for ``exc``."""
    if isinstance(exc, NotFoundError):
        return ResourceNotFoundError(error_text(exc))
    return ResourceError(error_text(exc))
