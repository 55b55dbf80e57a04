"""What a review does to each case: the diagnostic workflow, the agent, or a task list.

``resolve_plan(spec)`` turns what the user wrote (``"workflow"``, ``"agent"``, a step
list, a compact ``"ground:nodule,vqa,report"`` string, or a YAML/JSON file holding a step
list) into a plan with a JSON-ready ``spec`` (recorded for reproducibility) and a
``run(case_run)`` that appends the case's steps to its trace.

The workflow and the agent record their runs as :class:`medmo_agent.agent.trace.Trace`;
their tool results become the review's step records here, so every plan feeds the same
outputs, reports and agreement figures.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError
from .records import StepRecord
from .steps import CaseRun, TaskStep, parse_task_steps, run_task_steps

__all__ = [
    "DEFAULT_PLAN",
    "AgentPlan",
    "Plan",
    "TaskListPlan",
    "WorkflowPlan",
    "resolve_plan",
    "steps_from_trace",
]

DEFAULT_PLAN = "workflow"
_DEFAULT_QUESTION = "What are the findings, and what is the most likely diagnosis?"
_TOOL_TASKS = {"summarize_report": "summarize"}


class Plan(Protocol):
    """What every plan offers."""

    spec: Any

    def run(self, run: CaseRun) -> None:
        """Review one case, appending every step to ``run.records``."""


class TaskListPlan:
    """Run a list of toolkit tasks in order (see :mod:`medmo_agent.review.steps`)."""

    def __init__(self, steps: list[TaskStep]):
        self.steps = steps
        self.spec = [s.model_dump(exclude_defaults=True) for s in steps]

    def run(self, run: CaseRun) -> None:
        """Run the steps in order over the case."""
        run_task_steps(self.steps, run)


def _questions(run: CaseRun, image: int) -> list[tuple[int | None, str]]:
    """The case's questions about one image, or the default question for the first."""
    asked: list[tuple[int | None, str]] = [
        (i, q.question) for i, q in enumerate(run.case.questions) if q.image == image
    ]
    if asked:
        return asked
    return [(None, _DEFAULT_QUESTION)] if image == 0 or not run.case.questions else []


def _handle(run: CaseRun, index: int) -> str:
    """A handle the tools accept for an already loaded (and windowed) case image."""
    image = dataclasses.replace(run.images[index])
    return run.toolkit.resolver.register(image)


class _TracePlan:
    """Shared by the workflow and the agent: one traced run per image and question."""

    kind = "workflow"

    def __init__(self, **options: Any):
        self.options = options
        self.spec: Any = {self.kind: options} if options else self.kind
        self._runners: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _runner(self, toolkit: Any) -> Any:
        with self._lock:  # one runner per toolkit, shared by the worker threads
            runner = self._runners.get(id(toolkit))
            if runner is None:
                runner = self._runners[id(toolkit)] = self._build(toolkit)
            return runner

    def _build(self, toolkit: Any) -> Any:
        raise NotImplementedError

    def run(self, run: CaseRun) -> None:
        """One traced run per image and question; its steps join the case's trace."""
        runner = self._runner(run.toolkit)
        for image in range(len(run.images)):
            handle = _handle(run, image)
            for qi, question in _questions(run, image):
                if run.cancel is not None and run.cancel.is_set():
                    return
                trace = runner.run(handle, question, context=run.case.context)
                records = steps_from_trace(trace, image, qi, start=len(run.records), kind=self.kind)
                run.records.extend(records)
                self._check(records)

    def _check(self, records: list[StepRecord]) -> None:
        failed = next((r for r in records if r.status == "failed"), None)
        if failed is not None:
            raise _TraceFailure(failed.error or {})


class WorkflowPlan(_TracePlan):
    """The deterministic diagnostic workflow (identify, localize, verify, classify, report,
    impression), once per case question and image (the first image gets a general
    question when the case has none). A failed tool call fails the case.

    Options are passed to :class:`~medmo_agent.agent.DiagnosticWorkflow` (e.g. ``steps``,
    ``max_findings``, ``max_new_tokens``).
    """

    kind = "workflow"

    def _build(self, toolkit: Any) -> Any:
        from ..agent import DiagnosticWorkflow

        return DiagnosticWorkflow(toolkit=toolkit, **self.options)


