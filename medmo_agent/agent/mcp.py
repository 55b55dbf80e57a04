"""The tools of any MCP server as LangChain tools, through ``langchain.mcp.MCPAdapter``.

A target is an ``http(s)://`` URL (streamable HTTP) or a command line that starts a
server over stdio (``"python -m mcp_server --model ..."``). The connection stays open for
the ``async with`` block, so a stdio server (and its model) starts once per block, not
once per call. MCP tools are async-only: run agents and workflows with ``arun`` (``run``
does this for you)::

    async with mcp_tools("python -m mcp_server --model MBZUAI/MedMO-4B-Next") as tools:
        trace = await DiagnosticWorkflow(tools).arun("chest.png")
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..errors import BackendUnavailableError, ConfigError

__all__ = ["describe_target", "mcp_tools"]


def describe_target(target: str) -> str:
    """How traces name a target: ``mcp:<url>`` or ``mcp:stdio:<program>`` (no arguments,
    which may carry paths)."""
    if target.startswith(("http://", "https://")):
        return f"mcp:{target.split('?')[0]}"
    argv = shlex.split(target)
    return f"mcp:stdio:{os.path.basename(argv[0]) if argv else ''}"


def _transport(target: str, token: str | None, env: Mapping[str, str] | None) -> Any:
    try:
        from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
    except ImportError as exc:  # pragma: no cover - the extra is a dependency
        raise ConfigError(
            "Connecting to an MCP server needs FastMCP.",
            input="--mcp",
            fix="pip install 'langchain[mcp]'",
        ) from exc
    if target.startswith(("http://", "https://")):
        token = token or os.environ.get("MEDMO_AUTH_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return StreamableHttpTransport(target, headers=headers)
    argv = shlex.split(target)
    if not argv:
        raise ConfigError(
            "The MCP target is empty.",
            input="--mcp",
            fix="Give an http(s) URL or a command such as 'python -m mcp_server'.",
        )
    # The server inherits this environment (model cache, MEDMO_* settings, offline flags).
    return StdioTransport(argv[0], argv[1:], env=dict(env if env is not None else os.environ))


def _for_the_model(tool: Any) -> bool:
    """Whether an agent may see ``tool``: MCP Apps marks tools meant only for an app's
    view (e.g. re-rendering an image for a viewer) with a visibility that leaves out
    ``"model"``, and hosts keep those out of the model's tool list."""
    mcp = (getattr(tool, "metadata", None) or {}).get("mcp") or {}
    meta = (mcp.get("tool") or {}).get("_meta") or {}
    visibility = (meta.get("ui") or {}).get("visibility")
    return visibility is None or "model" in visibility


@asynccontextmanager
async def mcp_tools(
    target: str,
    *,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[list[Any]]:
    """Connect to an MCP server and yield its tools as (async) LangChain tools.

    Args:
        target: ``http(s)://host:port/mcp`` or a command line starting a stdio server.
        token: Bearer token for HTTP servers (default: ``MEDMO_AUTH_TOKEN``).
        env: Environment of a stdio server (default: this process's).

    Raises:
        BackendUnavailableError: The server cannot be reached or started.
    """
    from langchain_core._api import LangChainBetaWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangChainBetaWarning)
        from langchain.mcp import MCPAdapter

    adapter = MCPAdapter(_transport(target, token, env))
    try:
        await adapter.__aenter__()
    except Exception as exc:
        raise BackendUnavailableError(
            f"Cannot connect to the MCP server: {type(exc).__name__}: {exc}",
            input=describe_target(target),
            fix="Check that the URL is right and the server is running, or that the command "
            "starts a server (try it with --help).",
        ) from exc
    try:
        yield [tool for tool in await adapter.list_tools() if _for_the_model(tool)]
    finally:
        await adapter.__aexit__(None, None, None)
