"""Window parsing and the 8-bit mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medmo_agent.errors import InputError
from medmo_agent.imaging import PRESETS, apply_window, auto_window, parse_window
from medmo_agent.imaging.windowing import scale_to_uint8


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("lung", ("explicit", "lung", 1500, -600)),
        ("Mediastinum", ("explicit", "mediastinum", 350, 50)),
        ("soft tissue", ("explicit", "soft_tissue", 400, 40)),
        ("1500/-600", ("explicit", None, 1500, -600)),
        (" 80 / 40 ", ("explicit", None, 80, 40)),
        ((400, 40), ("explicit", None, 400, 40)),
        ("auto", ("auto", "auto", None, None)),
        ("file", ("file", "file", None, None)),
        (None, ("file", "file", None, None)),
    ],
)
def test_window_arguments_parse(arg, expected) -> None:
    spec = parse_window(arg)
    assert (spec.mode, spec.name, spec.width, spec.level) == expected


def test_presets_match_the_documented_ct_windows() -> None:
    assert PRESETS["lung"] == (1500, -600)
    assert PRESETS["bone"] == (2000, 500)
    assert PRESETS["brain"] == (80, 40)
    assert PRESETS["abdomen"] == (400, 50)
    assert PRESETS["liver"] == (150, 30)


@pytest.mark.parametrize("bad", ["lungs", "400", "0/40", "-5/10", (1, 2, 3), ("a", "b"), 7])
def test_bad_windows_are_input_errors_with_a_fix(bad) -> None:
    with pytest.raises(InputError) as err:
        parse_window(bad)
    assert err.value.fix


def test_apply_window_golden_values() -> None:
    raw = np.array([-2000, -1350, -600, 150, 3000], dtype=np.float64)
    assert list(apply_window(raw, 1500, -600)) == [0, 0, 128, 255, 255]
    assert apply_window(raw, 1500, -600).dtype == np.uint8


def test_nan_values_render_black_not_garbage() -> None:
    out = apply_window(np.array([np.nan, 0.0, np.inf]), 100, 0)
    assert list(out) == [0, 128, 255]


@given(
    st.lists(st.floats(-5000, 5000), min_size=2, max_size=50),
    st.floats(1, 5000),
    st.floats(-2000, 2000),
)
def test_apply_window_is_monotonic_and_clipped(values, width, level) -> None:
    raw = np.sort(np.array(values))
    out = apply_window(raw, width, level).astype(int)
    assert (np.diff(out) >= 0).all()
    assert (out[raw <= level - width / 2] == 0).all()
    assert (out[raw >= level + width / 2] == 255).all()


def test_auto_window_spans_the_central_percentiles() -> None:
    raw = np.concatenate([np.linspace(0, 1000, 10_000), [1e6]])  # one outlier
    width, level = auto_window(raw)
    assert level - width / 2 == pytest.approx(5, abs=1)
    assert level + width / 2 == pytest.approx(995, abs=1)
    assert auto_window(np.full((4, 4), 7.0)) == (1.0, 7.5)  # flat image: one grey level


def test_scale_to_uint8_by_bit_depth_or_range() -> None:
    twelve_bit = np.array([0, 2048, 4095], dtype=np.uint16)
    assert list(scale_to_uint8(twelve_bit, bits=12)) == [0, 128, 255]
    assert list(scale_to_uint8(np.array([10.0, 20.0, 30.0]))) == [0, 128, 255]
    assert list(scale_to_uint8(np.array([5, 5], dtype=np.int16))) == [0, 0]


@given(st.integers(1, 5000), st.integers(-3000, 3000))
def test_width_level_strings_round_trip(width, level) -> None:
    spec = parse_window(f"{width}/{level}")
    assert (spec.width, spec.level) == (width, level)
    assert parse_window((width, level)) == spec
