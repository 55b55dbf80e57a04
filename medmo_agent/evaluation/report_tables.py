"""The evaluation report's figures, computed from a read run folder (no HTML here).

* the published table side by side with the measured one: each measured accuracy gets a
  95% Wilson interval over its items, and a published figure outside that interval is
  flagged (a difference larger than the run's own sampling noise);
* per-type breakdowns: closed/open/multiple choice, question type, modality;
* paired mode differences with bootstrap intervals (``paired.json``, or computed here);
* which MedEvalKit bugs the scoring fixes, and whether this run's benchmarks are touched.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from medmo_agent.evaluation.compat import Deviation
from medmo_agent.evaluation.paired import paired_bootstrap
from medmo_agent.evaluation.published import FIGURES, Figure, PublishedTable
from medmo_agent.evaluation.rundir import ModeRun, RunDir

Z_95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval

KIND_OF_TYPE = {
    "yes_no": "closed",
    "closed": "closed",
    "open": "open",
    "multiple_choice": "multiple choice",
    "grounding": "grounding",
}

VQA_BENCHMARKS = ("vqa_rad", "slake", "path_vqa")


def wilson(right: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of ``right / n`` (``None`` when ``n`` is 0 or right > n)."""
    if n <= 0 or not 0 <= right <= n:
        return None
    p = right / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def reference_mode(run: RunDir) -> str:
    """The mode set against the card: ``direct`` (one call, as MedEvalKit) when it ran."""
    modes = run.mode_names()
    return modes[0] if modes and "direct" not in modes else "direct"


@dataclass(frozen=True)
class Measured:
    """A measured figure: a fraction (``value``), its item count and interval."""

    value: float | None
    n: int
    right: float | None
    ci: tuple[float, float] | None


def measure(metrics: dict[str, Any] | None, metric: str) -> Measured | None:
    """Read ``acc``, ``close_acc`` or ``mean_iou`` from a metrics.json (MedEvalKit's layout)."""
    if not metrics:
        return None
    if metric == "close_acc":
        block = metrics.get("close")
        key = "acc"
    else:
        block = metrics.get("total metrics")
        key = "mean_iou" if metric == "mean_iou" else "acc"
    if not isinstance(block, dict) or key not in block:
        return None
    value = block.get(key)
    if metric == "mean_iou":
        return Measured(value, int(block.get("true_boxes") or 0), None, None)
    n, right = int(block.get("total") or 0), block.get("right")
    ci = wilson(int(right), n) if isinstance(right, int | float) else None
    return Measured(value, n, right, ci)


@dataclass(frozen=True)
class ComparisonRow:
    """One row of the side-by-side table (percentages throughout).

    Attributes:
        figure: which benchmark and metric.
        measured: the reference mode's figure, or ``None`` when it did not run.
        published: each table's percentage (``None``: not published).
        outside: per table, whether the published figure lies outside the measured
            interval (``None`` when either is missing).
    """

    figure: Figure
    measured: Measured | None
    published: tuple[float | None, ...]
    outside: tuple[bool | None, ...]

    def delta(self, index: int) -> float | None:
        """Measured minus published, in percentage points."""
        pub = self.published[index]
        if self.measured is None or self.measured.value is None or pub is None:
            return None
        return self.measured.value * 100 - pub


def comparison_rows(run: RunDir, tables: list[PublishedTable]) -> list[ComparisonRow]:
    """The card's rows for benchmarks this run measured, then the run's other benchmarks."""
    mode = reference_mode(run)
    ran = set(run.benchmarks())
    figures = [f for f in FIGURES if f.benchmark in ran]
    known = {f.benchmark for f in FIGURES}
    figures += [Figure(b, "acc", b, "Other") for b in run.benchmarks() if b not in known]
    rows = []
    for fig in figures:
        mode_run = run.modes[fig.benchmark].get(mode)
        metric = fig.metric
        if fig.group == "Grounding" or (mode_run and _is_grounding(mode_run)):
            metric = "mean_iou"
        measured = measure(mode_run.metrics if mode_run else None, metric)
        published = tuple(t.value(fig.benchmark, fig.metric) for t in tables)
        outside = tuple(_outside(measured, p) for p in published)
        rows.append(ComparisonRow(fig, measured, published, outside))
    return rows


def _is_grounding(mode_run: ModeRun) -> bool:
    block = (mode_run.metrics or {}).get("total metrics", {})
    return isinstance(block, dict) and "mean_iou" in block


