"""LangChain/LangGraph surface: MedMO as a chat model, the planning agent, the
deterministic diagnostic workflow, and traces of both.

Imports are lazy so that ``import medmo_agent`` does not import LangChain::

    from medmo_agent.agent import ChatMedMO, DiagnosticWorkflow, Trace, create_medmo_agent
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SYSTEM_PROMPT",
    "ChatMedMO",
    "DiagnosticWorkflow",
    "MedmoAgent",
    "StepContext",
    "Trace",
    "TraceStep",
    "create_medmo_agent",
    "mcp_tools",
    "parse_tool_calls",
    "toolkit_tools",
]

_WHERE = {
    "ChatMedMO": "chat_model",
    "DiagnosticWorkflow": "workflow",
    "StepContext": "workflow",
    "MedmoAgent": "agent",
    "create_medmo_agent": "agent",
    "SYSTEM_PROMPT": "prompts",
    "Trace": "trace",
    "TraceStep": "trace",
    "mcp_tools": "mcp",
    "parse_tool_calls": "tool_calls",
    "toolkit_tools": "tools",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
