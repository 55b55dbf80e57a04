"""HTML pieces the widgets share: errors in red, progress, result cards."""

from __future__ import annotations

from medmo_agent.rendering import error_html, escape, result_html

__all__ = ["error_html", "escape", "progress_html", "result_html"]


def progress_html(what: str, seconds: float, text: str = "") -> str:
    """A running indicator: what is being done, for how long, and the text so far."""
    streamed = (
        f"<div style='white-space:pre-wrap;color:#57606a;margin-top:4px'>{escape(text[-2000:])}"
        "</div>"
        if text
        else ""
    )
    return (
        "<div class='medmo-progress'><span class='medmo-spinner' style='display:inline-block;"
        "width:10px;height:10px;border:2px solid #0969da;border-right-color:transparent;"
        "border-radius:50%;animation:medmo-spin 0.8s linear infinite;margin-right:6px'></span>"
        "<style>@keyframes medmo-spin{to{transform:rotate(360deg)}}</style>"
        f"{escape(what)} … {seconds:.1f} s{streamed}</div>"
    )
