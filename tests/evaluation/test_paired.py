"""Paired bootstrap of two modes' per-item verdicts."""

import pytest

from medmo_agent.evaluation.paired import paired_bootstrap


def test_identical_modes_have_a_zero_interval():
    r = paired_bootstrap([True, False, True], [True, False, True])
    assert (r.difference, r.ci_low, r.ci_high) == (0.0, 0.0, 0.0)


def test_difference_counts_and_interval():
    a = [True, True, False, False, False, True, False, False]
    b = [True, True, True, True, False, True, True, False]
    r = paired_bootstrap(a, b, seed=1)
    assert r.accuracy_a == 3 / 8 and r.accuracy_b == 6 / 8
    assert r.difference == pytest.approx(3 / 8)
    assert (r.only_a, r.only_b) == (0, 3)
    # B never loses an item, so no resample can favour A
    assert 0.0 <= r.ci_low <= r.difference <= r.ci_high <= 1.0
    assert paired_bootstrap(a, b, seed=1) == r


def test_mismatched_or_empty_inputs_are_named():
    with pytest.raises(ValueError, match="mode A has 2 verdicts, mode B 1"):
        paired_bootstrap([True, False], [True])
    with pytest.raises(ValueError, match="at least one item"):
        paired_bootstrap([], [])
