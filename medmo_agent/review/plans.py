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

import json
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
        run_task_steps(self.steps, run)


def _questions(run: CaseRun, image: int) -> list[tuple[int | None, str]]:
    """The case's questions about one image, or the default question for the first."""
    asked = [(i, q.question) for i, q in enumerate(run.case.questions) if q.image == image]
    if asked:
        return asked
    return [(None, _DEFAULT_QUESTION)] if image == 0 or not run.case.questions else []


class WorkflowPlan:
    """The deterministic diagnostic workflow (vqa, ground, verify, classify, report,
    reason), once per case question and image (the first image gets a general question
    when the case has none)."""

    spec = "workflow"

    def __init__(self, **options: Any):
        self.options = options
        if options:
            self.spec = {"workflow": options}

    def run(self, run: CaseRun) -> None:
        from ..agent import DiagnosticWorkflow

        workflow = DiagnosticWorkflow(run.toolkit, **self.options)
        for image in range(len(run.images)):
            for qi, question in _questions(run, image):
                trace = workflow.run(
                    run.images[image], question, context=run.case.context, cancel=run.cancel
                )
                trace = getattr(trace, "trace", trace)
                _absorb(run, trace, image, qi, "workflow")


class AgentPlan:
    """The tool-calling agent, once per case question (or a general question)."""

    spec = "agent"

    def __init__(self, **options: Any):
        self.options = options
        if options:
            self.spec = {"agent": options}

    def run(self, run: CaseRun) -> None:
        from ..agent import create_medmo_agent

        agent = create_medmo_agent(toolkit=run.toolkit, **self.options)
        for image in range(len(run.images)):
            for qi, question in _questions(run, image):
                trace = agent.run(run.images[image], question, context=run.case.context)
                trace = getattr(trace, "trace", trace)
                _absorb(run, trace, image, qi, "agent")


def _absorb(run: CaseRun, trace: Any, image: int, question_index: int | None, kind: str) -> None:
    records = steps_from_trace(trace, image, question_index, start=len(run.records), kind=kind)
    run.records.extend(records)
    failed = next((r for r in records if r.status == "failed" and r.task == kind), None)
    if failed is not None:  # the run stopped on an error: the case failed
        raise _TraceFailure(failed.error or {})


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
            out.append(
                StepRecord(
                    **base,
                    step=kind,
                    task=kind,
                    question_index=question_index,
                    inputs={"question": trace.question},
                    status="failed" if stopped in ("error",) else "ok",
                    result={
                        "question": trace.question,
                        "answer": trace.conclusion or s.text,
                        "stopped": stopped,
                    },
                    error=s.error if stopped == "error" else None,
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
