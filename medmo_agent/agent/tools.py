"""MedMO's tasks as LangChain tools, for agents that run in this process.

Each tool is generated from the task's declaration in the registry
(:mod:`medmo_agent.tasks.registry`): its argument schema is the task's arguments model
(the image as a string: a path, a ``data:`` URI or a ``medmo://`` handle), its
description the task's LLM-facing description. A tool calls the toolkit method of the
same name, returns the result's short summary to the planner and keeps the full result
model as the message's artifact, which traces and widgets read.

A :class:`~medmo_agent.errors.MedmoError` becomes an error observation carrying the fix,
so the planner can correct its call instead of the run failing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.tools import StructuredTool, ToolException

from ..errors import MedmoError
from ..tasks.registry import TASKS, find_task

__all__ = ["DEFAULT_TOOLS", "describe_result", "format_tool_error", "toolkit_tools"]

#: Tools offered by default, in the order a planner sees them: every task.
DEFAULT_TOOLS = tuple(TASKS)

# A planner does not choose the length budget: the run's settings do.
_PLANNER_HIDDEN = ("max_new_tokens",)


def format_tool_error(exc: BaseException) -> str:
    """What the planner reads when a tool fails: what was wrong and what to do."""
    if isinstance(exc, ToolException) and exc.args and isinstance(exc.args[0], MedmoError):
        exc = exc.args[0]
    if isinstance(exc, MedmoError):
        return f"Error ({type(exc).__name__}): {exc}"
    return f"Error: {exc}"


def describe_result(result: Any) -> str:
    """A result as the planner reads it: its summary, plus the handle of its image."""
    text = result.summary() if hasattr(result, "summary") else str(result)
    image = getattr(result, "image", None)
    extra = []
    if image is not None and getattr(image, "handle", None):
        extra.append(f"image: {image.handle}")
    if getattr(result, "result_uri", None):
        extra.append(f"result: {result.result_uri}")
    return text + (f"\n({'; '.join(extra)})" if extra else "")


def toolkit_tools(
    toolkit: Any,
    names: Sequence[str] = DEFAULT_TOOLS,
    *,
    on_text: Callable[[str], None] | None = None,
) -> list[StructuredTool]:
    """LangChain tools made from a toolkit's methods.

    Args:
        toolkit: A :class:`~medmo_agent.toolkit.Toolkit` (or anything with the same methods).
        names: Which tools to offer, by task name; defaults to every task.
        on_text: Called with each piece of text the model generates inside a tool, for
            live display.

    Returns:
        Tools returning ``(summary, result model)`` as content and artifact.
    """
    tools = []
    for name in names:
        task = find_task(name)
        tools.append(
            StructuredTool.from_function(
                func=_make_call(getattr(toolkit, task.name), on_text),
                name=task.name,
                description=task.tool_description,
                args_schema=task.arguments_model(exclude=_PLANNER_HIDDEN),
                response_format="content_and_artifact",
                handle_tool_error=format_tool_error,
            )
        )
    return tools


def _make_call(method: Callable[..., Any], on_text: Callable[[str], None] | None):
    accepts_on_text = "on_text" in inspect.signature(method).parameters

    def call(**kwargs: Any) -> tuple[str, Any]:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if on_text is not None and accepts_on_text:
            kwargs["on_text"] = on_text
        try:
            result = method(**kwargs)
        except MedmoError as exc:
            # Raised as ToolException so the tool's error handler turns it into an
            # error observation for the planner rather than ending the run.
            raise ToolException(exc) from exc
        return describe_result(result), result

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call
