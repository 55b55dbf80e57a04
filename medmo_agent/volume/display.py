"""A volume sweep result shown without widgets: its findings as a table (Markdown or HTML)
and its overview strip (the key slices with their boxes) redrawn from the volume.

Traces and review records keep a sweep as its JSON shape (``VolumeResult.to_dict()``), never
its pixels, so the overview is drawn again from the volume the result names when a report
is written; where the volume cannot be read the findings table is shown alone. Everything
here reads the dict, so stored results and live ones render the same way.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import MedmoError
from ..rendering import escape

__all__ = [
    "findings_html",
    "findings_markdown",
    "is_volume_data",
    "overview_png",
    "png_data_uri",
    "volume_html",
]

#: Keys that make a result dict a volume sweep's.
_KEYS = ("findings", "per_slice", "shape", "plane")
_TILE = 160  # px, height of one key slice in a redrawn overview


def is_volume_data(data: Any) -> bool:
    """Whether ``data`` (a dict) is a volume sweep result's JSON shape."""
    return isinstance(data, Mapping) and all(k in data for k in _KEYS)


def _finding_cells(f: Mapping[str, Any], frame: str) -> list[str]:
    first, last = f.get("slice_range") or (f.get("key_slice"), f.get("key_slice"))
    extent = " × ".join(f"{v:.1f}" for v in f.get("extent_mm") or ()) or "–"
    centre = ", ".join(f"{v:.1f}" for v in f.get("center_mm") or ())
    return [
        str(f.get("id", "")),
        str(f.get("label", "")) + (" (isolated)" if f.get("isolated") else ""),
        f"{first}" if first == last else f"{first}–{last}",
        str(f.get("key_slice", "")),
        f"{extent} mm" if extent != "–" else extent,
        f"≤ {float(f.get('volume_ml') or 0):.2f} ml",
        f"({centre}) {frame}".strip() if centre else "–",
    ]


_HEAD = [
    "#",
    "finding",
    "slices",
    "key slice",
    "extent x × y × z",
    "volume (bounding)",
    "centre mm",
]


def _swept_line(data: Mapping[str, Any]) -> str:
    per = data.get("per_slice") or []
    failed = sum(1 for e in per if e.get("error"))
    text = (
        f"{len(data.get('findings') or [])} finding(s) over {len(per) - failed} of "
        f"{len(data.get('slices') or per)} {data.get('plane', '')} slice(s)"
    )
    return text + (f"; {failed} slice(s) failed" if failed else "")


def findings_markdown(data: Mapping[str, Any]) -> list[str]:
    """The sweep as Markdown lines: a summary line, the findings table, the study read and
    the warnings."""
    lines = [f"3D findings: {_swept_line(data)}.", ""]
    findings = data.get("findings") or []
    if findings:
        frame = str(data.get("frame") or "")
        lines += ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
        for f in findings:
            cells = [c.replace("|", "\\|") for c in _finding_cells(f, frame)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if data.get("study_read"):
        lines += [f"**Study read:** {' '.join(str(data['study_read']).split())}", ""]
    lines += [f"- Warning: {w}" for w in data.get("warnings") or []]
    return lines


def findings_html(data: Mapping[str, Any]) -> str:
    """The sweep's findings as an HTML table, with the study read and the warnings."""
    parts = [f"<div class='medmo-volume-summary'>{escape(_swept_line(data))}</div>"]
    findings = data.get("findings") or []
    if findings:
        frame = str(data.get("frame") or "")
        head = "".join(f"<th>{escape(h)}</th>" for h in _HEAD)
        rows = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in _finding_cells(f, frame)) + "</tr>"
            for f in findings
        )
        parts.append(
            "<table class='medmo-volume-findings' style='border-collapse:collapse;margin:4px 0'>"
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
    if data.get("study_read"):
        parts.append(f"<div><b>Study read:</b> {escape(data['study_read'])}</div>")
    warnings = data.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
        parts.append(f"<ul class='medmo-volume-warnings' style='color:#7d4e00'>{items}</ul>")
    return "".join(parts)


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, for pages that must open as one file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def volume_html(data: Mapping[str, Any], overview: bytes | None = None) -> str:
    """The findings table with the overview strip above it (when there is one)."""
    img = (
        f"<img class='medmo-volume-overview' alt='key slices with boxes' "
        f"src='{png_data_uri(overview)}' style='max-width:100%;display:block;margin:4px 0'>"
        if overview
        else ""
    )
    return img + findings_html(data)


def _window(data: Mapping[str, Any]) -> str | None:
    window = ((data.get("image") or {}).get("meta") or {}).get("window") or {}
    if window.get("width") is not None and window.get("level") is not None:
        return f"{window['width']:g}/{window['level']:g}"
    return None


def _renderer(volume: Any, plane: str, window: str | None) -> Callable[[int], Any]:
    from ..imaging.dicom import DicomFile

    if isinstance(volume, DicomFile):
        return lambda i: volume.render(frame=i, window=window)
    return lambda i: volume.render(slice=i, window=window, plane=plane)


def overview_png(data: Mapping[str, Any], image: Any, *, most: int | None = None) -> bytes | None:
    """The overview strip of a sweep, redrawn from its volume: the key slice of each of the
    largest findings, boxes drawn, side by side.

    Args:
        data: The sweep's JSON shape.
        image: Any loaded slice of the volume the sweep ran on (its ``volume`` is re-sliced).
        most: How many findings to show (default ``Settings.volume_overview_findings``).

    Returns:
        PNG bytes, or ``None`` when there is no finding or ``image`` is not that volume
        (another number of slices, or a 2D image).
    """
    from ..imaging.overlay import to_png_bytes
    from .overview import overview_strip
    from .results import Finding

    volume = getattr(image, "volume", None)
    findings = [Finding.model_validate(f) for f in data.get("findings") or []]
    if volume is None or not findings:
        return None
    if most is None:
        from ..config import Settings

        most = Settings.from_env().volume_overview_findings
    render = _renderer(volume, str(data.get("plane") or "axial"), _window(data))
    try:
        probe = render(findings[0].key_slice).meta
    except MedmoError:  # the volume changed since the sweep: show the table alone
        return None
    count = probe.num_frames if probe.frame is not None else probe.num_slices
    if count != (data.get("shape") or [None])[0]:
        return None  # another volume: its key slices would be the wrong pictures
    strip = overview_strip(render, findings, most=most, tile=_TILE)
    return None if strip is None else to_png_bytes(strip)
