"""The one renderer of a :class:`~medmo_agent.agent.trace.Trace`, in every form it shows.

Each step kind is described once (:data:`STEP_KINDS`: its title and colour), and a step's
heading, boxes and cost are worded once (:func:`step_title`, :func:`box_lines`,
:func:`step_cost`). From those come the Markdown export, the self-contained HTML page, the
notebook fragment a trace displays as, and the step bodies and conclusion of the notebook's
live trace viewer. All HTML text goes through :func:`medmo_agent.rendering.escape`.

The HTML page shows boxes drawn on a small thumbnail of the step's image, embedded as a PNG
``data:`` URI, so the page can be mailed or archived as one file. When an image cannot be
loaded (a trace reopened on another machine) the boxes are listed without the overlay.

:class:`~medmo_agent.agent.trace.Trace` calls into this module, so this module does not
import it back: traces and their steps are read by attribute (``Any`` below).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..rendering import (
    boxes_table_html,
    error_html,
    escape,
    overview_html,
    png_data_uri,
    result_html,
    volume_html,
)
from ..volume.redraw import overview_png
from ..volume.tables import findings_markdown, is_volume_data

__all__ = [
    "DISCLAIMER",
    "STEP_KINDS",
    "StepKindView",
    "box_lines",
    "conclusion_html",
    "overlay_data_uri",
    "result_model",
    "step_body_html",
    "step_colour",
    "step_cost",
    "step_title",
    "trace_html",
    "trace_to_html",
    "trace_to_markdown",
]

DISCLAIMER = "For research use only; not for clinical decisions."
_THUMB = 320
_ERROR_COLOUR = "#cf222e"
_MUTED = "color:#57606a;font-size:12px"
_CARD = (
    "border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:4px 0;"
    "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;max-width:900px"
)


@dataclass(frozen=True)
class StepKindView:
    """How one step kind shows: its title and the colour of its margin in notebooks."""

    title: str
    colour: str


#: Every step kind, described once for every rendering.
STEP_KINDS: dict[str, StepKindView] = {
    "thought": StepKindView("Thought", "#6a9955"),
    "tool_call": StepKindView("Tool call", "#0969da"),
    "tool_result": StepKindView("Result", "#bc4c00"),
    "final": StepKindView("Conclusion", "#8250df"),
}


def _kind(step: Any) -> StepKindView:
    return STEP_KINDS.get(step.kind, StepKindView(step.kind, "#999"))


def step_title(step: Any, *, details: bool = False, code: bool = False) -> str:
    """``"2. Result — ground [step]"``: number, kind, tool and workflow step.

    Args:
        step: The step.
        details: Add the box count, an error mark and the time (for notebook rows).
        code: Quote the tool name as Markdown code.
    """
    title = f"{step.number}. {_kind(step).title}"
    if step.tool:
        title += f" — `{step.tool}`" if code else f" — {step.tool}"
    if step.workflow_step:
        title += f" [{step.workflow_step}]"
    if details:
        if step.boxes:
            title += f" · {len(step.boxes)} box(es)"
        if is_volume_data(step.result):
            title += f" · {len(step.result['findings'])} finding(s) in 3D"
        if step.status == "error":
            title += " · error"
        if step.seconds:
            title += f" · {step.seconds:.2f} s"
    return title


def step_colour(step: Any) -> str:
    """The step's margin colour: its kind's, or red for a failed step."""
    return _ERROR_COLOUR if step.status == "error" else _kind(step).colour


def box_lines(step: Any) -> list[str]:
    """One ``"label: [x1, y1, x2, y2]"`` line per box of the step, in original pixels."""
    return [f"{b.label}: [{b.x1:.0f}, {b.y1:.0f}, {b.x2:.0f}, {b.y2:.0f}]" for b in step.boxes]


def step_cost(step: Any) -> str:
    """``"0.50 s, 100+12 tokens"``, or ``""`` for a step that cost nothing measured."""
    if not (step.seconds or step.completion_tokens):
        return ""
    return f"{step.seconds:.2f} s, {step.prompt_tokens}+{step.completion_tokens} tokens"


def _arguments(step: Any) -> str:
    return json.dumps(step.arguments, indent=2, ensure_ascii=False)


def _context_line(trace: Any) -> str:
    return ", ".join(f"{k}: {v}" for k, v in trace.context.items() if v not in (None, ""))


# ---- Markdown ------------------------------------------------------------------------


def trace_to_markdown(trace: Any, *, load_image: Callable[[str], Any] | None = None) -> str:
    """The trace as Markdown: header, one section per step, then the conclusion.

    Args:
        trace: The trace.
        load_image: Loads a step's image handle; given, a volume step's overview strip is
            embedded as a ``data:`` image (otherwise its findings table stands alone).
    """
    image_for = _image_cache(load_image) if load_image is not None else None
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
        out.append(f"## {step_title(s, code=True)}")
        if s.kind == "tool_call":
            out.append("```json\n" + _arguments(s) + "\n```")
        elif s.text:
            prefix = "**Error:** " if s.status == "error" and s.kind != "final" else ""
            out.append(prefix + s.text)
        if s.boxes:
            out.append("")
            out.extend(f"- {line}" for line in box_lines(s))
        if is_volume_data(s.result) and s.status == "ok":
            png = _overview(s, image_for) if image_for is not None else None
            if png:
                out += ["", f"![key slices with boxes]({png_data_uri(png)})"]
            out += ["", *findings_markdown(s.result)]
        if step_cost(s):
            out.append(f"\n_{step_cost(s)}_")
        out.append("")
    if trace.stopped:
        out.append(f"**Stopped early:** {trace.stopped}")
    p, c = trace.tokens
    out.append(f"_Total: {trace.seconds:.2f} s, {p}+{c} tokens. {DISCLAIMER}_")
    return "\n".join(out) + "\n"


# ---- a self-contained HTML page ----------------------------------------------------------


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


def _image_cache(load: Callable[[str], Any]) -> Callable[[str | None], Any]:
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

    return image_for


def trace_to_html(trace: Any, *, load_image: Callable[[str], Any] | None = None) -> str:
    """The trace as one HTML page, with box overlays where the image can be loaded."""
    image_for = _image_cache(load_image or _default_loader)
    e = escape
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
        parts.append(f"<div class='{classes}' id='step-{s.number}'><b>{e(step_title(s))}</b>")
        if s.kind == "tool_call":
            parts.append(f"<pre>{e(_arguments(s))}</pre>")
        elif s.text:
            parts.append(f"<pre>{e(s.text)}</pre>")
        if s.boxes:
            img = image_for(s.image)
            if img is not None:
                parts.append(f"<img alt='boxes' src='{overlay_data_uri(img, s.boxes)}'>")
            parts.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in box_lines(s)) + "</ul>")
        if is_volume_data(s.result) and s.status == "ok":
            parts.append(volume_html(s.result, _overview(s, image_for)))
        if step_cost(s):
            parts.append(f"<div class='meta'>{step_cost(s)}</div>")
        parts.append("</div>")
    if trace.stopped:
        parts.append(f"<p><b>Stopped early:</b> {e(trace.stopped)}</p>")
    p, c = trace.tokens
    parts.append(f"<p class='meta'>Total: {trace.seconds:.2f} s, {p}+{c} tokens.</p></body></html>")
    return "".join(parts)


def _overview(step: Any, image_for: Callable[[str | None], Any]) -> bytes | None:
    """A volume step's overview strip, redrawn from its volume (``None``: not readable)."""
    image = image_for(step.image)
    return overview_png(step.result, image) if image is not None else None


