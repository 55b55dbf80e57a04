"""Load any clinical image as an 8-bit RGB rendering plus de-identified metadata.

Formats: PNG, JPEG, TIFF (16-bit too), BMP, WebP; DICOM (single file, multi-frame,
compressed, or a folder holding one series); NIfTI volumes. One reader per format; this
package's public API is :func:`load_image`, :class:`ImageResolver`, the windowing helpers
and the overlay helpers.

>>> from medmo_agent.imaging import load_image  # doctest: +SKIP
>>> img = load_image("chest_ct/", window="lung")  # doctest: +SKIP
"""

from __future__ import annotations

from .loader import load_image
from .overlay import PALETTE, draw_boxes, label_colours, to_png_bytes
from .resolve import HANDLE_PREFIX, ImageResolver
from .sources import IMAGE_EXTENSIONS, detect_format
from .windowing import PRESETS, apply_window, auto_window, parse_window

__all__ = [
    "HANDLE_PREFIX",
    "IMAGE_EXTENSIONS",
    "PALETTE",
    "PRESETS",
    "ImageResolver",
    "apply_window",
    "auto_window",
    "detect_format",
    "draw_boxes",
    "label_colours",
    "load_image",
    "parse_window",
    "to_png_bytes",
]
