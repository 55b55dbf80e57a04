"""Scoring modes and the named MedEvalKit deviations the ``medevalkit`` mode reproduces."""

from __future__ import annotations

import enum
from typing import Literal

Compat = Literal["correct", "medevalkit"]
"""``correct`` (default) fixes MedEvalKit's bugs; ``medevalkit`` reproduces them."""

COMPAT_MODES: tuple[Compat, ...] = ("correct", "medevalkit")


class Deviation(enum.Enum):
    """A MedEvalKit bug that the default scoring fixes (value: what the bug does)."""

    OPEN_ACC_DIVIDED_TWICE = (
        "open 'acc' is right/total, then divided by total again with the other open metrics"
    )
    F1_LABELS_PERMUTED = (
        "token F1 is returned as (f1, precision, recall) but read as (precision, recall, f1)"
    )
    PATHVQA_JUDGE_CLOSED_ZERO = (
        "with the LLM judge, PathVQA resets closed 'right' to 0 and never recounts it"
    )
    SLAKE_JUDGE_CLOSED_TWICE = (
        "with the LLM judge, SLAKE keeps the rule-based closed count and adds the judge's"
    )
    MMMU_OPEN_CHARACTERS = "MMMU open answers are the raw response, iterated character by character"


def check_compat(compat: str) -> Compat:
    """Validate a compat mode name.

    Args:
        compat: ``"correct"`` or ``"medevalkit"``.

    Returns:
        The same name, typed.

    Raises:
        ValueError: for any other name.
    """
    if compat == "correct":
        return "correct"
    if compat == "medevalkit":
        return "medevalkit"
    raise ValueError(
        f"unknown scoring compat mode {compat!r}: use 'correct' (bugs fixed, the default) "
        "or 'medevalkit' (reproduce MedEvalKit's published scoring)"
    )
