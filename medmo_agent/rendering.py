"""Self-contained HTML for result models: how results display in notebooks and exports.

Result models call :func:`result_html` from their ``_repr_html_``, so a result shows as a
small card in JupyterLab, in exported HTML and anywhere else HTML renders, without
widgets. Box results embed the image with its boxes drawn when the image is a readable
local file (or is passed in). Everything here is plain strings; nothing is imported
until a result is rendered.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable
from typing import Any

__all__ = [
    "boxes_table_html",
    "error_html",
    "escape",
    "findings_html",
    "image_html",
    "overview_html",
    "png_data_uri",
    "report_css",
    "result_html",
    "volume_html",
]

_CARD = (
    "border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:4px 0;"
    "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;max-width:900px"
)
_MUTED = "color:#6e7781;font-size:12px"


def report_css(width_px: int) -> str:
    """The house style the standalone HTML reports (review, evaluation) start from: page,
    header band, tables and the ok/failed badges, with the main column ``width_px`` wide."""
    return f"""
body{{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}}
header,main{{max-width:{width_px}px;margin:0 auto;padding:16px 24px}}
header{{background:#1f3a5f;color:#fff;max-width:none}}
header h1{{margin:0 0 4px;font-size:22px}}.muted{{color:#667}}header .muted{{color:#c9d6ea}}
table{{border-collapse:collapse;margin:8px 0;background:#fff}}
th,td{{border:1px solid #d8dce3;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#eef1f5}}.ok{{background:#d6f2dd;color:#17602c}}
.failed{{background:#fbdcdc;color:#8a1c1c}}
details{{margin:6px 0}}summary{{cursor:pointer;font-weight:600}}
"""


def escape(text: object) -> str:
    """HTML-escape any value for text or a quoted attribute (``None`` shows as nothing).

    The one escape every HTML the project writes goes through.
    """
    return "" if text is None else html.escape(str(text), quote=True)


_e = escape


def error_html(message: str) -> str:
    """An error box in red: the message, whole, so the fix it names is visible."""
    return (
        "<div class='medmo-error' style='color:#b00020;background:#fdecea;border:1px solid "
        "#f5c2c0;border-radius:4px;padding:6px 10px;white-space:pre-wrap'>"
        f"<b>Error:</b> {escape(message)}</div>"
    )


def _pre(text: str) -> str:
    return (
        "<div style='white-space:pre-wrap;margin:4px 0'>" + _e(text.strip()) + "</div>"
        if text and text.strip()
        else ""
    )


def boxes_table_html(boxes: Iterable[Any]) -> str:
    """A table of boxes: label, corners in original pixels, and size in mm when known."""
    rows = []
    for i, b in enumerate(boxes, 1):
        mm = (
            f"{b.width_mm:.1f} × {b.height_mm:.1f}"
            if b.width_mm is not None and b.height_mm is not None
            else "–"
        )
        rows.append(
            f"<tr><td>{i}</td><td>{_e(b.label)}</td>"
            f"<td>{b.x1:.0f}, {b.y1:.0f}, {b.x2:.0f}, {b.y2:.0f}</td><td>{mm}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<table style='border-collapse:collapse;margin:4px 0'>"
        "<thead><tr><th>#</th><th>label</th><th>x1, y1, x2, y2 (px)</th><th>w × h (mm)</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def image_html(image: Any, boxes: Iterable[Any] = (), max_side: int = 512) -> str:
    """An ``<img>`` with the boxes drawn, as an inline PNG (data URI)."""
    from .imaging.overlay import draw_boxes, to_png_bytes

    drawn = draw_boxes(image, list(boxes))
    data = base64.b64encode(to_png_bytes(drawn, max_side=max_side)).decode("ascii")
    return (
        f"<img src='data:image/png;base64,{data}' alt='image with boxes' "
        f"style='max-width:{max_side}px;height:auto;display:block;margin:4px 0'/>"
    )


def _load_local(result: Any) -> Any:
    """The result's image when its handle is a readable local file, else ``None``."""
    ref: Any = getattr(result, "image", None)
    handle = getattr(ref, "handle", None)
    if not handle or "://" in handle or handle.startswith("data:"):
        return None
    if not os.path.exists(handle):
        return None
    meta = ref.meta
    try:
        from .imaging import load_image

        return load_image(handle, slice=meta.slice, frame=meta.frame, plane=meta.plane)
    except Exception:  # a display must never fail because the file moved or changed
        return None


def _header(result: Any) -> str:
    usage = getattr(result, "usage", None)
    bits = [str(getattr(result, "task", "result"))]
    if getattr(result, "model", ""):
        bits.append(os.path.basename(str(result.model).rstrip("/")) or str(result.model))
    if usage is not None and usage.seconds:
        bits.append(f"{usage.seconds:.2f} s")
    if usage is not None and usage.completion_tokens:
        bits.append(f"{usage.completion_tokens} tokens")
    ref = getattr(result, "image", None)
    if ref is not None and getattr(ref, "meta", None) is not None:
        w, h = ref.meta.original_size
        bits.append(f"{_e(os.path.basename(str(ref.meta.source)))} {w}×{h}")
    return f"<div style='{_MUTED}'>" + " · ".join(_e(b) for b in bits) + "</div>"


def _body(result: Any, image: Any, show_image: bool) -> str:
    task = getattr(result, "task", "")
    parts: list[str] = []
    question = getattr(result, "question", None)
    if question:
        parts.append(f"<div><b>Q:</b> {_e(question)}</div>")
    if task == "ground_volume" and hasattr(result, "to_dict"):
        # the strip the sweep drew; a stored result has none (traces draw it again)
        overview = getattr(result, "overview_png", None) if show_image else None
        parts.append(volume_html(result.to_dict(), overview))
    elif hasattr(result, "boxes"):
        parts.append(f"<div>{_e(result.summary().splitlines()[0])}</div>")
        counts = getattr(result, "counts", None)
        if counts:
            parts.append("<div>" + ", ".join(f"{_e(k)}: {v}" for k, v in counts.items()) + "</div>")
        parts.append(boxes_table_html(result.boxes))
        shown = None
        if show_image:
            shown = image if image is not None else _load_local(result)
        if shown is not None:
            parts.append(image_html(shown, result.boxes))
    elif task == "report":
        if result.findings:
            parts.append(f"<div><b>Findings</b></div>{_pre(result.findings)}")
        if result.impression:
            parts.append(
                "<div style='border-left:4px solid #2da44e;padding-left:8px'>"
                f"<b>Impression</b>{_pre(result.impression)}</div>"
            )
        if not result.findings and not result.impression:
            parts.append(_pre(result.report))
    elif task == "reason":
        if result.steps:
            items = "".join(f"<li>{_e(s)}</li>" for s in result.steps)
            parts.append(
                f"<details><summary>Reasoning ({len(result.steps)} steps)</summary>"
                f"<ol>{items}</ol></details>"
            )
        elif result.thinking:
            parts.append(f"<details><summary>Reasoning</summary>{_pre(result.thinking)}</details>")
        parts.append(
            "<div style='border-left:4px solid #2da44e;padding-left:8px'>"
            f"<b>Answer:</b> {_e(result.answer)}</div>"
        )
    elif task == "summarize":
        if result.summary_text:
            parts.append(_pre(result.summary_text))
        if result.key_findings:
            parts.append(
                "<ul>" + "".join(f"<li>{_e(f)}</li>" for f in result.key_findings) + "</ul>"
            )
    elif task == "classify":
        labels = result.labels or (["No Finding"] if result.no_finding else [])
        chips = "".join(
            "<span style='display:inline-block;background:#ddf4ff;border-radius:10px;"
            f"padding:1px 8px;margin:2px'>{_e(lab)}</span>"
            for lab in labels
        )
        parts.append(f"<div>{chips or _e(result.summary())}</div>")
    else:
        parts.append(f"<div><b>A:</b> {_e(result.summary())}</div>")
    for note in getattr(result, "notes", []) or []:
        parts.append(f"<div style='{_MUTED}'>note: {_e(note)}</div>")
    raw = getattr(result, "raw_text", "")
    if raw:
        parts.append(
            f"<details><summary style='{_MUTED}'>raw model text</summary>"
            f"<pre style='white-space:pre-wrap'>{_e(raw)}</pre></details>"
        )
    return "".join(parts)


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, for pages that must open as one file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def findings_html(data: Any) -> str:
    """A volume sweep's findings (its JSON shape) as an HTML table: label, slices, key
    slice, extent in mm, bounding volume and centre; then the study read and warnings."""
    from .volume.tables import HEAD, finding_cells, swept_line

    parts = [f"<div class='medmo-volume-summary'>{_e(swept_line(data))}</div>"]
    findings = data.get("findings") or []
    if findings:
        frame = str(data.get("frame") or "")
        head = "".join(f"<th>{_e(h)}</th>" for h in HEAD)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in finding_cells(f, frame)) + "</tr>"
            for f in findings
        )
        parts.append(
            "<table class='medmo-volume-findings' style='border-collapse:collapse;margin:4px 0'>"
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
    if data.get("study_read"):
        parts.append(f"<div><b>Study read:</b> {_e(data['study_read'])}</div>")
    warnings = data.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f"<ul class='medmo-volume-warnings' style='color:#7d4e00'>{items}</ul>")
    return "".join(parts)


def overview_html(png: bytes) -> str:
    """A volume sweep's overview strip (the key slices with their boxes) as an ``<img>``."""
    return (
        f"<img class='medmo-volume-overview' alt='key slices with boxes' "
        f"src='{png_data_uri(png)}' style='max-width:100%;display:block;margin:4px 0'>"
    )


def volume_html(data: Any, overview: bytes | None = None) -> str:
    """A volume sweep: its overview strip (PNG, when there is one) above its findings."""
    return (overview_html(overview) if overview else "") + findings_html(data)


def result_html(result: Any, image: Any = None, *, show_image: bool = True) -> str:
    """A self-contained HTML card for any task result.

    Args:
        result: A result model from :mod:`medmo_agent.tasks.results`.
        image: The image the result is about (a ``MedImage``), to draw boxes on; by
            default the result's image is reloaded when its handle is a local file.
        show_image: Embed the image with boxes for box results (off when a viewer
            already shows it).

    Returns:
        An HTML fragment with inline styles and, for box results, an inline PNG.
    """
    return (
        f"<div class='medmo-result medmo-{_e(getattr(result, 'task', 'result'))}' "
        f"style='{_CARD}'>{_header(result)}{_body(result, image, show_image)}</div>"
    )
