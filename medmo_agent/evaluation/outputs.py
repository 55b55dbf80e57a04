"""Write a finished (or stopped) evaluation's files from its records.

Per benchmark and mode: ``items.jsonl`` (rewritten in item order), ``results.json`` and
``metrics.json`` in MedEvalKit's layout; then ``total_results.json``, ``paired.json``
and ``run.json`` (layout in :mod:`.records`), and the HTML report when
:mod:`medmo_agent.evaluation.report` is present.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from datetime import datetime, timezone
from typing import Any

from .benchmarks import BenchmarkSpec
from .compat import Compat
from .items import EvalItem
from .paired import paired_bootstrap
from .records import (
    METRICS_FILE,
    PAIRED_FILE,
    RESULTS_FILE,
    RUN_FILE,
    TOTAL_FILE,
    EvalStore,
    ItemRecord,
)
from .result import EvalResult
from .scoring import benchmark_metrics

__all__ = ["paired_differences", "results_entry", "write_outputs"]

_REPORT_MODULE = "medmo_agent.evaluation.report"


def results_entry(item: EvalItem, rec: ItemRecord) -> dict[str, Any]:
    """One entry of ``results.json``: the item's fields, ``response``, ``correct``,
    ``metrics`` (MedEvalKit's keys), plus ``extracted`` and ``error``."""
    return {
        **item.fields(),
        "response": rec.raw_answer,
        "extracted": rec.extracted,
        "correct": rec.correct,
        "metrics": rec.metrics,
        "error": rec.error,
    }


def paired_differences(
    modes: dict[str, list[ItemRecord]], *, seed: int | None = None
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap of each later mode against the first, on items both answered.

    Keys are ``"A vs B"`` (the difference is B's accuracy minus A's).
    """
    names = list(modes)
    out: dict[str, dict[str, Any]] = {}
    if len(names) < 2:
        return out
    # items unscored (a failed judge call) are left out like failed ones
    first = {r.item_id: r for r in modes[names[0]] if r.ok and r.correct is not None}
    for other in names[1:]:
        pairs = [
            (first[r.item_id], r)
            for r in modes[other]
            if r.ok and r.correct is not None and r.item_id in first
        ]
        if not pairs:
            continue
        diff = paired_bootstrap(
            [bool(a.correct) for a, _ in pairs],
            [bool(b.correct) for _, b in pairs],
            seed=seed or 0,
        )
        out[f"{names[0]} vs {other}"] = dataclasses.asdict(diff)
    return out


def write_outputs(
    result: EvalResult,
    specs: dict[str, BenchmarkSpec],
    loaded: dict[str, list[EvalItem]],
    store: EvalStore | None,
    provenance: dict[str, Any],
    compat: Compat,
    seed: int | None,
) -> None:
    """Fill ``result.metrics``/``result.paired`` and, with a store, write every file."""
    for bench, modes in result.records.items():
        items = {i.item_id: i for i in loaded[bench]}
        for mode, recs in modes.items():
            metrics = benchmark_metrics(specs[bench], recs, compat=compat)
            result.metrics.setdefault(bench, {})[mode] = metrics
            if store is None:
                continue
            ids = {r.item_id for r in recs}
            # items answered by an earlier, larger run stay in the file after this run's
            older = [r for k, r in store.read_items(bench, mode).items() if k not in ids]
            store.write_items(bench, mode, [*recs, *older])
            entries = [results_entry(items[r.item_id], r) for r in recs]
            store.write_json(f"{bench}/{mode}/{RESULTS_FILE}", entries)
            store.write_json(f"{bench}/{mode}/{METRICS_FILE}", metrics)
        paired = paired_differences(modes, seed=seed)
        if paired:
            result.paired[bench] = paired
    if store is None:
        return
    store.write_json(TOTAL_FILE, result.metrics)
    store.write_json(PAIRED_FILE, result.paired)
    store.write_json(
        RUN_FILE,
        {
            **provenance,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "interrupted": result.interrupted,
            "items": {b: {m: len(rs) for m, rs in ms.items()} for b, ms in result.records.items()},
            "failed": len(result.failed),
            "skipped_modes": [list(p) for p in result.skipped_modes],
        },
    )
    if importlib.util.find_spec(_REPORT_MODULE) is not None:
        importlib.import_module(_REPORT_MODULE).write_report(store.root)
