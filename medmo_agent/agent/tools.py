"""The toolkit's methods as LangChain tools, for agents that run in this process.

Each tool is made from the :class:`~medmo_agent.toolkit.Toolkit` method of the same name:
its argument schema comes from the method's signature (image arguments become strings:
a path, a ``data:`` URI or a ``medmo://`` handle), its description from the method's
docstring. A tool returns the result's short summary to the planner and keeps the full
result model as the message's artifact, which traces and widgets read.

A :class:`~medmo_agent.errors.MedmoError` becomes an error observation carrying the fix,
so the planner can correct its call instead of the run failing.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.tools import StructuredTool, ToolException
from pydantic import Field, create_model

from ..errors import MedmoError

__all__ = ["DEFAULT_TOOLS", "describe_result", "format_tool_error", "toolkit_tools"]

#: Tools offered by default, in the order a planner sees them (the toolkit's tool names).
DEFAULT_TOOLS = (
    "vqa",
    "ground",
    "report",
    "reason",
    "classify",
    "detect",
    "summarize_report",
    "text_qa",
)

# Call-control arguments a planner should not set.
_HIDDEN = {"self", "on_text", "cancel", "max_new_tokens"}
_IMAGE_PARAMS = {"image", "images", "image_a", "image_b"}
_SECTION = re.compile(r"^\s*(Args|Arguments|Returns|Raises|Yields|Example|Examples):\s*$", re.M)


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


def _split_doc(doc: str) -> tuple[str, dict[str, str]]:
    doc = inspect.cleandoc(doc or "")
    match = _SECTION.search(doc)
    description = (doc[: match.start()] if match else doc).strip()
    args: dict[str, str] = {}
    m = re.search(r"^\s*(Args|Arguments):\s*$(.*?)(?=^\s*\w+:\s*$|\Z)", doc, re.M | re.S)
    if m:
        current = None
        for line in m.group(2).splitlines():
            head = re.match(r"^\s{0,8}(\*{0,2}\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
            if head and not line.startswith(" " * 9):
                current = head.group(1).lstrip("*")
                args[current] = head.group(2).strip()
            elif current and line.strip():
                args[current] += " " + line.strip()
    return description, args


def _annotation(method: Callable[..., Any], name: str, raw: Any) -> Any:
    if name in _IMAGE_PARAMS:
        return str
    if raw is inspect.Parameter.empty:
        return Any
    if not isinstance(raw, str):
        return raw
    module = inspect.getmodule(method)
    namespace = {**vars(typing), **(vars(module) if module else {})}
    try:
        return eval(raw, namespace)  # the toolkit's own annotations, not user input
    except Exception:
        return Any


def _args_schema(name: str, method: Callable[..., Any], docs: dict[str, str]) -> type:
    fields: dict[str, Any] = {}
    for param in inspect.signature(method).parameters.values():
        if param.name in _HIDDEN or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        ann = _annotation(method, param.name, param.annotation)
        description = docs.get(param.name) or (
            "Image: a file path, a data: URI, or a medmo:// handle from an earlier result."
            if param.name in _IMAGE_PARAMS
            else None
        )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (ann, Field(default, description=description))
    return create_model(f"{name}_args", **fields)


def toolkit_tools(
    toolkit: Any,
    names: Sequence[str] = DEFAULT_TOOLS,
    *,
    on_text: Callable[[str], None] | None = None,
) -> list[StructuredTool]:
    """LangChain tools made from a toolkit's methods.

    Args:
        toolkit: A :class:`~medmo_agent.toolkit.Toolkit` (or anything with the same methods).
        names: Which tools to offer, by tool name (``Toolkit`` ``TOOL_NAMES``); defaults
            to every task.
        on_text: Called with each piece of text the model generates inside a tool, for
            live display.

    Returns:
        Tools returning ``(summary, result model)`` as content and artifact.
    """
    tools = []
    for name in names:
        from ..toolkit import TOOL_NAMES

        method = getattr(toolkit, TOOL_NAMES.get(name, name))
        description, arg_docs = _split_doc(method.__doc__ or name)
        tools.append(
            StructuredTool.from_function(
                func=_make_call(method, on_text),
                name=name,
                description=description or name,
                args_schema=_args_schema(name, method, arg_docs),
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
