"""Run benchmarks through the model, resumably: ``run_eval`` and ``medmo eval``.

Items of every benchmark and mode go through one thread pool (``workers``) so the backend
sees them concurrently (the local engine batches them). Each answered item is appended to
its ``items.jsonl`` at once (see :mod:`.records` for the layout); a failed item is recorded
with its reason and the run goes on; stopping at any moment loses only the items in
flight, and running the same command again answers only what is missing. At the end the
per-benchmark files, ``total_results.json``, ``paired.json`` and ``run.json`` are
(re)written from the records, re-scored under the ``compat`` asked for (no model call),
and the HTML report is written when :mod:`medmo_agent.evaluation.report` is installed.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import InputError
from ..privacy import scrub_absolute_paths
from ..workpool import run_each
from .benchmarks import BenchmarkSpec, find_benchmark
from .compat import Compat, check_compat
from .items import EvalItem, prompt_hash
from .modes import IMAGE_MODES, check_mode, make_answerer, reasoning_prompt
from .outputs import write_outputs
from .provenance import judge_model_of, model_provenance, run_provenance
from .records import EvalStore, ItemRecord
from .result import EvalResult
from .scoring import Judge, judge_failed, score_item
from .sources import load_items

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..toolkit import Toolkit

__all__ = ["EvalResult", "run_eval"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fingerprint(toolkit: Toolkit, mode: str, max_new_tokens: int) -> str:
    from ..review.records import prompts_hash

    backend, settings = toolkit.backend, toolkit.settings
    key = {
        "model": getattr(backend, "model_id", "") or settings.model,
        "revision": settings.revision,
        "backend": getattr(backend, "name", settings.backend),
        "mode": mode,
        "max_new_tokens": max_new_tokens,
        "temperature": 0.0,
        "min_pixels": settings.min_pixels,
        "max_pixels": settings.max_pixels,
        # the task prompts matter for every mode but direct
        "prompts": prompts_hash() if mode != "direct" else None,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@dataclass
class _Job:
    spec: BenchmarkSpec
    mode: str
    item: EvalItem
    prompt_hash: str


class _Worker:
    """Answers and scores one item; shared by the pool's threads."""

    def __init__(self, answerers: dict[str, Any], fingerprints: dict[str, str | None], **opts: Any):
        self.answerers = answerers
        self.fingerprints = fingerprints
        self.compat: Compat = opts["compat"]
        self.judge: Judge | None = opts["judge"]
        self.store: EvalStore | None = opts["store"]
        self.cancel: threading.Event = opts["cancel"]
        self.include_paths: bool = opts["include_paths"]

    def run(self, job: _Job) -> ItemRecord | None:
        if self.cancel.is_set():
            return None
        item, t0 = job.item, time.perf_counter()
        rec = ItemRecord(
            item_id=item.item_id,
            benchmark=job.spec.id,
            mode=job.mode,
            question_type=item.question_type,
            modality=item.modality,
            category=item.category,
            prompt_hash=job.prompt_hash,
            prompt=item.prompt_for(reasoning_prompt(job.mode)),
            answer=item.answer,
            fingerprint=self.fingerprints[job.mode] or "",
        )
        try:
            if item.load_error:
                raise InputError(f"item {item.item_id!r} could not be read: {item.load_error}")
            answer = self.answerers[job.mode](item)
            if isinstance(answer, tuple):  # grounding: the reply and the size the model saw
                rec.raw_answer, rec.input_size = answer
            else:
                rec.raw_answer = answer
            if self.cancel.is_set():
                return None
            _apply_score(rec, job.spec, item, self.compat, self.judge)
        except Exception as exc:  # one broken item must not stop the benchmark
            if self.cancel.is_set():
                return None
            # items.jsonl and results.json are shared like the report: no file paths in them
            rec.error = scrub_absolute_paths(f"{type(exc).__name__}: {exc}", self.include_paths)
            rec.correct = None
        rec.seconds = round(time.perf_counter() - t0, 3)
        if self.store is not None:
            self.store.append_item(rec)
        return rec


