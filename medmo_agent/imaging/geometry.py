"""Image geometry of the Qwen3-VL processor: how big an image is when the model sees it.

One visual token covers 32x32 px (patch 16 x spatial merge 2); the processor rounds
height and width to multiples of 32 within a pixel budget.
"""

from __future__ import annotations

import math

__all__ = ["PATCH_FACTOR", "model_input_size", "smart_resize", "visual_tokens"]

PATCH_FACTOR = 32


def smart_resize(
    height: int,
    width: int,
    factor: int = PATCH_FACTOR,
    min_pixels: int = 65_536,
    max_pixels: int = 16_777_216,
) -> tuple[int, int]:
    """Qwen-VL's resize rule: returns (height, width), multiples of ``factor``, with
    ``min_pixels <= height * width <= max_pixels`` and the aspect ratio kept closely."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_input_size(
    size: tuple[int, int], min_pixels: int = 65_536, max_pixels: int = 1_048_576
) -> tuple[int, int]:
    """(width, height) the model sees for an image of ``size`` = (width, height)."""
    w, h = size
    h2, w2 = smart_resize(h, w, min_pixels=min_pixels, max_pixels=max_pixels)
    return (w2, h2)


def visual_tokens(
    size: tuple[int, int], min_pixels: int = 65_536, max_pixels: int = 1_048_576
) -> int:
    """Number of visual tokens for an image of ``size`` = (width, height)."""
    w, h = model_input_size(size, min_pixels, max_pixels)
    return (w // PATCH_FACTOR) * (h // PATCH_FACTOR)