def _outside(measured: Measured | None, published: float | None) -> bool | None:
    if measured is None or measured.ci is None or published is None:
        return None
    low, high = measured.ci
    return not low * 100 <= published <= high * 100


@dataclass(frozen=True)
class Group:
    """A breakdown cell: items, answered, right and accuracy over the answered."""

    key: str
    items: int
    answered: int
    right: int

    @property
    def accuracy(self) -> float | None:
        """Right over answered (``None`` when none was answered)."""
        return self.right / self.answered if self.answered else None


def _groups(items: Iterable[dict[str, Any]], key: str) -> list[Group]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for item in items:
        if key == "kind":
            name = KIND_OF_TYPE.get(str(item.get("question_type")), "other")
        else:
            name = str(item.get(key) or "unknown")
        cell = counts[name]
        cell[0] += 1
        if item.get("correct") is not None and not item.get("error"):
            cell[1] += 1
            cell[2] += bool(item["correct"])
    return [Group(k, *v) for k, v in sorted(counts.items())]


BREAKDOWNS = (
    ("kind", "closed / open"),
    ("question_type", "question type"),
    ("modality", "modality"),
)
"""The breakdowns shown: an item field (``kind`` comes from ``question_type``) and a title."""


def breakdowns(mode_run: ModeRun) -> dict[str, list[Group]]:
    """Per-type accuracy of one benchmark in one mode; a breakdown with a single group
    (every item alike, or the field never set) is left out as it says nothing new."""
    out = {}
    for key, title in BREAKDOWNS:
        groups = _groups(mode_run.items, key)
        if len(groups) > 1:
            out[title] = groups
    return out


def paired_rows(run: RunDir) -> list[tuple[str, str, dict[str, Any]]]:
    """``(benchmark, "A vs B", difference)`` for every benchmark with two or more modes.

    From ``paired.json`` when the run wrote one; else each later mode against the first,
    on the items both answered (bootstrap seeded with the run's seed).
    """
    if run.paired:
        return [(b, label, d) for b, pairs in run.paired.items() for label, d in pairs.items()]
    out = []
    order = run.mode_names()
    seed = int(run.run.get("seed") or 0)
    for bench, modes in run.modes.items():
        names = [m for m in order if m in modes]
        if len(names) < 2:
            continue
        first = _scored(modes[names[0]])
        for other in names[1:]:
            second = _scored(modes[other])
            shared = [k for k in first if k in second]
            if not shared:
                continue
            diff = paired_bootstrap(
                [first[k] for k in shared], [second[k] for k in shared], seed=seed
            )
            out.append((bench, f"{names[0]} vs {other}", asdict(diff)))
    return out


def _scored(mode_run: ModeRun) -> dict[str, bool]:
    return {
        str(i["item_id"]): bool(i["correct"])
        for i in mode_run.items
        if i.get("correct") is not None and not i.get("error")
    }


def judge_models(run: RunDir) -> list[str]:
    """The LLM judge models named in the items' verdicts (empty: no judge was used)."""
    models = {
        str(judge.get("model") or "judge")
        for modes in run.modes.values()
        for m in modes.values()
        for i in m.items
        if isinstance(judge := (i.get("verdict") or {}).get("judge"), dict)
    }
    return sorted(models)


def judge_used(run: RunDir) -> bool:
    """Whether any item carries an LLM judge's verdict."""
    return bool(judge_models(run))


def bug_rows(run: RunDir) -> list[tuple[Deviation, bool]]:
    """Each MedEvalKit bug and whether this run's benchmarks are exposed to it."""
    benches = set(run.benchmarks())
    types = {
        (b, i.get("question_type"))
        for b, ms in run.modes.items()
        for m in ms.values()
        for i in m.items
    }
    vqa_open = any((b, "open") in types for b in VQA_BENCHMARKS)
    judge = judge_used(run)
    exposed = {
        Deviation.OPEN_ACC_DIVIDED_TWICE: vqa_open,
        Deviation.F1_LABELS_PERMUTED: vqa_open,
        Deviation.PATHVQA_JUDGE_CLOSED_ZERO: judge and "path_vqa" in benches,
        Deviation.SLAKE_JUDGE_CLOSED_TWICE: judge and "slake" in benches,
        Deviation.MMMU_OPEN_CHARACTERS: ("mmmu_med", "open") in types,
    }
    return [(d, exposed[d]) for d in Deviation]
