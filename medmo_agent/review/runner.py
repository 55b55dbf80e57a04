"""Run a review: many cases through the same steps, unattended, resumably.

Cases run on a thread pool (``workers``); the backend batches their concurrent model
calls. Each finished case is written at once (files first, its record last, each one
atomically), so stopping the run at any moment loses only the cases in flight, and
running it again skips what is done. A broken case is recorded as failed with its reason
and the run goes on.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import InputError
from ..workpool import run_each
from .agreement import aggregate_agreement, case_agreement
from .case_sources import load_case_file
from .cases import Case, CaseFile
from .markdown import render_case_markdown
from .outputs import collect_outputs
from .plans import Plan, resolve_plan
from .records import CaseRecord, ImageRecord, Provenance, error_dict, prompts_hash
from .steps import CaseRun
from .store import ReviewStore

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..toolkit import Toolkit
    from ..types import MedImage

__all__ = ["ReviewResult", "run_review"]

_OVERLAY_MAX = 1024  # px, longest side of an overlay PNG


@dataclass
class ReviewResult:
    """What a review did: one record per selected case, in the cases' order."""

    records: list[CaseRecord]
    out: Path | None = None
    ran: int = 0
    skipped: int = 0
    agreement: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> list[CaseRecord]:
        """Records of the cases that failed."""
        return [r for r in self.records if r.status != "ok"]

    @property
    def ok(self) -> bool:
        """Whether every selected case was reviewed."""
        return not self.failed and not self.interrupted

    def __getitem__(self, case_id: str) -> CaseRecord:
        for rec in self.records:
            if rec.id == case_id:
                return rec
        raise KeyError(case_id)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _as_cases(cases: Any) -> tuple[list[Case], Any]:
    if isinstance(cases, (str, Path)):
        loaded = load_case_file(cases)
        return loaded.cases, loaded.steps
    if isinstance(cases, CaseFile):
        return cases.cases, cases.steps
    if isinstance(cases, Case):
        cases = [cases]
    out = [c if isinstance(c, Case) else Case.model_validate(c) for c in cases]
    ids = [c.id for c in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(
            f"Duplicate case id(s): {', '.join(dupes)}.",
            input="cases",
            fix="Give every case a unique id.",
        )
    return out, None


def _select(cases: list[Case], only: Iterable[str] | None, limit: int | None) -> list[Case]:
    if only:
        wanted = [only] if isinstance(only, str) else list(only)
        known = {c.id for c in cases}
        missing = [i for i in wanted if i not in known]
        if missing:
            raise InputError(
                f"No case with id {', '.join(repr(m) for m in missing)}.",
                input="only",
                fix="Use ids from the cases file (the 'id' of each case).",
            )
        cases = [c for c in cases if c.id in set(wanted)]
    if limit is not None:
        if limit < 0:
            raise InputError("limit must be zero or more.", input="limit")
        cases = cases[:limit]
    return cases


def _provenance(plan: Plan, backend: Backend, settings: Settings) -> Provenance:
    try:
        info = json.loads(json.dumps(backend.info(), default=str))
    except Exception:  # an odd backend's info must not stop the review
        info = {}
    return Provenance(
        model=getattr(backend, "model_id", "") or settings.model,
        revision=settings.revision or info.get("revision"),
        backend=getattr(backend, "name", settings.backend),
        backend_info=info,
        prompts_sha256=prompts_hash(),
        steps=json.loads(json.dumps(plan.spec, default=str)),
        parameters={
            "max_new_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "min_pixels": settings.min_pixels,
            "max_pixels": settings.max_pixels,
            "include_phi": settings.include_phi,
        },
    )


class _Reviewer:
    """Reviews one case at a time; shared by the worker threads."""

    def __init__(
        self,
        plan: Plan,
        toolkit: Toolkit,
        provenance: Provenance,
        store: ReviewStore | None,
        cancel: threading.Event,
        include_paths: bool,
    ):
        self.plan = plan
        self.toolkit = toolkit
        self.provenance = provenance
        self.fingerprint = provenance.fingerprint()
        self.store = store
        self.cancel = cancel
        self.include_paths = include_paths

    def is_done(self, case: Case, retry_failed: bool) -> CaseRecord | None:
        if self.store is None:
            return None
        rec = self.store.read_record(case.id)
        if rec is None or rec.fingerprint != self.fingerprint:
            return None
        if rec.case_digest != case.digest():
            return None
        if rec.status != "ok" and retry_failed:
            return None
        return rec

    def review(self, case: Case) -> CaseRecord | None:
        """Review a case and write its files; ``None`` if the run was cancelled meanwhile."""
        if self.cancel.is_set():
            return None
        started, t0 = _now(), time.perf_counter()
        run = CaseRun(case=case, toolkit=self.toolkit, images=[], cancel=self.cancel)
        images = [
            ImageRecord(index=i, path=s.path, location=case.image_path(i), options=s.options())
            for i, s in enumerate(case.images)
        ]
        status, error = "ok", None
        outputs: dict[str, Any] = {}
        agreement = None
        report_file = None
        try:
            for i, spec in enumerate(case.images):
                img = run.call(
                    "load",
                    "load",
                    functools.partial(self._load, case, i),
                    inputs={"path": spec.path, **spec.options()},
                    image=i,
                    dump=_image_summary,
                )
                run.images.append(img)
                images[i].meta = img.meta.model_dump(mode="json")
            self.plan.run(run)
            if self.cancel.is_set():
                return None
            outputs = collect_outputs(run.records, len(case.images))
            sizes = [im.size for im in run.images]
            agreement = case_agreement(case, outputs, sizes)
            store = self.store
            if store is not None:
                for i, img in enumerate(run.images):
                    images[i].boxes = outputs["boxes"][i]
                    images[i].overlay = _overlay(store, case.id, i, img, outputs["boxes"][i])
                for volume in outputs["volumes"]:
                    png = run.overviews.get(volume["index"])
                    if png is not None:
                        name = f"overview-{volume['image']}-{volume['index']}.png"
                        volume["overview"] = store.write_file(case.id, name, png)
        except BaseException as exc:
            if self.cancel.is_set() or isinstance(exc, KeyboardInterrupt):
                return None
            if not isinstance(exc, Exception):
                raise
            status, error = "failed", error_dict(exc)
            if not outputs:
                outputs = collect_outputs(run.records, len(case.images))
        record = CaseRecord(
            id=case.id,
            status=status,
            error=error,
            case_digest=case.digest(),
            fingerprint=self.fingerprint,
            started_at=started,
            finished_at=_now(),
            seconds=round(time.perf_counter() - t0, 3),
            context=case.context,
            images=images,
            steps=run.records,
            outputs=outputs,
            agreement=agreement,
            provenance=self.provenance,
        )
        if self.store is not None:
            report_file = self.store.write_file(
                case.id, "report.md", render_case_markdown(record, self.include_paths)
            )
            record.report_file = report_file
            self.store.write_record(_shown(record, self.include_paths))
        return record

    def _load(self, case: Case, index: int) -> MedImage:
        """Load image ``index`` of ``case`` with the view options the case gives it."""
        spec = case.images[index]
        return self.toolkit.load(case.image_path(index), **spec.options())


def _overlay(
    store: ReviewStore, case_id: str, index: int, image: MedImage, boxes: list[dict]
) -> str:
    """Draw ``boxes`` on ``image`` and keep the PNG in ``store``; returns its file name."""
    import io

    from ..imaging.overlay import draw_boxes
    from ..types import Box

    drawn = draw_boxes(image, [Box.model_validate(b) for b in boxes], max_size=_OVERLAY_MAX)
    buf = io.BytesIO()
    drawn.save(buf, format="PNG")
    return store.write_file(case_id, f"overlay-{index}.png", buf.getvalue())


def _shown(record: CaseRecord, include_paths: bool) -> CaseRecord:
    """The record as written: image paths (also in error texts) replaced by labels."""
    if include_paths:
        return record
    from ..privacy import path_label, scrub_data

    # a path as the case gave it (maybe relative) gets the label of the file it names
    labels = {}
    for im in record.images:
        labels[im.path] = path_label(im.location or im.path)
        if im.location:
            labels[im.location] = path_label(im.location)
    data = scrub_data(record.model_dump(mode="json"), False, labels)
    return CaseRecord.model_validate(data)


def _image_summary(image: MedImage) -> dict[str, Any]:
    return {"size": list(image.size), "meta": image.meta.model_dump(mode="json")}


def run_review(
    cases: str | Path | Sequence[Case | dict[str, Any]] | CaseFile,
    steps: Any = None,
    backend: Backend | None = None,
    out: str | Path | None = None,
    *,
    settings: Settings | None = None,
    toolkit: Toolkit | None = None,
    workers: int = 1,
    limit: int | None = None,
    only: str | Iterable[str] | None = None,
    retry_failed: bool = True,
    progress: bool = False,
    include_paths: bool | None = None,
    cancel: threading.Event | None = None,
) -> ReviewResult:
    """Review many cases with the same steps and return one record per case.

    Args:
        cases: A cases file or folder (YAML, JSON, CSV, one sub-folder per case), or
            :class:`~medmo_agent.review.cases.Case` objects or dicts.
        steps: ``"workflow"`` (the default, or the file's ``steps:``), ``"agent"``, a
            list of task steps, a compact string such as ``"ground:nodule,vqa,report"``,
            or a YAML/JSON file of steps.
        backend: The model; by default one is created from ``settings`` (loaded once).
        out: Output folder. With one, every case is written as it finishes, finished
            cases are skipped when the review runs again, and ``results.jsonl``,
            ``summary.csv``, ``agreement.json`` and ``report.html`` are (re)built at the
            end. Without one, nothing is written.
        settings: Configuration; defaults to ``Settings.from_env()``.
        toolkit: A toolkit to use instead of building one from ``backend``.
        workers: Cases reviewed at once (threads); the backend batches their calls.
        limit: Review only the first ``limit`` selected cases.
        only: Review only the case(s) with these ids.
        retry_failed: Review failed cases again when re-running (finished ones are kept).
        progress: Show a progress bar (done, failed, time left) on stderr.
        include_paths: Name image paths in the files written (records, results.jsonl,
            summary.csv, reports); they may identify a patient, so by default each is
            shown as a label. ``None`` follows ``settings.include_paths``. The records
            returned keep the paths.
        cancel: Set it to stop: cases in flight are abandoned, finished ones are kept.

    Returns:
        A :class:`ReviewResult` with one record per selected case; failed cases carry
        ``status="failed"`` and the reason in ``error``.

    Raises:
        InputError: The cases or steps are malformed, or ``only`` names unknown ids.
    """
    all_cases, file_steps = _as_cases(cases)
    selected = _select(all_cases, only, limit)
    plan = resolve_plan(steps if steps is not None else file_steps)
    if workers < 1:
        raise InputError("workers must be at least 1.", input="workers")
    if toolkit is None:
        from ..toolkit import Toolkit

        settings = settings or Settings.from_env()
        if backend is None:
            from ..backends import create_backend

            backend = create_backend(settings)  # load once, before any case starts
        toolkit = Toolkit(backend=backend, settings=settings)
    settings = toolkit.settings
    if include_paths is None:
        include_paths = settings.include_paths
    store = ReviewStore(out) if out is not None else None
    if store is not None:
        store.prepare()
    cancel = cancel or threading.Event()
    reviewer = _Reviewer(
        plan, toolkit, _provenance(plan, toolkit.backend, settings), store, cancel, include_paths
    )

    done: dict[str, CaseRecord] = {}
    todo = []
    for case in selected:
        rec = reviewer.is_done(case, retry_failed)
        if rec is not None:
            done[case.id] = rec
        else:
            todo.append(case)
    skipped = len(done)
    bar = _progress(progress, len(selected), skipped, sum(r.status != "ok" for r in done.values()))
    ran = 0

    def finished(case: Case, rec: CaseRecord) -> None:
        nonlocal ran
        ran += 1
        done[case.id] = rec
        if bar is not None:
            bar.update(rec.status)

    try:
        keyboard = run_each(
            reviewer.review,
            todo,
            workers=workers,
            cancel=cancel,
            on_result=finished,
            thread_name_prefix="medmo-review",
        )
    finally:
        if bar is not None:
            bar.close()
    interrupted = keyboard or cancel.is_set()

    records = [done[c.id] for c in selected if c.id in done]
    agreement = aggregate_agreement(records)
    if store is not None:
        _write_aggregates(store, all_cases, reviewer.provenance, include_paths)
    result = ReviewResult(
        records=records,
        out=store.root if store else None,
        ran=ran,
        skipped=skipped,
        agreement=agreement,
        interrupted=interrupted,
    )
    if keyboard:
        raise KeyboardInterrupt  # re-raised once finished work is saved
    return result


def _write_aggregates(
    store: ReviewStore, cases: list[Case], prov: Provenance, include_paths: bool
) -> None:
    from .html_report import render_html_report

    ids = [c.id for c in cases]
    known = set(ids)
    # cases since removed from the cases file keep their folders but leave the summaries
    records = [r for r in store.records(order=ids) if r.id in known]
    agreement = aggregate_agreement(records)
    info = {
        "finished_at": _now(),
        "provenance": prov.model_dump(mode="json"),
        "cases": len(records),
        "failed": sum(r.status != "ok" for r in records),
    }
    store.write_results(records)
    store.write_summary(records)
    store.write_json("agreement.json", agreement)
    store.write_json("run.json", info)
    html = render_html_report(records, agreement, store, info, include_paths)
    from .store import atomic_write

    atomic_write(store.root / "report.html", html)


class _Bar:
    def __init__(self, total: int, initial: int, failed: int):
        from tqdm.auto import tqdm

        self.failed = failed
        self.done = initial
        self.bar = tqdm(
            total=total, initial=initial, desc="review", unit="case", dynamic_ncols=True
        )
        self._post()

    def _post(self) -> None:
        self.bar.set_postfix(done=self.done, failed=self.failed, refresh=False)

    def update(self, status: str) -> None:
        self.done += 1
        self.failed += status != "ok"
        self._post()
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _progress(enabled: bool, total: int, initial: int, failed: int) -> _Bar | None:
    return _Bar(total, initial, failed) if enabled else None
