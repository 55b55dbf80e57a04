"""How a box is shown in the interactive viewers: its colour and its hover text.

The Jupyter ``ImageViewer`` and the MCP App viewer draw boxes with the same front end;
both take a box's colour and text from here, so a finding looks and reads the same in
a notebook and in a chat client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .types import Box

__all__ = ["box_detail", "canvas_boxes", "colour_for"]


def colour_for(label: str, labels: Sequence[str]) -> str:
    """The CSS colour of a label, the same one the PNG overlays use for it."""
    from .imaging.overlay import label_colours

    colours = label_colours([*labels, label])
    r, g, b = colours[label]
    return f"#{r:02x}{g:02x}{b:02x}"


def box_detail(box: Box, pixel_spacing: tuple[float, float] | None = None) -> str:
    """The text shown on hover or click: label, corners and size in pixels, and mm if known."""
    w = box.x2 - box.x1
    h = box.y2 - box.y1
    text = (
        f"{box.label}: x {box.x1:.0f}–{box.x2:.0f}, y {box.y1:.0f}–{box.y2:.0f} px "
        f"({w:.0f} × {h:.0f} px)"
    )
    width_mm, height_mm = box.width_mm, box.height_mm
    if width_mm is None and pixel_spacing is not None:
        row_mm, col_mm = pixel_spacing
        width_mm, height_mm = w * col_mm, h * row_mm
    if width_mm is not None and height_mm is not None:
        text += f"\n{width_mm:.1f} × {height_mm:.1f} mm"
    return text


def canvas_boxes(
    boxes: Sequence[Box],
    pixel_spacing: tuple[float, float] | None = None,
    visible: Sequence[bool] | None = None,
) -> list[dict[str, Any]]:
    """The boxes as the viewer front end draws them (``jupyter_ext/static/canvas.js``).

    Args:
        boxes: Boxes in original-image pixels.
        pixel_spacing: (row, column) mm per pixel, for sizes in mm.
        visible: Whether each box is drawn (default: all).

    Returns:
        One dict per box: ``label``, ``x1``..``y2``, ``color``, ``visible``, ``detail``.
    """
    labels = [b.label for b in boxes]
    shown = list(visible) if visible is not None else [True] * len(boxes)
    return [
        {
            "label": b.label,
            "x1": b.x1,
            "y1": b.y1,
            "x2": b.x2,
            "y2": b.y2,
            "color": colour_for(b.label, labels),
            "visible": bool(on),
            "detail": box_detail(b, pixel_spacing),
        }
        for b, on in zip(boxes, shown, strict=True)
    ]