def _apply_score(
    rec: ItemRecord,
    spec: BenchmarkSpec,
    item: EvalItem,
    compat: Compat,
    judge: Judge | None,
    *,
    rejudge: bool = False,
) -> None:
    """Score (or re-score) a record from its raw answer; a judge verdict already kept is
    reused rather than asked again, except a failed one when ``rejudge`` (and a judge)."""
    kept = rec.verdict.get("judge")
    ask: Judge | None = judge
    if kept is not None and not (rejudge and judge is not None and judge_failed(rec)):
        ask = lambda _item, _resp: kept  # noqa: E731
    score = score_item(
        spec, item, rec.raw_answer or "", compat=compat, judge=ask, input_size=rec.input_size
    )
    rec.extracted, rec.correct = score.extracted, score.correct
    rec.verdict, rec.metrics = score.verdict, score.metrics


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def run_eval(
    benchmarks: str | Sequence[str],
    out: str | Path | None = None,
    *,
    modes: str | Sequence[str] = "direct",
    data_dir: str | Path | None = None,
    limit: int | None = None,
    seed: int | None = None,
    compat: str = "correct",
    settings: Settings | None = None,
    backend: Backend | None = None,
    toolkit: Toolkit | None = None,
    workers: int | None = None,
    max_new_tokens: int | None = None,
    judge: Judge | None = None,
    rescore: bool = False,
    retry_failed: bool = True,
    progress: bool = False,
    cancel: threading.Event | None = None,
) -> EvalResult:
    """Evaluate the model on benchmarks of MedMO's card, MedEvalKit's way.

    Args:
        benchmarks: benchmark ids (``medmo eval --list`` shows them), e.g. ``"vqa_rad"``.
        out: output folder (layout in :mod:`medmo_agent.evaluation.records`). With one,
            items are written as they finish and a re-run skips what is done; without,
            nothing is written.
        modes: ``direct`` (default), ``reason``, ``workflow``, ``agent``, or several:
            the same items in each, with paired differences between them.
        data_dir: folder with local copies (``DIR/<benchmark id>/`` in the hub's
            layout); ``None`` loads from the Hugging Face Hub.
        limit: evaluate only this many items per benchmark.
        seed: with ``limit``, draw the items at random with this seed (also the
            bootstrap's seed).
        compat: ``correct`` (MedEvalKit's bugs fixed) or ``medevalkit`` (reproduced).
        settings: configuration; defaults to ``Settings.from_env()``.
        backend: the model; by default created from ``settings`` (loaded once).
        toolkit: a toolkit to use instead of building one from ``backend``.
        workers: items in flight at once (``settings.eval_workers`` when ``None``).
        max_new_tokens: cap per model call (``settings.eval_max_new_tokens``).
        judge: an LLM judge for open questions: ``judge(item, response)`` returning
            ``{"correct": bool | None, ...}``; its verdict is kept per item. When
            ``None`` and ``settings.judge_model`` is set, the judge is built from the
            settings (:meth:`~medmo_agent.evaluation.llm_judge.LlmJudge.from_settings`).
            Only the items MedEvalKit judges are asked about; an item whose judge call
            failed stays unscored and is judged again on a re-run.
        rescore: score the answers already in ``out`` again (under ``compat``, asking
            the judge where needed) without the model: no backend is created, items
            not answered yet are left out.
        retry_failed: answer failed items again when re-running.
        progress: show a progress bar on stderr.
        cancel: set it to stop; answered items are kept.

    Returns:
        An :class:`EvalResult`.

    Raises:
        InputError: an unknown benchmark, mode or compat name, or unreadable data.
    """
    specs = [find_benchmark(b) for b in _as_list(benchmarks)]
    if not specs:
        raise InputError("No benchmark given.", fix="Name one, e.g. medmo eval vqa_rad.")
    mode_list: list[str] = list(dict.fromkeys(check_mode(m) for m in _as_list(modes)))
    compat_ = check_compat(compat)
    if rescore and out is None:
        raise InputError(
            "Re-scoring needs the output folder of an earlier run.",
            input="rescore",
            fix="Pass out= (--out DIR) of the run to score again.",
        )
    # the data first: a missing or malformed copy fails before the model loads
    loaded = {s.id: load_items(s, data_dir, limit=limit, seed=seed) for s in specs}
    settings = toolkit.settings if toolkit is not None else settings or Settings.from_env()
    llm_judge = None
    if judge is None:
        from .llm_judge import LlmJudge

        llm_judge = LlmJudge.from_settings(settings)  # None when no judge_model is set
        judge = llm_judge.runner_judge(compat_) if llm_judge is not None else None
    try:
        return _run(
            specs, out, loaded, mode_list, compat_, settings, backend, toolkit, judge, rescore,
            workers=workers, max_new_tokens=max_new_tokens, retry_failed=retry_failed,
            progress=progress, cancel=cancel, seed=seed, limit=limit, data_dir=data_dir,
        )  # fmt: skip
    finally:
        if llm_judge is not None:
            llm_judge.close()


