"""LangChain messages -> the project's chat messages, in the Qwen tool format.

Images may arrive as any LangChain image content block: OpenAI-style ``image_url`` parts,
v1 ``image`` blocks carrying ``base64`` data or a ``url``, or legacy ``source_type`` blocks.
URLs may be ``data:`` URIs, file paths or ``medmo://`` handles; they are loaded through
the caller's image loader, which enforces the allowed folders. Remote ``http(s)`` URLs are
refused: the model runs offline and should not fetch from the network on a prompt's say.

Tool turns are rendered as text exactly as Qwen's chat template renders them (calls as
``<tool_call>`` blocks in the assistant turn, results as ``<tool_response>`` blocks in a
user turn), so tool calling works on every backend, remote ones included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InputError
from ..types import ImagePart, MedImage, Message, TextPart
from .tool_calls import render_tool_call, render_tool_responses, render_tools_section

__all__ = ["ImageLoader", "image_source", "to_project_messages"]

#: Turns an image reference (path, ``data:`` URI, ``medmo://`` handle) into an image.
ImageLoader = Callable[[str], MedImage]


def image_source(block: Mapping[str, Any]) -> str | None:
    """The image reference inside a LangChain content block, or ``None`` if it is no image."""
    kind = block.get("type")
    if kind == "image_url":
        value = block.get("image_url")
        return value.get("url") if isinstance(value, Mapping) else value
    if kind != "image":
        return None
    if block.get("base64") or block.get("data"):
        data = block.get("base64") or block.get("data")
        if block.get("source_type") in (None, "base64") or "base64" in block:
            mime = block.get("mime_type") or "image/png"
            return f"data:{mime};base64,{data}"
    for key in ("url", "path", "handle"):
        if block.get(key):
            return str(block[key])
    return None


def _content_parts(content: Any, load: ImageLoader | None, *, images: bool) -> list:
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    parts: list[TextPart | ImagePart] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(TextPart(block))
            continue
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            parts.append(TextPart(str(block.get("text", ""))))
            continue
        src = image_source(block)
        if src is None or not images:
            continue
        if src.startswith(("http://", "https://")):
            raise InputError(
                "Remote image URLs are not fetched.",
                input=src[:200],
                fix="Download the image and pass its path, or send it as a data: URI.",
            )
        if load is None:
            raise InputError(
                "This message carries an image but no image loader was configured.",
                input="image",
                fix="Create ChatMedMO with a toolkit (ChatMedMO(backend=..., toolkit=...)).",
            )
        parts.append(ImagePart(load(src)))
    return parts


def _text_of(content: Any) -> str:
    parts = _content_parts(content, None, images=False)
    return "".join(p.text for p in parts if isinstance(p, TextPart))


def _merge(parts: list) -> str | list:
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts)
    return parts


def to_project_messages(
    messages: Sequence[Any],
    *,
    load_image: ImageLoader | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> list[Message]:
    """Convert LangChain messages to project messages, rendering tools Qwen's way.

    Args:
        messages: LangChain ``BaseMessage`` objects.
        load_image: Loads images referenced in content blocks.
        tools: OpenAI-format tool schemas offered to the model (rendered into the system
            turn); ``None`` or empty offers none.

    Raises:
        InputError: An image cannot be used (remote URL, no loader).
    """
    out: list[Message] = []
    system_text: str | None = None
    pending_tool_results: list[str] = []

    def flush_tools() -> None:
        if pending_tool_results:
            out.append(Message("user", render_tool_responses(pending_tool_results)))
            pending_tool_results.clear()

    for msg in messages:
        role = getattr(msg, "type", None)
        if role == "tool":
            pending_tool_results.append(_text_of(msg.content))
            continue
        flush_tools()
        if role == "system":
            text = _text_of(msg.content)
            system_text = text if system_text is None else f"{system_text}\n\n{text}"
        elif role in ("human", "user"):
            out.append(
                Message("user", _merge(_content_parts(msg.content, load_image, images=True)))
            )
        elif role in ("ai", "assistant"):
            text = _text_of(msg.content)
            calls = [
                render_tool_call(c["name"], c.get("args") or {})
                for c in getattr(msg, "tool_calls", None) or []
            ]
            calls += [
                render_tool_call(c.get("name") or "unknown", _as_args(c.get("args")))
                for c in getattr(msg, "invalid_tool_calls", None) or []
            ]
            body = "\n".join(([text] if text else []) + calls)
            out.append(Message("assistant", body))
        else:  # chat messages with custom roles: treat as user text
            out.append(Message("user", _text_of(msg.content)))
    flush_tools()

    if tools:
        system_text = render_tools_section(tools, system_text)
    if system_text is not None:
        out.insert(0, Message("system", system_text))
    return out


def _as_args(raw: Any) -> str:
    if isinstance(raw, str):
        try:
            json.loads(raw)
            return raw
        except ValueError:
            return json.dumps(raw)
    return json.dumps(raw or {})
