"""Square pixels for reformatted slices: a coronal or sagittal slice of a volume whose
slices are thicker than its pixels (a CT at 0.7 x 0.7 x 2.5 mm) is stretched along its
coarse axis so that one pixel covers as many millimetres down as across.

Without it the slice is squashed (a 2.5 mm row drawn as tall as a 0.7 mm column): the
anatomy looks wrong in every viewer and the model reads a distorted image. The coarse
axis is upsampled by linear interpolation between pixel centres to the fine spacing, so
no stored value is lost and the slice keeps its extent in millimetres; the spacing
returned is that extent over the new pixel count.

>>> square_size((120, 512), (2.5, 0.7))
(429, 512)
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_STRETCH", "SQUARE_TOLERANCE", "square_pixels", "square_size"]

#: Spacings within this relative difference already count as square.
SQUARE_TOLERANCE = 0.01
#: The largest stretch applied (a coronal slice of 5 mm slices at 0.25 mm pixels needs 20):
#: a larger spacing ratio is more likely a wrong header than a real slice, and the image is
#: shown as stored rather than blown up to its pixel cap.
MAX_STRETCH = 20.0


def square_size(shape: tuple[int, int], spacing: tuple[float, float]) -> tuple[int, int]:
    """The (rows, columns) a slice of ``shape`` at ``spacing`` (row, column mm) gets when
    its coarse axis is brought to the fine spacing; ``shape`` itself when already square."""
    rows, cols = int(shape[0]), int(shape[1])
    row_mm, col_mm = float(spacing[0]), float(spacing[1])
    if row_mm <= 0 or col_mm <= 0 or not np.isfinite([row_mm, col_mm]).all():
        return rows, cols
    fine = min(row_mm, col_mm)
    ratio = max(row_mm, col_mm) / fine
    if ratio <= 1 + SQUARE_TOLERANCE or ratio > MAX_STRETCH:
        return rows, cols
    return max(1, round(rows * row_mm / fine)), max(1, round(cols * col_mm / fine))


def square_pixels(
    pixels: np.ndarray, spacing: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float]]:
    """``pixels`` (rows, columns[, channels]) resampled to square pixels.

    Args:
        pixels: The slice as stored.
        spacing: (row, column) mm per pixel.

    Returns:
        The resampled slice (float32; uint8 stays uint8) and its (row, column) spacing in
        mm. An already square slice comes back unchanged.
    """
    rows, cols = pixels.shape[:2]
    new_rows, new_cols = square_size((rows, cols), spacing)
    if (new_rows, new_cols) == (rows, cols):
        return pixels, (float(spacing[0]), float(spacing[1]))
    out = _stretch(pixels, 0, new_rows) if new_rows != rows else pixels
    out = _stretch(out, 1, new_cols) if new_cols != cols else out
    if pixels.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    new_spacing = (spacing[0] * rows / new_rows, spacing[1] * cols / new_cols)
    return np.ascontiguousarray(out), (float(new_spacing[0]), float(new_spacing[1]))


def _stretch(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation of ``array`` along ``axis`` to ``size`` samples, pixel centres
    aligned (the first and last new pixels sit half a new pixel inside the old edges)."""
    old = array.shape[axis]
    centres = (np.arange(size, dtype=np.float64) + 0.5) * (old / size) - 0.5
    centres = np.clip(centres, 0.0, old - 1.0)
    lo = np.floor(centres).astype(np.intp)
    hi = np.minimum(lo + 1, old - 1)
    weight = (centres - lo).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = size
    weight = weight.reshape(shape)
    data = array.astype(np.float32, copy=False)
    return np.take(data, lo, axis=axis) * (1 - weight) + np.take(data, hi, axis=axis) * weight