def _run(
    specs: list[BenchmarkSpec],
    out: str | Path | None,
    loaded: dict[str, list[EvalItem]],
    mode_list: list[str],
    compat_: Compat,
    settings: Settings,
    backend: Backend | None,
    toolkit: Toolkit | None,
    judge: Judge | None,
    rescore: bool,
    **opts: Any,
) -> EvalResult:
    workers, max_new_tokens = opts["workers"], opts["max_new_tokens"]
    seed, limit, data_dir = opts["seed"], opts["limit"], opts["data_dir"]
    if toolkit is None and not rescore:
        from ..toolkit import Toolkit

        if backend is None:
            from ..backends import create_backend

            backend = create_backend(settings)
        toolkit = Toolkit(backend=backend, settings=settings)
    workers = workers or settings.eval_workers
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}.", input="workers")
    tokens = max_new_tokens or settings.eval_max_new_tokens
    if tokens > settings.max_new_tokens_limit:
        raise InputError(
            f"max_new_tokens {tokens} is over the limit of {settings.max_new_tokens_limit} "
            "new tokens per call (MEDMO_MAX_NEW_TOKENS_LIMIT).",
            input="max_new_tokens",
            fix="Ask for fewer (--eval-max-new-tokens), or raise MEDMO_MAX_NEW_TOKENS_LIMIT.",
        )
    started = _now()
    store = EvalStore(out) if out is not None else None
    if store is not None:
        store.prepare()
    cancel = opts["cancel"] or threading.Event()
    result = EvalResult(out=store.root if store else None)

    if toolkit is None:  # re-scoring: the answers on disk are taken as they are
        fingerprints: dict[str, str | None] = dict.fromkeys(mode_list)
        answerers: dict[str, Any] = {}
    else:
        fingerprints = {m: _fingerprint(toolkit, m, tokens) for m in mode_list}
        answerers = {m: make_answerer(m, toolkit, tokens) for m in mode_list}
    done: dict[tuple[str, str], dict[str, ItemRecord]] = {}
    jobs: list[_Job] = []
    earlier_ids: set[tuple[str, str, str]] = set()
    for spec in specs:
        items = loaded[spec.id]
        for mode in mode_list:
            if (spec.text_only and mode in IMAGE_MODES) or (
                spec.scorer == "grounding" and mode != "direct"
            ):
                result.skipped_modes.append((spec.id, mode))
                continue
            old = store.read_items(spec.id, mode) if store is not None else {}
            if store is not None and old:
                store.write_items(spec.id, mode, old.values())  # drops a torn last line
            kept = done[spec.id, mode] = {}
            for item in items:
                ph = prompt_hash(item.prompt_for(reasoning_prompt(mode)), item.images, settings)
                rec = old.get(item.item_id)
                if rescore:
                    if rec is not None and rec.prompt_hash == ph:
                        kept[item.item_id] = rec
                        earlier_ids.add((spec.id, mode, item.item_id))
                    else:
                        result.missing += 1
                elif (
                    rec is not None
                    and rec.prompt_hash == ph
                    and rec.fingerprint == fingerprints[mode]
                    and (rec.ok or not opts["retry_failed"])
                ):
                    kept[item.item_id] = rec
                    earlier_ids.add((spec.id, mode, item.item_id))
                else:
                    jobs.append(_Job(spec, mode, item, ph))
    result.skipped = sum(len(v) for v in done.values())

    worker = _Worker(
        answerers,
        fingerprints,
        compat=compat_,
        judge=judge,
        store=store,
        cancel=cancel,
        include_paths=settings.include_paths,
    )
    bar = _Bar(len(jobs) + result.skipped, result.skipped) if opts["progress"] else None

    def finished(job: _Job, rec: ItemRecord) -> None:
        done[job.spec.id, job.mode][rec.item_id] = rec
        result.ran += 1
        if bar is not None:
            bar.update(rec)

    try:
        keyboard = run_each(
            worker.run,
            jobs,
            workers=workers,
            cancel=cancel,
            on_result=finished,
            thread_name_prefix="medmo-eval",
        )
    finally:
        if bar is not None:
            bar.close()
    result.interrupted = keyboard or cancel.is_set()

    by_spec = {s.id: s for s in specs}
    rescoring = []
    for (bench, mode), recs in done.items():
        for item in loaded[bench]:  # earlier answers are re-scored under this run's compat
            rec = recs.get(item.item_id)
            if rec is not None and rec.ok:
                # an earlier run's failed judge call is asked again (this run's just failed)
                earlier = (bench, mode, item.item_id) in earlier_ids
                rescoring.append((rec, by_spec[bench], item, earlier))
    # judge calls (new ones, or failed ones asked again) go out concurrently
    with ThreadPoolExecutor(max_workers=settings.judge_concurrency if judge else 1) as judges:
        list(
            judges.map(
                lambda t: _apply_score(t[0], t[1], t[2], compat_, judge, rejudge=t[3]), rescoring
            )
        )
    for (bench, mode), recs in done.items():
        items = loaded[bench]
        result.records.setdefault(bench, {})[mode] = [
            recs[i.item_id] for i in items if i.item_id in recs
        ]
    provenance = model_provenance(toolkit, settings, store)
    provenance.update(run_provenance(specs, loaded, mode_list, compat_, seed, limit, tokens))
    provenance.update(
        started_at=started,
        data_dir=str(data_dir) if data_dir else None,
        judge_model=judge_model_of(result, settings),
        rescored=rescore,
    )
    write_outputs(result, by_spec, loaded, store, provenance, compat_, seed)
    if keyboard:
        raise KeyboardInterrupt  # re-raised once the finished work is saved
    return result


class _Bar:
    def __init__(self, total: int, initial: int):
        from tqdm.auto import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, initial=initial, desc="eval", unit="item", dynamic_ncols=True)

    def update(self, rec: ItemRecord) -> None:
        self.failed += rec.error is not None
        self.bar.set_postfix(bench=rec.benchmark, mode=rec.mode, failed=self.failed, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
