"""A small overview picture of a sweep: the key slice of each finding, boxes drawn, side
by side, each captioned with its slice and finding; and per-slice overlays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..types import Box, MedImage
from .results import Finding, SliceEntry, VolumeResult

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["overview_strip", "slice_boxes", "slice_overlay", "write_overlay_dir"]


def slice_boxes(entry: SliceEntry, size: tuple[int, int]) -> list[Box]:
    """An entry's boxes as :class:`~medmo_agent.types.Box` (for drawing)."""
    return [Box.from_pixels(b.label, b.box, size) for b in entry.boxes]


def slice_overlay(
    image: MedImage, entry: SliceEntry, *, max_size: int | None = None
) -> Image.Image:
    """One slice with the boxes the model gave it."""
    from ..imaging.overlay import draw_boxes

    return draw_boxes(image, slice_boxes(entry, image.size), max_size=max_size)


def overview_strip(
    render: Callable[[int], MedImage],
    findings: list[Finding],
    *,
    most: int,
    tile: int,
) -> Image.Image | None:
    """The key slices of up to ``most`` findings (largest first), ``tile`` pixels high,
    in one row; ``None`` when there is no finding.

    Args:
        render: Renders a slice by index.
        findings: The sweep's findings.
        most: How many findings to show (``Settings.volume_overview_findings``).
        tile: Height of each tile in pixels.
    """
    from PIL import Image, ImageDraw

    from ..imaging.overlay import _font, draw_boxes

    if not findings:
        return None
    shown = sorted(findings, key=lambda f: (-f.volume_ml, f.id))[:most]
    shown.sort(key=lambda f: (f.key_slice, f.id))
    tiles = []
    for f in shown:
        image = render(f.key_slice)
        # scaled first, then drawn: lines and captions keep one size whatever the slice's
        scale = tile / image.size[1]
        size = (max(1, round(image.size[0] * scale)), tile)
        base = image.to_pil().resize(size, Image.Resampling.LANCZOS)
        x1, y1, x2, y2 = (v * scale for v in next(b.box for b in f.boxes if b.slice == f.key_slice))
        drawn = draw_boxes(base, [Box.from_pixels(f"#{f.id} {f.label}", (x1, y1, x2, y2), size)])
        caption = ImageDraw.Draw(drawn)
        caption.text((4, tile - 16), f"slice {f.key_slice}", fill=(255, 255, 0), font=_font(12))
        tiles.append(drawn)
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 2 * (len(tiles) - 1), tile))
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + 2
    return strip


def write_overlay_dir(
    result: VolumeResult, render: Callable[[int], MedImage], folder: Path
) -> list[Path]:
    """Write ``slice_NNNN.png`` for every swept slice with boxes (the boxes drawn) and
    ``overview.png`` (the key-slice strip) into ``folder``; returns the files written.

    Raises:
        OSError: The folder cannot be created or written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in result.per_slice:
        if not entry.boxes:
            continue
        path = folder / f"slice_{entry.slice:04d}.png"
        slice_overlay(render(entry.slice), entry).save(path, format="PNG")
        written.append(path)
    if result.overview_png is not None:
        path = folder / "overview.png"
        path.write_bytes(result.overview_png)
        written.append(path)
    return written
