"""A volume sweep result's findings as text: the cells of its findings table and the
table in Markdown. Plain functions of the result's JSON shape (``VolumeResult.to_dict()``),
without imports, so every report (traces, reviews, result cards) can use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HEAD", "finding_cells", "findings_markdown", "is_volume_data", "swept_line"]

#: Keys that make a result dict a volume sweep's.
_KEYS = ("findings", "per_slice", "shape", "plane")


def is_volume_data(data: Any) -> bool:
    """Whether ``data`` (a dict) is a volume sweep result's JSON shape."""
    return isinstance(data, Mapping) and all(k in data for k in _KEYS)


def finding_cells(f: Mapping[str, Any], frame: str) -> list[str]:
    """One finding's row of the findings table (:data:`HEAD`), as text.

    Args:
        f: A finding of the result's ``findings``.
        frame: The patient frame of its centre (``LPS`` or ``RAS``).
    """
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


#: The findings table's columns.
HEAD = [
    "#",
    "finding",
    "slices",
    "key slice",
    "extent x × y × z",
    "volume (bounding)",
    "centre mm",
]


def swept_line(data: Mapping[str, Any]) -> str:
    """``"1 finding(s) over 24 of 24 axial slice(s)"``, and how many slices failed."""
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
    lines = [f"3D findings: {swept_line(data)}.", ""]
    findings = data.get("findings") or []
    if findings:
        frame = str(data.get("frame") or "")
        lines += ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        for f in findings:
            cells = [c.replace("|", "\\|") for c in finding_cells(f, frame)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if data.get("study_read"):
        lines += [f"**Study read:** {' '.join(str(data['study_read']).split())}", ""]
    lines += [f"- Warning: {w}" for w in data.get("warnings") or []]
    return lines
