"""MedMO's tasks as MCP tools, generated from the task registry.

Each tool's name, title, description (the caller's prompt), input schema (the task's
``Annotated`` parameters: descriptions, limits, defaults) and output schema (the result
model) come from the task's one declaration in :mod:`medmo_agent.tasks.registry`; the
call itself goes through :func:`.runner.run_tool`.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations

from medmo_agent.tasks.declare import Task
from medmo_agent.tasks.params import VIEW_PARAMS
from medmo_agent.tasks.registry import TASKS

from .runner import ToolCall, run_tool
from .viewer_app import viewer_meta

__all__ = ["TOOL_NAMES", "register_tools", "tool_function"]

#: The tools, in the order they are listed: every task of the registry.
TOOL_NAMES = tuple(TASKS)

# Arguments the runner handles itself rather than passing to the task: the image is
# loaded (with its view) before the task runs, and max_new_tokens travels with the hooks.
_RUNNER_ARGUMENTS = frozenset({"image", "max_new_tokens", *VIEW_PARAMS})


def tool_function(task: Task) -> Any:
    """The async MCP tool function of ``task``, with the signature the SDK reads."""

    async def tool(ctx: Context, **arguments: Any) -> CallToolResult:
        given = {k: v for k, v in arguments.items() if v is not None}
        passed = {k: v for k, v in arguments.items() if k not in _RUNNER_ARGUMENTS}

        def work(toolkit: Any, image: Any, hooks: dict[str, Any]) -> Any:
            if image is not None:
                passed["image"] = image
            return task.run(toolkit, **passed, **hooks)

        return await run_tool(
            ctx,
            ToolCall(
                name=task.name,
                arguments=given,
                image=arguments.get("image") if task.takes_image else None,
                image_opts={k: arguments.get(k) for k in VIEW_PARAMS} if task.takes_image else {},
                max_new_tokens=arguments.get("max_new_tokens"),
                overlay=task.boxes,
                text_arguments={k: v for k, v in passed.items() if k in task.text_parameters},
                work=work,
            ),
        )

    parameters = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if p.required else p.default,
            annotation=Annotated[p.value_type, p.field],
        )
        for p in task.parameters
    ]
    parameters.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    returns = Annotated[CallToolResult, task.result]
    tool.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    tool.__annotations__ = {
        **{p.name: p.annotation for p in parameters},
        "return": returns,
    }
    tool.__name__ = task.name
    tool.__qualname__ = task.name
    tool.__doc__ = task.description
    return tool


def _annotations(task: Task) -> ToolAnnotations:
    return ToolAnnotations(
        title=task.title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    )


def register_tools(server: MCPServer) -> None:
    """Add every MedMO task to ``server`` as a tool.

    The tools of viewer tasks name the viewer app (:mod:`.viewer_app`), which clients
    with MCP Apps show the result in.
    """
    for task in TASKS.values():
        server.add_tool(
            tool_function(task),
            name=task.name,
            title=task.title,
            description=task.tool_description,
            annotations=_annotations(task),
            meta=viewer_meta() if task.viewer else None,
        )