def result_model(step: Any) -> Any:
    """The step's result as its pydantic model (e.g. ``GroundingResult``), or ``None``."""
    if step.result is None:
        return None
    from ..tasks import results
    from ..tasks.registry import TASKS, canonical_name

    if step.result_type:
        # results of every kind, the volume task's included, are found by class name
        by_name = {t.result.__name__: t.result for t in TASKS.values()}
        cls = getattr(results, step.result_type, None) or by_name.get(step.result_type)
    else:
        task = TASKS.get(canonical_name(str(step.result.get("task"))))
        cls = task.result if task is not None else None
    if cls is None:
        return None
    try:
        return cls.model_validate(step.result)
    except Exception:
        return None


# ---- notebooks: a fragment, and the live viewer's pieces ----------------------------------


def step_body_html(step: Any, image: Any = None) -> str:
    """The body of one step in a notebook: arguments, text or error, the result card
    (with ``image`` and the step's boxes drawn when given), and the cost."""
    parts = [f"<div style='border-left:4px solid {step_colour(step)};padding-left:8px'>"]
    if step.arguments:
        parts.append(f"<div><b>Arguments</b></div><pre>{escape(_arguments(step))}</pre>")
    if step.status == "error":
        message = (step.error or {}).get("message") or step.text
        parts.append(error_html(str(message)))
    elif step.text and step.kind != "tool_result":
        parts.append(f"<div style='white-space:pre-wrap'>{escape(step.text)}</div>")
    model = result_model(step) if step.kind == "tool_result" else None
    if model is not None and is_volume_data(step.result):
        parts.append(result_html(model, show_image=False))
        png = overview_png(step.result, image) if image is not None else None
        if png:  # the trace keeps no pixels: the strip is drawn again from the volume
            parts.append(overview_html(png))
    elif model is not None:
        parts.append(result_html(model, image=image, show_image=image is not None))
    elif step.kind == "tool_result" and step.text:
        parts.append(f"<div style='white-space:pre-wrap'>{escape(step.text)}</div>")
        if step.boxes:
            parts.append(boxes_table_html(step.boxes))
    if step_cost(step):
        parts.append(f"<div style='{_MUTED}'>{step_cost(step)}</div>")
    parts.append("</div>")
    return "".join(parts)


