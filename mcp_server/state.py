"""What the server shares across sessions and requests: one toolkit over one model.

The state is built once in the server's lifespan; the model loads there (not per
session, not per request) and every call shares it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio

from medmo_agent.config import Settings

from .audit import AuditLog
from .config import ServerConfig
from .store import ResultStore

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from medmo_agent.backends.base import Backend
    from medmo_agent.imaging import ImageResolver
    from medmo_agent.toolkit import Toolkit

__all__ = ["ServerState", "build_state", "lifespan_state", "state_lifespan"]

logger = logging.getLogger("mcp_server")


@dataclass
class ServerState:
    """Everything a tool call needs, shared by all sessions.

    Attributes:
        toolkit: MedMO's tasks over the one backend.
        backend: The model.
        resolver: Turns image arguments into images, confined to ``allowed_dirs``.
        settings: Model settings (limits on tokens, image bytes and pixels).
        config: Server options.
        store: Earlier results, by URI.
        audit: The audit log, when enabled.
        allowed_dirs: Folders whose images may be read.
    """

    toolkit: Toolkit
    backend: Backend
    resolver: ImageResolver
    settings: Settings
    config: ServerConfig
    store: ResultStore
    audit: AuditLog | None
    allowed_dirs: tuple[Path, ...]


def build_state(
    settings: Settings,
    config: ServerConfig,
    resolver: ImageResolver,
    backend: Backend | None = None,
) -> ServerState:
    """Create the backend (loading the model) and the toolkit around ``resolver``.

    Args:
        settings: Model settings.
        config: Server options.
        resolver: The confined image resolver (its folders are the allowed ones).
        backend: An existing backend to share (tests, embedding); created from
            ``settings`` when omitted.
    """
    from medmo_agent.backends import create_backend
    from medmo_agent.toolkit import Toolkit

    allowed = resolver.allowed_dirs
    if backend is None:
        logger.info("loading %s (%s backend)", settings.model, settings.backend)
        backend = create_backend(settings)
    toolkit = Toolkit(backend, settings, resolver)
    audit = AuditLog(config.audit_log) if config.audit_log else None
    return ServerState(
        toolkit=toolkit,
        backend=backend,
        resolver=resolver,
        settings=settings,
        config=config,
        store=ResultStore(config.max_result_store),
        audit=audit,
        allowed_dirs=allowed,
    )


def state_lifespan(
    settings: Settings,
    config: ServerConfig,
    resolver: ImageResolver,
    backend: Backend | None = None,
) -> Any:
    """A lifespan for :class:`MCPServer` that builds the state once and closes it at exit.

    A backend passed in belongs to the caller and is left open.
    """

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[ServerState]:
        # Loading weights takes seconds to minutes: keep the event loop free meanwhile.
        state = await anyio.to_thread.run_sync(build_state, settings, config, resolver, backend)
        try:
            yield state
        finally:
            if backend is None:
                state.backend.close()

    return lifespan


def lifespan_state(ctx: Context) -> ServerState:
    """The state :func:`state_lifespan` built, from a request's context."""
    # MCP's Context types the lifespan value as a dict unless parameterised, and tool
    # functions take a plain Context (that is how MCP finds the parameter to fill)
    return cast("ServerState", ctx.request_context.lifespan_context)
