"""Tool calling in the Qwen chat template's format, as plain text in and out.

Qwen3-VL (and so MedMO) is prompted with a ``# Tools`` section that lists JSON function
signatures inside ``<tools></tools>`` and answers with calls like::

    <tool_call>
    {"name": "ground", "arguments": {"image": "chest.png"}}
    </tool_call>

This module renders that prompt section, renders earlier calls and tool results back into
the conversation, and parses calls out of generated text. It is pure (no LangChain, no
model) so it can be tested on golden outputs, and it never raises on any input text:
whatever cannot be read as a call becomes an :class:`InvalidCall` with the reason.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TOOL_CALL_END",
    "TOOL_CALL_START",
    "InvalidCall",
    "ParsedOutput",
    "ToolCall",
    "ToolCallStreamSplitter",
    "parse_tool_calls",
    "render_tool_call",
    "render_tool_responses",
    "render_tools_section",
]

TOOL_CALL_START = "<tool_call>"
TOOL_CALL_END = "</tool_call>"

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)


@dataclass(frozen=True)
class ToolCall:
    """A well-formed call: a tool name and a JSON object of arguments."""

    name: str
    arguments: dict[str, Any]
    id: str


@dataclass(frozen=True)
class InvalidCall:
    """A ``<tool_call>`` block that could not be read, with what was wrong."""

    raw: str
    error: str
    id: str
    name: str | None = None


@dataclass
class ParsedOutput:
    """Generated text split into prose and tool calls."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_calls: list[InvalidCall] = field(default_factory=list)


def _new_id() -> str:
    return "call_" + uuid.uuid4().hex[:12]


def render_tools_section(tools: Iterable[Mapping[str, Any]], system: str | None = None) -> str:
    """The system turn's text when tools are offered, exactly as Qwen's template writes it.

    Args:
        tools: Tool schemas in OpenAI's function format (``{"type": "function", ...}``).
        system: The caller's own system prompt, placed before the tools section.
    """
    lines = [json.dumps(dict(t), ensure_ascii=False) for t in tools]
    head = f"{system}\n\n" if system else ""
    return (
        head + "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        + "".join("\n" + line for line in lines)
        + "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def render_tool_call(name: str, arguments: Mapping[str, Any] | str) -> str:
    """One earlier call, as the assistant turn carries it."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f'<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'


def render_tool_responses(contents: Iterable[str]) -> str:
    """Consecutive tool results, as the user turn that carries them back to the model."""
    return "\n".join(f"<tool_response>\n{c}\n</tool_response>" for c in contents)


def _load_object(text: str) -> tuple[Any, str | None]:
    """Read the JSON object in ``text``; tolerate Python-literal quoting and trailing prose."""
    text = text.strip()
    if not text:
        return None, "the <tool_call> block is empty"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError):
        pass
    start = text.find("{")
    if start >= 0:
        try:
            value, _end = json.JSONDecoder().raw_decode(text[start:])
            return value, None
        except (ValueError, RecursionError):
            pass
        end = text.rfind("}")
        if end > start:
            try:  # single-quoted keys, True/False/None: safe literal evaluation only
                return ast.literal_eval(text[start : end + 1]), None
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
    return None, "the <tool_call> block is not valid JSON"


def _read_call(raw: str, make_id: Callable[[], str]) -> ToolCall | InvalidCall:
    value, error = _load_object(raw)
    call_id = make_id()
    if error is not None:
        return InvalidCall(raw=raw.strip(), error=error, id=call_id)
    if not isinstance(value, dict):
        return InvalidCall(raw=raw.strip(), error="the call is not a JSON object", id=call_id)
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return InvalidCall(raw=raw.strip(), error='the call has no "name" string', id=call_id)
    name = name.strip()
    args: Any = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):  # some models emit the arguments object JSON-encoded
        loaded, err = _load_object(args) if args.strip() else ({}, None)
        if err is not None:
            return InvalidCall(
                raw=raw.strip(), error='"arguments" is not a JSON object', id=call_id, name=name
            )
        args = loaded
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return InvalidCall(
            raw=raw.strip(), error='"arguments" is not a JSON object', id=call_id, name=name
        )
    return ToolCall(name=name, arguments=args, id=call_id)


def parse_tool_calls(text: str, *, make_id: Callable[[], str] | None = None) -> ParsedOutput:
    """Split generated text into prose and ``<tool_call>`` blocks.

    A block cut off by the token limit (no closing tag) is still read if its JSON is
    complete. Never raises: unreadable blocks become :class:`InvalidCall` entries.

    Args:
        text: The model's output, verbatim.
        make_id: Makes a call id; defaults to random ``call_<hex>`` ids.
    """
    make_id = make_id or _new_id
    calls: list[ToolCall] = []
    invalid: list[InvalidCall] = []
    for match in _BLOCK.finditer(text):
        parsed = _read_call(match.group(1), make_id)
        if isinstance(parsed, ToolCall):
            calls.append(parsed)
        else:
            invalid.append(parsed)
    content = _BLOCK.sub("", text)
    # A stray closing tag (opening tag lost) is noise, not prose.
    content = content.replace(TOOL_CALL_END, "").strip()
    return ParsedOutput(content=content, tool_calls=calls, invalid_calls=invalid)


class ToolCallStreamSplitter:
    """Splits streamed text into prose to show now and call text to hold back.

    Feed pieces as they arrive; :meth:`feed` returns the prose that is safe to emit
    (never a partial ``<tool_call>`` tag). Everything from the first ``<tool_call>`` on
    is held, since calls are parsed once the generation ends.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._in_call = False

    def feed(self, piece: str) -> str:
        """Add a piece; return the prose that can be shown now."""
        if self._in_call:
            return ""
        self._pending += piece
        idx = self._pending.find(TOOL_CALL_START)
        if idx >= 0:
            self._in_call = True
            out, self._pending = self._pending[:idx], ""
            return out
        # Hold back a tail that could be the start of "<tool_call>".
        keep = 0
        for n in range(min(len(TOOL_CALL_START) - 1, len(self._pending)), 0, -1):
            if TOOL_CALL_START.startswith(self._pending[-n:]):
                keep = n
                break
        out = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep :]
        return out

    def flush(self) -> str:
        """The prose still held when the stream ends (none if a call started)."""
        out, self._pending = ("" if self._in_call else self._pending), ""
        return out
