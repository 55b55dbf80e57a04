"""Draw labelled boxes on an image, and encode small PNGs for tool results.

Colours follow the order in which labels first appear in the box list, from a fixed
palette chosen to stand out on grayscale scans, so one label keeps one colour within a
drawing and the same boxes always draw the same way.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..types import Box, MedImage

__all__ = ["PALETTE", "draw_boxes", "label_colours", "to_png_bytes"]

#: Distinct saturated colours (RGB) that read well over grayscale images.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (255, 225, 25),  # yellow
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
    (0, 128, 128),  # teal
    (170, 110, 40),  # brown
)

_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def label_colours(labels: Iterable[str]) -> dict[str, tuple[int, int, int]]:
    """Map each distinct label to a palette colour, in order of first appearance."""
    colours: dict[str, tuple[int, int, int]] = {}
    for label in labels:
        if label not in colours:
            colours[label] = PALETTE[len(colours) % len(PALETTE)]
    return colours


def draw_boxes(
    image: MedImage | Image.Image,
    boxes: Iterable[Box],
    *,
    max_size: int | None = None,
) -> Image.Image:
    """Draw labelled, colour-coded boxes on a copy of an image.

    Args:
        image: A loaded image or a PIL image; box coordinates are in its pixels.
        boxes: Boxes in original-image pixel coordinates.
        max_size: If given, the drawing is first downscaled so its longer side is at most
            this many pixels (boxes are scaled with it), so lines and labels stay legible.

    Returns:
        A new RGB PIL image; the input is not modified.
    """
    base = image.to_pil() if isinstance(image, MedImage) else image.convert("RGB")
    boxes = list(boxes)
    scale = 1.0
    if max_size and max(base.size) > max_size:
        scale = max_size / max(base.size)
        new = (max(1, round(base.width * scale)), max(1, round(base.height * scale)))
        base = base.resize(new, Image.Resampling.LANCZOS)
    else:
        base = base.copy()
    if not boxes:
        return base
    draw = ImageDraw.Draw(base)
    longest = max(base.size)
    line = max(2, round(longest / 300))
    font = _font(max(11, round(longest / 45)))
    colours = label_colours(b.label for b in boxes)
    for box in boxes:
        colour = colours[box.label]
        x1, y1, x2, y2 = (v * scale for v in box.xyxy)
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        _draw_label(draw, box.label, (x1, y1), colour, font, base.size, line)
    return base


def _draw_label(draw, text, corner, colour, font, size, line) -> None:
    if not text:
        return
    x1, y1 = corner
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    pad = max(2, line)
    box_h = th + 2 * pad
    # Above the box when there is room, otherwise just inside its top edge.
    ty = y1 - box_h if y1 - box_h >= 0 else y1
    tx = min(max(0, x1), max(0, size[0] - tw - 2 * pad))
    draw.rectangle((tx, ty, tx + tw + 2 * pad, ty + box_h), fill=colour)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    draw.text((tx + pad - left, ty + pad - top), text, fill=ink, font=font)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_PATHS:
        if Path(path).exists():
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size=size)


def to_png_bytes(
    image: MedImage | Image.Image,
    max_side: int | None = None,
    *,
    max_bytes: int | None = None,
) -> bytes:
    """Encode an image as PNG, small enough to travel in a tool result.

    Grayscale content stored as RGB is written as one channel (lossless, a third of the
    size). The image is downscaled (aspect kept) so its longer side is at most
    ``max_side``, and then further, step by step, until the PNG fits in ``max_bytes``.

    Args:
        image: A loaded image or a PIL image.
        max_side: Longest side in pixels; ``None`` keeps the size. MCP results should use
            e.g. 1024.
        max_bytes: Upper bound on the PNG's size; ``None`` for no bound.

    Returns:
        The PNG bytes.
    """
    if isinstance(image, MedImage):
        gray = image.gray
        pil = Image.fromarray(gray, mode="L") if gray is not None else image.to_pil()
    else:
        pil = image
    if pil.mode not in ("RGB", "RGBA", "L"):
        pil = pil.convert("RGB")
    if pil.mode == "RGB":
        arr = np.asarray(pil)
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
            pil = Image.fromarray(np.ascontiguousarray(arr[..., 0]), mode="L")
    if max_side and max(pil.size) > max_side:
        pil = _shrink(pil, max_side)
    data = _encode(pil)
    while max_bytes and len(data) > max_bytes and max(pil.size) > 16:
        # PNG size scales roughly with pixel count; aim a little under the budget.
        factor = max(0.25, min(0.9, (max_bytes / len(data)) ** 0.5 * 0.95))
        pil = _shrink(pil, max(16, int(max(pil.size) * factor)))
        data = _encode(pil)
    return data


def _shrink(pil: Image.Image, side: int) -> Image.Image:
    pil = pil.copy()
    pil.thumbnail((side, side), Image.Resampling.LANCZOS)
    return pil


def _encode(pil: Image.Image) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
