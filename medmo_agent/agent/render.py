"""Render a :class:`~medmo_agent.agent.trace.Trace` as Markdown or self-contained HTML.

HTML shows boxes drawn on a small thumbnail of the step's image, embedded as a PNG
``data:`` URI, so the page can be mailed or archived as one file. When an image cannot be
loaded (a trace reopened on another machine) the boxes are listed without the overlay.

:class:`~medmo_agent.agent.trace.Trace` calls into this module, so this module does not
import it back: traces and their steps are read by attribute (``Any`` below).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from typing import Any

__all__ = ["DISCLAIMER", "overlay_data_uri", "trace_to_html", "trace_to_markdown"]

DISCLAIMER = "For research use only; not for clinical decisions."
_THUMB = 320
_KIND_TITLE = {
    "thought": "Thought",
    "tool_call": "Tool call",
    "tool_result": "Result",
    "final": "Conclusion",
}


def _context_line(trace: Any) -> str:
    return ", ".join(f"{k}: {v}" for k, v in trace.context.items() if v not in (None, ""))


def _box_lines(step: Any) -> list[str]:
    return [f"{b.label}: [{b.x1:.0f}, {b.y1:.0f}, {b.x2:.0f}, {b.y2:.0f}]" for b in step.boxes]


def trace_to_markdown(trace: Any) -> str:
    """The trace as Markdown: header, one section per step, then the conclusion."""
    out = ["# MedMO diagnostic trace", ""]
    if trace.question:
        out.append(f"**Question:** {trace.question}  ")
    if trace.image:
        out.append(f"**Image:** `{trace.image}`  ")
    if trace.context:
        out.append(f"**Context:** {_context_line(trace)}  ")
    out.append(
        f"**Mode:** {trace.mode}" + (f" ({trace.tools_source})" if trace.tools_source else "")
    )
    out.append("")
    for s in trace.steps:
        title = _KIND_TITLE[s.kind] + (f" — `{s.tool}`" if s.tool else "")
        if s.workflow_step:
            title += f" [{s.workflow_step}]"
        out.append(f"## {s.number}. {title}")
        if s.kind == "tool_call":
            out.append(
                "```json\n" + json.dumps(s.arguments, indent=2, ensure_ascii=False) + "\n```"
            )
        elif s.text:
            prefix = "**Error:** " if s.status == "error" and s.kind != "final" else ""
            out.append(prefix + s.text)
        if s.boxes:
            out.append("")
            out.extend(f"- {line}" for line in _box_lines(s))
        if s.seconds or s.completion_tokens:
            out.append(f"\n_{s.seconds:.2f} s, {s.prompt_tokens}+{s.completion_tokens} tokens_")
        out.append("")
    if trace.stopped:
        out.append(f"**Stopped early:** {trace.stopped}")
    p, c = trace.tokens
    out.append(f"_Total: {trace.seconds:.2f} s, {p}+{c} tokens. {DISCLAIMER}_")
    return "\n".join(out) + "\n"


def _default_loader(handle: str) -> Any:
    from ..imaging.loader import load_image

    return load_image(handle)


def overlay_data_uri(image: Any, boxes: list, max_size: int = _THUMB) -> str:
    """A small PNG of ``image`` with ``boxes`` drawn on it, as a ``data:`` URI."""
    from ..imaging.overlay import draw_boxes

    picture = draw_boxes(image, boxes, max_size=max_size)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;color:#222}
.step{border-left:4px solid #bbb;padding:.4rem .8rem;margin:.6rem 0;background:#fafafa}
.thought{border-color:#8a8}.tool_call{border-color:#48c}.tool_result{border-color:#c84}
.final{border-color:#a3c;background:#f6f0fa}.error{border-color:#d22;background:#fff0f0}
pre{white-space:pre-wrap;margin:.3rem 0}img{max-width:100%;border:1px solid #ccc}
.meta{color:#777;font-size:.85em}.disclaimer{color:#a00;font-size:.9em}
"""


def trace_to_html(trace: Any, *, load_image: Callable[[str], Any] | None = None) -> str:
    """The trace as one HTML page, with box overlays where the image can be loaded."""
    load = load_image or _default_loader
    cache: dict[str, Any] = {}

    def image_for(handle: str | None) -> Any:
        if not handle:
            return None
        if handle not in cache:
            try:
                cache[handle] = load(handle)
            except Exception:  # a reopened trace may point at an image no longer there
                cache[handle] = None
        return cache[handle]

    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>MedMO trace</title>",
        f"<style>{_CSS}</style></head><body><h1>MedMO diagnostic trace</h1>",
        f"<p class='disclaimer'>{e(DISCLAIMER)}</p><p>",
    ]
    if trace.question:
        parts.append(f"<b>Question:</b> {e(trace.question)}<br>")
    if trace.image:
        parts.append(f"<b>Image:</b> <code>{e(trace.image)}</code><br>")
    if trace.context:
        parts.append(f"<b>Context:</b> {e(_context_line(trace))}<br>")
    parts.append(f"<b>Mode:</b> {e(trace.mode)}</p>")
    for s in trace.steps:
        classes = f"step {s.kind}" + (" error" if s.status == "error" else "")
        title = _KIND_TITLE[s.kind] + (f" — {s.tool}" if s.tool else "")
        if s.workflow_step:
            title += f" [{s.workflow_step}]"
        parts.append(f"<div class='{classes}' id='step-{s.number}'><b>{s.number}. {e(title)}</b>")
        if s.kind == "tool_call":
            parts.append(f"<pre>{e(json.dumps(s.arguments, indent=2, ensure_ascii=False))}</pre>")
        elif s.text:
            parts.append(f"<pre>{e(s.text)}</pre>")
        if s.boxes:
            img = image_for(s.image)
            if img is not None:
                parts.append(f"<img alt='boxes' src='{overlay_data_uri(img, s.boxes)}'>")
            parts.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in _box_lines(s)) + "</ul>")
        if s.seconds or s.completion_tokens:
            parts.append(
                f"<div class='meta'>{s.seconds:.2f} s, {s.prompt_tokens}+{s.completion_tokens}"
                " tokens</div>"
            )
        parts.append("</div>")
    if trace.stopped:
        parts.append(f"<p><b>Stopped early:</b> {e(trace.stopped)}</p>")
    p, c = trace.tokens
    parts.append(f"<p class='meta'>Total: {trace.seconds:.2f} s, {p}+{c} tokens.</p></body></html>")
    return "".join(parts)