class AgentPlan(_TracePlan):
    """The tool-calling agent, once per case question and image. Its own tool errors are
    part of its work (it may correct a call); only a run that stops on an error fails
    the case.

    Options are passed to :func:`~medmo_agent.agent.create_medmo_agent` (e.g.
    ``max_steps``, ``time_limit_s``).
    """

    kind = "agent"

    def _build(self, toolkit: Any) -> Any:
        from ..agent import create_medmo_agent

        return create_medmo_agent(toolkit=toolkit, **self.options)

    def _check(self, records: list[StepRecord]) -> None:
        final = next((r for r in records if r.task == self.kind and r.status == "failed"), None)
        if final is not None:
            raise _TraceFailure(final.error or {"message": (final.result or {}).get("answer")})


class _TraceFailure(Exception):
    def __init__(self, error: dict[str, Any]):
        super().__init__(error.get("message") or "the run stopped early")
        self.error = error

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.error.get("error", "RunStopped"),
            "message": str(self),
            "input": self.error.get("input"),
            "fix": self.error.get("fix"),
        }


def steps_from_trace(
    trace: Any,
    image: int | None,
    question_index: int | None = None,
    *,
    start: int = 0,
    kind: str = "workflow",
) -> list[StepRecord]:
    """Step records from a workflow or agent trace.

    Each tool result becomes a record of its task (with the arguments of its call);
    thoughts are kept as ``thought`` records; the conclusion becomes a record of task
    ``kind`` answering the trace's question (so agreement figures can score it).
    """
    calls = {s.call_id: s for s in trace.steps if s.kind == "tool_call" and s.call_id}
    out: list[StepRecord] = []
    for s in trace.steps:
        base: dict[str, Any] = {"index": start + len(out), "image": image, "seconds": s.seconds}
        if s.kind == "tool_result":
            call = calls.get(s.call_id)
            tool = s.tool or (call.tool if call else "") or "tool"
            out.append(
                StepRecord(
                    **base,
                    step=s.workflow_step or tool,
                    task=_TOOL_TASKS.get(tool, tool),
                    inputs=dict(call.arguments) if call else {},
                    status="ok" if s.status == "ok" else "failed",
                    result=s.result,
                    error=s.error,
                )
            )
        elif s.kind == "thought" and s.text:
            out.append(
                StepRecord(
                    **base,
                    step=s.workflow_step or "thought",
                    task="thought",
                    result={"text": s.text},
                )
            )
        elif s.kind == "final":
            stopped = getattr(trace, "stopped", None)
            conclusion = trace.conclusion or s.text
            # The workflow's conclusion adds confirmed findings and a disclaimer to the
            # answer of its reasoning step: that answer is what gets scored.
            reasoned = [r.result.get("answer") for r in out if r.task == "reason" and r.result]
            answer = (reasoned[-1] if reasoned and kind == "workflow" else None) or conclusion
            out.append(
                StepRecord(
                    **base,
                    step=kind,
                    task=kind,
                    question_index=question_index,
                    inputs={"question": trace.question},
                    status="failed" if stopped == "error" else "ok",
                    result={
                        "question": trace.question,
                        "answer": answer,
                        "conclusion": conclusion,
                        "stopped": stopped,
                    },
                    error=(s.error or {"error": "RunStopped", "message": s.text})
                    if stopped == "error"
                    else None,
                )
            )
    return out


def resolve_plan(spec: Any = None) -> Plan:
    """A plan from a spec: ``None``/``"workflow"``, ``"agent"``, a step list, a compact
    step string, a path to a YAML/JSON step list, or a plan object.

    Raises:
        InputError: The spec names nothing runnable.
    """
    if spec is None:
        spec = DEFAULT_PLAN
    if hasattr(spec, "run") and hasattr(spec, "spec"):
        return spec
    if isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("workflow", "agent"):
        name, options = next(iter(spec.items()))
        return (WorkflowPlan if name == "workflow" else AgentPlan)(**(options or {}))
    if isinstance(spec, str):
        text = spec.strip()
        if text == "workflow":
            return WorkflowPlan()
        if text == "agent":
            return AgentPlan()
        path = Path(text).expanduser()
        if path.suffix.lower() in (".yaml", ".yml", ".json"):
            return resolve_plan(_read_steps_file(path))
    return TaskListPlan(parse_task_steps(spec))


def _read_steps_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # missing file, bad YAML or JSON
        raise InputError(
            f"Cannot read steps file {str(path)!r}: {exc}.",
            input=str(path),
            fix="Pass a readable YAML/JSON list of steps, or 'workflow' or 'agent'.",
        ) from exc
    if isinstance(data, dict) and "steps" in data:
        data = data["steps"]
    return data
