"""Readable errors for tool and prompt arguments that do not fit the declared ones.

The caller is usually an LLM: it fixes an argument and retries when told which argument
was wrong, what was expected and what it sent, e.g. ``Argument 'max_new_tokens' must be
an integer; got 'abc'.``. Pydantic's own text (error codes, URLs, the whole argument
dict) is written for programmers and is replaced here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_types import Prompt
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

__all__ = ["prompt_arguments_problem", "tool_arguments_text"]

#: Longest excerpt of a rejected value quoted back to the caller.
_SHOWN_CHARS = 80

_TYPES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list (JSON array)",
    "dict_type": "an object",
    "model_type": "an object",
}


def tool_arguments_text(tool: str, error: ValidationError) -> str:
    """One paragraph naming each rejected argument, what it must be and what was sent.

    Args:
        tool: The tool's name.
        error: The validation error raised for the call's arguments.
    """
    problems: list[str] = []
    seen: set[tuple] = set()
    for detail in error.errors():
        loc = tuple(detail["loc"])
        if loc in seen:  # one line per argument, even when several rules failed
            continue
        seen.add(loc)
        problems.append(_problem(detail))
    return (
        f"Invalid arguments for tool '{tool}': {' '.join(problems)} "
        f"Correct {'this argument' if len(problems) == 1 else 'these arguments'} and call "
        f"'{tool}' again; its input schema lists every argument and its type."
    )


def _problem(detail: ErrorDetails) -> str:
    name = _argument_name(detail["loc"])
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    if kind == "missing":
        return f"Argument '{name}' is required but was not given."
    if kind == "extra_forbidden":
        return f"Argument '{name}' is not an argument of this tool."
    expected = _expected(kind, ctx)
    if expected is None:
        # A rule without a phrase of its own: pydantic's short message still names it.
        message = detail["msg"]
        expected = "valid (" + message[:1].lower() + message[1:] + ")"
    return f"Argument '{name}' must be {expected}; got {_shown(detail.get('input'))}."


def _expected(kind: str, ctx: Mapping[str, Any]) -> str | None:
    if kind in _TYPES:
        return _TYPES[kind]
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {ctx.get(key)}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "a non-empty string" if n == 1 else f"a string of at least {n} characters"
    if kind == "string_too_long":
        return f"a string of at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"a list of at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"a list of at most {ctx.get('max_length')} items"
    if kind in ("literal_error", "enum"):
        return f"one of {ctx.get('expected')}"
    return None


def _argument_name(loc: Sequence[int | str]) -> str:
    name = str(loc[0]) if loc else "arguments"
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def _shown(value: Any) -> str:
    """The rejected value as the caller wrote it, cut short if long (an image, say)."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..." + f" ({len(text)} characters)"
    return text


def prompt_arguments_problem(
    prompts: Sequence[Prompt], name: str, arguments: Mapping[str, Any] | None
) -> str | None:
    """Why ``prompts/get`` for ``name`` with ``arguments`` cannot be answered, or ``None``.

    Args:
        prompts: The prompts the server offers.
        name: The requested prompt.
        arguments: The arguments sent with it.
    """
    by_name = {p.name: p for p in prompts}
    prompt = by_name.get(name)
    if prompt is None:
        offered = ", ".join(sorted(by_name)) or "none"
        return f"Unknown prompt {_shown(name)}. This server offers: {offered}."
    declared = {a.name: a for a in prompt.arguments or []}
    given = dict(arguments or {})
    signature = ", ".join(a.name + ("" if a.required else " (optional)") for a in declared.values())
    missing = [a for a in declared if declared[a].required and a not in given]
    if missing:
        listed = ", ".join(repr(a) for a in missing)
        return (
            f"Prompt {name!r} needs the argument{'s' if len(missing) > 1 else ''} {listed}. "
            f"Its arguments are: {signature}."
        )
    unknown = [a for a in given if a not in declared]
    if unknown:
        listed = ", ".join(repr(a) for a in unknown)
        return f"Prompt {name!r} has no argument {listed}. Its arguments are: {signature}."
    return None
