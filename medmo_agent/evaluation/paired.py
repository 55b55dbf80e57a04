"""Paired comparison of two modes on the same items, with a bootstrap confidence interval."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of mode B minus mode A on the same items.

    Attributes:
        n: items compared.
        accuracy_a: mode A's accuracy.
        accuracy_b: mode B's accuracy.
        difference: ``accuracy_b - accuracy_a``.
        ci_low: lower bound of the percentile bootstrap interval.
        ci_high: upper bound.
        confidence: the interval's level.
        only_a: items only A got right.
        only_b: items only B got right.
    """

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    only_a: int
    only_b: int


def paired_bootstrap(
    correct_a: Sequence[bool],
    correct_b: Sequence[bool],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Bootstrap the mean per-item difference (B right minus A right), resampling items.

    Args:
        correct_a: mode A's verdict per item.
        correct_b: mode B's verdict for the same items, in the same order.
        resamples: bootstrap resamples.
        confidence: interval level, in (0, 1).
        seed: the generator's seed (same seed, same interval).

    Raises:
        ValueError: on unequal or empty inputs, or a bad ``resamples``/``confidence``.
    """
    if len(correct_a) != len(correct_b):
        raise ValueError(
            f"paired comparison needs the same items: mode A has {len(correct_a)} verdicts, "
            f"mode B {len(correct_b)}; score both modes on the same item list"
        )
    if not correct_a:
        raise ValueError("paired comparison needs at least one item; got none")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    diff = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedDifference(
        n=len(diff),
        accuracy_a=float(a.mean()),
        accuracy_b=float(b.mean()),
        difference=float(diff.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        only_a=int(((a == 1) & (b == 0)).sum()),
        only_b=int(((a == 0) & (b == 1)).sum()),
    )
