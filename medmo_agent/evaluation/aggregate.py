"""Per-item VQA scoring and per-benchmark metrics in MedEvalKit's layout.

Layout: ``{"total metrics": {total, right, acc}, "open": {total, right, acc, <open
metrics>}, "close": {total, right, acc}}``; multiple-choice benchmarks have only
``"total metrics"``. An ``acc`` or mean over zero items is ``None`` (MedEvalKit divides by
zero there).

With an LLM judge, the correct scoring takes closed items from the rules and open items from
the judge, for every benchmark; ``compat="medevalkit"`` reproduces PathVQA's lost closed
count and SLAKE's double closed count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from medmo_agent.evaluation.compat import Compat, check_compat
from medmo_agent.evaluation.extraction import pre_extract
from medmo_agent.evaluation.judging import judge_closed, judge_yes_no
from medmo_agent.evaluation.text_metrics import OPEN_METRICS, open_metrics

VqaBenchmark = Literal["vqa_rad", "path_vqa", "slake"]
Metrics = dict[str, dict[str, float | int | None]]


@dataclass(frozen=True)
class VqaItemScore:
    """One VQA item's rule-based verdict.

    Attributes:
        kind: ``"close"`` or ``"open"``, as the benchmark splits them.
        correct: the rule verdict (open: exact match).
        metrics: the open metrics (empty for closed items).
    """

    kind: Literal["close", "open"]
    correct: bool
    metrics: dict[str, float] = field(default_factory=dict)


def score_vqa_item(
    benchmark: VqaBenchmark,
    answer: str,
    response: str,
    *,
    answer_type: str | None = None,
    compat: Compat = "correct",
) -> VqaItemScore:
    """Score one VQA-RAD, PathVQA or SLAKE item by MedEvalKit's rules.

    VQA-RAD and PathVQA: the item is closed iff the answer (lowercased, stripped) is
    ``yes``/``no``, judged by :func:`judge_yes_no`; otherwise open. SLAKE: closed iff
    ``answer_type`` is not ``OPEN``; a closed ``yes``/``no`` answer (case as given) uses
    :func:`judge_yes_no`, any other closed answer needs :func:`judge_closed`'s exact equality.

    Args:
        benchmark: ``vqa_rad``, ``path_vqa`` or ``slake``.
        answer: the gold answer.
        response: the raw model response.
        answer_type: SLAKE's ``answer_type`` (``OPEN`` or ``CLOSED``); required for SLAKE.
        compat: passed to :func:`open_metrics` (F1 labels).
    """
    text = pre_extract(response)
    if benchmark == "slake":
        if answer_type is None:
            raise ValueError("SLAKE items need answer_type ('OPEN' or 'CLOSED') to be scored")
        if answer_type != "OPEN":
            if answer in ("yes", "no"):
                return VqaItemScore("close", judge_yes_no(answer, text))
            return VqaItemScore("close", judge_closed(answer, text))
    elif benchmark in ("vqa_rad", "path_vqa"):
        answer, text = answer.lower().strip(), text.lower().strip()
        if answer in ("yes", "no"):
            return VqaItemScore("close", judge_yes_no(answer, text))
    else:
        raise ValueError(f"unknown VQA benchmark {benchmark!r}: use vqa_rad, path_vqa or slake")
    scores = open_metrics(answer, text, compat=compat)
    return VqaItemScore("open", scores["em"] == 1.0, scores)


def _ratio(right: float, total: int) -> float | None:
    return right / total if total else None


def vqa_metrics(
    benchmark: VqaBenchmark,
    items: Sequence[VqaItemScore],
    *,
    judge: Sequence[bool] | None = None,
    compat: Compat = "correct",
) -> Metrics:
    """A benchmark's metrics in MedEvalKit's layout.

    Args:
        benchmark: ``vqa_rad``, ``path_vqa`` or ``slake``.
        items: every item's :func:`score_vqa_item` result.
        judge: optional LLM-judge verdicts, one per item (closed ones are ignored by the
            correct scoring; MedEvalKit's SLAKE counts them).
        compat: ``"medevalkit"`` reproduces :attr:`Deviation.OPEN_ACC_DIVIDED_TWICE` and,
            with a judge, :attr:`Deviation.PATHVQA_JUDGE_CLOSED_ZERO` /
            :attr:`Deviation.SLAKE_JUDGE_CLOSED_TWICE`.
    """
    compat = check_compat(compat)
    if judge is not None and len(judge) != len(items):
        raise ValueError(f"judge has {len(judge)} verdicts for {len(items)} items; give one each")
    open_items = [(i, s) for i, s in enumerate(items) if s.kind == "open"]
    close_items = [(i, s) for i, s in enumerate(items) if s.kind == "close"]
    close_right = sum(s.correct for _, s in close_items)
    if judge is None:
        open_right = sum(s.correct for _, s in open_items)
    else:
        open_right = sum(judge[i] for i, _ in open_items)
    total_right = close_right + open_right
    if judge is not None and compat == "medevalkit":
        if benchmark == "path_vqa":
            close_right, total_right = 0, open_right
        elif benchmark == "slake":
            judged_close = sum(judge[i] for i, _ in close_items)
            close_right += judged_close
            total_right = close_right + open_right
    n_open, n_close = len(open_items), len(close_items)
    open_block: dict[str, float | int | None] = {"total": n_open, "right": open_right}
    for name in OPEN_METRICS:
        open_block[name] = _ratio(sum(s.metrics[name] for _, s in open_items), n_open)
    acc = _ratio(open_right, n_open)
    if compat == "medevalkit" and acc is not None:
        acc /= n_open
    open_block["acc"] = acc
    return {
        "total metrics": {
            "total": len(items),
            "right": total_right,
            "acc": _ratio(total_right, len(items)),
        },
        "open": open_block,
        "close": {"total": n_close, "right": close_right, "acc": _ratio(close_right, n_close)},
    }


def choice_metrics(correct: Sequence[bool]) -> Metrics:
    """A multiple-choice benchmark's metrics: ``{"total metrics": {total, right, acc}}``."""
    right = sum(correct)
    return {
        "total metrics": {"total": len(correct), "right": right, "acc": _ratio(right, len(correct))}
    }
