"""The image canvas: an anywidget view that draws labelled boxes over an image.

Hover and click need JavaScript, so this one view is an anywidget (an ES module string,
no build step); every control around it is a plain ipywidget.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from medmo_agent.box_display import box_detail, colour_for

__all__ = ["BoxCanvas", "box_detail", "colour_for", "png_bytes", "png_data_url"]

_STATIC = Path(__file__).parent / "static"


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, 3) uint8 array as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def png_data_url(pixels: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URL of an 8-bit image."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


class BoxCanvas(anywidget.AnyWidget):
    """An image with boxes; reports the box under the pointer and the box clicked.

    ``boxes`` holds dicts with ``label``, ``x1``..``y2`` (original pixels), ``color``,
    ``visible`` and ``detail`` (the hover text). ``zoom`` 0 fits the cell; any other value
    is screen pixels per image pixel. Incrementing ``export_count`` makes the browser
    download the image with its visible boxes as PNG.
    """

    _esm = (_STATIC / "canvas.js").read_text(encoding="utf-8")
    _css = (_STATIC / "canvas.css").read_text(encoding="utf-8")

    image_src = traitlets.Unicode("").tag(sync=True)
    image_key = traitlets.Unicode("").tag(sync=True)
    image_width = traitlets.Int(0).tag(sync=True)
    image_height = traitlets.Int(0).tag(sync=True)
    boxes = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    hovered = traitlets.Int(-1).tag(sync=True)
    zoom = traitlets.Float(0.0).tag(sync=True)
    max_height = traitlets.Int(520).tag(sync=True)
    export_count = traitlets.Int(0).tag(sync=True)
    export_name = traitlets.Unicode("medmo.png").tag(sync=True)

    def set_pixels(self, pixels: np.ndarray, key: str = "") -> None:
        """Show a new 8-bit rendering (same geometry keeps the boxes where they are)."""
        height, width = pixels.shape[:2]
        with self.hold_sync():
            self.image_width = int(width)
            self.image_height = int(height)
            self.image_src = png_data_url(pixels)
            self.image_key = key
