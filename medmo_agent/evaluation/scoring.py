"""Score one answered item by its benchmark's rules, and a benchmark's records together.

The per-item rules and the metrics layout live in :mod:`.judging`, :mod:`.aggregate` and
:mod:`.mmmu`; this module picks the rule a benchmark uses. An optional LLM judge (any
callable ``judge(item, response) -> {"correct": bool | None, ...}``) is asked only about
the items MedEvalKit judges (:func:`~medmo_agent.evaluation.llm_judge.needs_judge`: open
items of VQA-RAD, SLAKE and PathVQA, and SLAKE's closed items under
``compat="medevalkit"``); MMMU's open items keep MMMU's rule. Its verdict is kept in the
record and decides the open items. A judge call that failed (``correct`` is ``None``)
leaves the item unscored: ``correct`` is ``None``, the item is left out of the metrics
and counted as ``unscored``, and a re-run asks the judge again (not the model).
Failed items (no answer) are left out of the metrics and counted as ``failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .aggregate import VqaItemScore, choice_metrics, score_vqa_item, vqa_metrics
from .benchmarks import BenchmarkSpec
from .compat import Compat
from .extraction import parse_response, pre_extract
from .items import EvalItem
from .judging import choice_pick, judge_multiple_choice
from .llm_judge import needs_judge
from .mmmu import judge_multi_choice, judge_open, parse_open_response
from .records import ItemRecord

__all__ = ["Judge", "Score", "benchmark_metrics", "judge_failed", "score_item"]

Judge = Callable[[EvalItem, str], Mapping[str, Any]]
"""An LLM judge: ``judge(item, response)`` returns at least ``{"correct": bool}``."""


@dataclass
class Score:
    """One item's verdict: what was compared, whether it is right, and why."""

    extracted: str
    correct: bool | None
    verdict: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _rule_name(item: EvalItem) -> str:
    if item.question_type == "yes_no":
        return "yes_no"
    if item.question_type == "closed":
        return "closed_exact"
    if item.question_type == "open":
        return "open_exact_match"
    return "multiple_choice"


def score_item(
    spec: BenchmarkSpec,
    item: EvalItem,
    response: str,
    *,
    compat: Compat = "correct",
    judge: Judge | None = None,
    input_size: tuple[int, int] | None = None,
) -> Score:
    """Score a response to an item by the benchmark's rule (and the judge, if any).

    Args:
        spec: the item's benchmark.
        item: the item.
        response: the model's raw response.
        compat: ``"medevalkit"`` reproduces MedEvalKit's scoring bugs.
        judge: the LLM judge, asked only when
            :func:`~medmo_agent.evaluation.llm_judge.needs_judge` says so; its verdict is
            kept under ``verdict["judge"]``.
        input_size: grounding: the (width, height) the model saw, to read its boxes.
    """
    verdict: dict[str, Any] = {"rule": _rule_name(item)}
    metrics: dict[str, float] = {}
    kind: Literal["open", "close"] | None = None
    if spec.scorer == "grounding":
        from .grounding_bench import score_grounding

        extracted, correct, found = score_grounding(item, response, input_size)
        return Score(extracted=extracted, correct=correct, verdict=found)
    if spec.scorer == "vqa":
        s = score_vqa_item(
            spec.id,  # type: ignore[arg-type]
            item.answer,
            response,
            answer_type=item.answer_type,
            compat=compat,
        )
        kind = verdict["kind"] = s.kind
        correct, metrics = s.correct, dict(s.metrics)
        extracted = parse_response(pre_extract(response)).strip()
    elif spec.scorer == "mmmu" and item.question_type == "multiple_choice":
        extracted, correct, drawn = judge_multi_choice(
            item.item_id, item.options, item.answer, response
        )
        verdict["rule"] = "mmmu_multiple_choice"
        verdict["random_choice"] = drawn
    elif item.question_type == "multiple_choice":
        correct = judge_multiple_choice(item.options, item.answer, response)
        extracted = choice_pick(response, len(item.options)).strip()
    else:  # MMMU's open questions
        gold = item.gold or (item.answer,)
        correct = judge_open(gold, response, compat=compat)
        candidates = dict.fromkeys(str(c).strip() for c in parse_open_response(response))
        extracted = " | ".join(candidates)
        verdict["rule"] = "mmmu_open"
    verdict["rule_correct"] = correct
    final: bool | None = correct
    if judge is not None and kind is not None and needs_judge(spec.id, kind, compat):
        judged = dict(judge(item, response))
        verdict["judge"] = judged
        if judged.get("correct") is None:
            final = None  # the call failed: unscored, and judged again on a re-run
        elif kind == "open":
            final = bool(judged["correct"])
    return Score(extracted=extracted, correct=final, verdict=verdict, metrics=metrics)


def judge_failed(rec: ItemRecord) -> bool:
    """Whether an answered item's judge call failed (the item is unscored)."""
    judged = rec.verdict.get("judge")
    return isinstance(judged, dict) and judged.get("correct") is None


def _vqa_score(rec: ItemRecord) -> VqaItemScore:
    kind: Literal["close", "open"] = "open" if rec.question_type == "open" else "close"
    return VqaItemScore(kind, bool(rec.verdict.get("rule_correct")), dict(rec.metrics))


def benchmark_metrics(
    spec: BenchmarkSpec, records: Sequence[ItemRecord], *, compat: Compat = "correct"
) -> dict[str, Any]:
    """A benchmark's metrics in MedEvalKit's layout (``{"total metrics", "open",
    "close"}`` for VQA benchmarks, ``{"total metrics"}`` otherwise), over the answered
    items; ``"total metrics"`` also counts the ``failed`` ones left out, and the
    ``unscored`` ones (answered, but their judge call failed).
    """
    answered = [r for r in records if r.ok and not judge_failed(r)]
    failed = sum(not r.ok for r in records)
    unscored = len(records) - len(answered) - failed
    metrics: dict[str, Any]
    if spec.scorer == "grounding":
        from .grounding_bench import grounding_metrics_of

        metrics = grounding_metrics_of(answered)
    elif spec.scorer == "vqa":
        judged = any("judge" in r.verdict for r in answered)
        verdicts = (
            [bool((r.verdict.get("judge") or {}).get("correct")) for r in answered]
            if judged
            else None
        )
        metrics = vqa_metrics(
            spec.id,  # type: ignore[arg-type]
            [_vqa_score(r) for r in answered],
            judge=verdicts,
            compat=compat,
        )
    else:
        metrics = choice_metrics([bool(r.correct) for r in answered])
    metrics["total metrics"]["failed"] = failed
    metrics["total metrics"]["unscored"] = unscored
    return metrics
