"""MedMO's tasks as MCP tools, resources and prompts, over stdio or streamable HTTP.

Start it with ``medmo serve`` (or ``python -m mcp_server``), or build it in Python::

    from mcp_server import create_server
    server = create_server()          # the model loads when the server starts
    server.run()                      # stdio

Heavy modules (the ``mcp`` SDK, the model) load only when a server is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServerConfig

if TYPE_CHECKING:
    from .app import MedmoServer, create_server

__all__ = ["MedmoServer", "ServerConfig", "create_server"]


def __getattr__(name: str) -> Any:
    if name in ("MedmoServer", "create_server"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
