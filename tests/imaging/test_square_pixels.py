"""Square pixels for reformatted slices: golden values and properties of the stretch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medmo_agent.imaging.square_pixels import (
    MAX_STRETCH,
    SQUARE_TOLERANCE,
    square_pixels,
    square_size,
)


def test_a_coarse_row_axis_is_stretched_linearly_between_pixel_centres():
    column = np.array([[0.0], [90.0]], dtype=np.float32)  # 2 rows of 3 mm, 1 column of 1 mm
    out, spacing = square_pixels(column, (3.0, 1.0))
    assert spacing == (1.0, 1.0)
    # new centres at old rows -1/3 (edge: 0), 0, 1/3, 2/3, 1, 4/3 (edge: 1)
    assert out[:, 0].tolist() == pytest.approx([0, 0, 30, 60, 90, 90])


def test_a_coarse_column_axis_and_colour_pixels_keep_their_type():
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[:, 1] = (200, 100, 50)
    out, spacing = square_pixels(rgb, (0.5, 1.0))
    assert out.dtype == np.uint8 and out.shape == (2, 4, 3) and spacing == (0.5, 0.5)
    assert out[0, :, 0].tolist() == [0, 50, 150, 200]


def test_square_and_nearly_square_slices_are_left_alone():
    pixels = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert square_pixels(pixels, (0.8, 0.8))[0] is pixels
    assert square_pixels(pixels, (0.8, 0.8 * (1 + SQUARE_TOLERANCE / 2)))[0] is pixels
    assert square_size((3, 4), (0.0, 1.0)) == (3, 4)  # no usable spacing: as stored


def test_a_stretch_past_the_largest_is_taken_for_a_wrong_header_and_not_applied():
    assert square_size((24, 512), (5.0, 0.25)) == (480, 512)  # 20x: a real reformat
    assert square_size((512, 512), (1.0, 0.01)) == (512, 512)  # 100x: shown as stored
    assert MAX_STRETCH == 20


@settings(max_examples=150, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        elements=st.floats(-2000, 4000, width=32),
    ),
    st.floats(0.1, 10.0),
    st.floats(0.1, 10.0),
)
def test_the_stretch_keeps_the_extent_and_the_range_of_values(pixels, row_mm, col_mm):
    out, (new_row, new_col) = square_pixels(pixels, (row_mm, col_mm))
    rows, cols = pixels.shape
    assert out.shape == square_size((rows, cols), (row_mm, col_mm))
    # the slice covers the same millimetres as stored
    assert out.shape[0] * new_row == pytest.approx(rows * row_mm, rel=1e-9)
    assert out.shape[1] * new_col == pytest.approx(cols * col_mm, rel=1e-9)
    # only the coarse axis grows; the fine one keeps its spacing
    assert out.shape[0] >= rows and out.shape[1] >= cols
    fine = min(row_mm, col_mm)
    if 1 + SQUARE_TOLERANCE < max(row_mm, col_mm) / fine <= MAX_STRETCH:
        # square as whole pixels allow: within half a new pixel over the axis's length
        for new_mm, count in ((new_row, out.shape[0]), (new_col, out.shape[1])):
            assert abs(new_mm - fine) <= 0.5 * fine / count + 1e-9
    else:
        assert (new_row, new_col) == (row_mm, col_mm)
    # interpolation invents no value outside the stored range
    assert out.min() >= pixels.min() - 1e-3 and out.max() <= pixels.max() + 1e-3
    if np.ptp(pixels) == 0:
        assert np.allclose(out, pixels.flat[0])
