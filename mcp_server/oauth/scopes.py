"""Which scopes a JSON-RPC message needs.

Every request needs the read scope: listing and reading images, results and resources,
prompts, completions, the session itself. Calling a tool that runs the model needs the
model scope as well. Every MedMO task tool runs the model; the viewer's app-only tool only
re-renders what the server already holds, so it is in :data:`MODEL_FREE_TOOLS`. A call whose tool
name cannot be read needs both scopes (the SDK refuses it anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..viewer_app import VIEW_TOOL

if TYPE_CHECKING:
    from .config import OAuthConfig

__all__ = ["MODEL_FREE_TOOLS", "required_scopes", "tool_runs_model"]

#: Tools callable with the read scope alone (they never run the model).
MODEL_FREE_TOOLS: frozenset[str] = frozenset({VIEW_TOOL})


def tool_runs_model(name: Any) -> bool:
    """Whether calling the tool ``name`` runs the model (unknown: assume it does)."""
    return not (isinstance(name, str) and name in MODEL_FREE_TOOLS)


def required_scopes(message: Any, config: OAuthConfig) -> list[str]:
    """The scopes the decoded JSON-RPC ``message`` (or a list of them) needs, read first."""
    needed = [config.read_scope]
    for item in message if isinstance(message, list) else [message]:
        if isinstance(item, dict) and item.get("method") == "tools/call":
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if tool_runs_model(name):
                needed.append(config.model_scope)
    return list(dict.fromkeys(needed))