def conclusion_html(step: Any) -> str:
    """The final step, highlighted: green when the run concluded, red when it stopped."""
    colour, background = (
        (_ERROR_COLOUR, "#fff0f0") if step.status == "error" else ("#1a7f37", "#dafbe1")
    )
    return (
        f"<div class='medmo-conclusion' style='border:2px solid {colour};background:"
        f"{background};border-radius:6px;padding:8px 12px;margin-top:6px'>"
        f"<b>Conclusion</b><div style='white-space:pre-wrap'>{escape(step.text)}</div>"
        f"<div style='color:#57606a;font-size:11px'>{escape(DISCLAIMER)}</div></div>"
    )


def trace_html(trace: Any) -> str:
    """An HTML fragment for an agent or workflow trace: collapsible steps, the conclusion
    highlighted. Unlike :func:`trace_to_html` (a whole page) it is safe to embed in a
    notebook.
    """
    rows = [
        f"<details class='medmo-step' style='border-left:4px solid {step_colour(s)};"
        f"padding:2px 8px;margin:3px 0'><summary>{escape(step_title(s, details=True))}"
        f"</summary>{step_body_html(s)}</details>"
        for s in trace.steps
        if s.kind != "final"
    ]
    final = trace.final
    conclusion = conclusion_html(final) if final is not None else ""
    head = escape(trace.question) if trace.question else "MedMO trace"
    meta = f"{trace.mode} · {len(trace.steps)} steps"
    if trace.seconds:
        meta += f" · {trace.seconds:.1f} s"
    if trace.stopped:
        meta += f" · stopped: {escape(trace.stopped)}"
    return (
        f"<div class='medmo-trace' style='{_CARD}'><b>{head}</b>"
        f"<div style='{_MUTED}'>{meta}</div>{''.join(rows)}{conclusion}</div>"
    )
