"""Benchmark evaluation following MedEvalKit's rules: scoring, and running ``medmo eval``.

Scoring (model-free): prompts (:mod:`.prompts`), answer extraction (:mod:`.extraction`),
judging (:mod:`.judging`), open-ended text metrics (:mod:`.text_metrics`), MMMU's open
questions (:mod:`.mmmu`), per-benchmark aggregation (:mod:`.aggregate`), grounding
(:mod:`.grounding`) and paired mode comparison (:mod:`.paired`). Where MedEvalKit
has bugs, the default is correct and ``compat="medevalkit"`` reproduces them
(:mod:`.compat` names each one).

Running: the benchmarks of MedMO's card (:mod:`.benchmarks`), loaded through ``datasets``
(:mod:`.sources`), asked in a mode (:mod:`.modes`) and written resumably (:mod:`.runner`,
layout in :mod:`.records`)::

    from medmo_agent.evaluation import run_eval

    result = run_eval(["vqa_rad", "pubmedqa"], "runs/x", limit=50)
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from .benchmarks import BENCHMARKS, BenchmarkSpec, find_benchmark
    from .runner import EvalResult, run_eval

__all__ = ["BENCHMARKS", "BenchmarkSpec", "EvalResult", "find_benchmark", "run_eval"]

_WHERE = {
    "run_eval": "runner",
    "EvalResult": "runner",
    "BENCHMARKS": "benchmarks",
    "BenchmarkSpec": "benchmarks",
    "find_benchmark": "benchmarks",
}


def __getattr__(name: str) -> typing.Any:
    # the runner imports the review store and settings: loaded when first asked for
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
