"""The steps of the diagnostic workflow: what a step gets (:class:`StepContext`, with a
way to call tools that records every call in the trace) and the built-in steps.

:mod:`medmo_agent.agent.workflow` runs them in order as a LangGraph graph.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp

from ..errors import ConfigError
from .middleware import error_tool_message, record_tool_message
from .prompts import format_context
from .trace import Trace

__all__ = ["BUILTIN_STEPS", "StepContext", "StepFn"]


@dataclass
class WorkflowRun:
    """One run of a workflow: its trace, tools, case and limits (the graph's context)."""

    trace: Trace
    tools: dict[str, Any]
    image: str
    question: str
    context: dict[str, Any]
    deadline: float | None
    max_new_tokens: int | None
    cancel: threading.Event | None = None


@dataclass
class StepContext:
    """What a workflow step gets: the case, earlier results, and a way to call tools.

    Attributes:
        name: This step's name.
        image: The image handle every tool call uses.
        question: The clinical question.
        context: Clinical context (age, sex, history), de-identified.
        results: Earlier steps' results, by step name (result dicts, or lists of them).
        findings: Findings localised so far (``label``, ``box``, ``verified``, ...).
    """

    name: str
    image: str
    question: str
    context: dict[str, Any]
    results: dict[str, Any]
    findings: list[dict[str, Any]]
    _run: WorkflowRun = field(repr=False)

    async def call(
        self, tool: str, /, *, boxes: Sequence[Any] | None = None, **arguments: Any
    ) -> dict[str, Any] | None:
        """Call a tool by name and record the call and result in the trace.

        Args:
            tool: Tool name (``vqa``, ``ground``, ...).
            boxes: Boxes this call is about, shown on the result step (the result's own
                boxes otherwise).
            **arguments: The tool's arguments.

        Returns:
            The result as a dict (the result model's fields), or ``None`` when the tool
            failed; the failure (with its fix) is in the trace.
        """
        run = self._run
        if run.max_new_tokens is not None and "max_new_tokens" not in arguments:
            spec = run.tools.get(tool)
            if spec is not None and "max_new_tokens" in (spec.args or {}):
                arguments["max_new_tokens"] = run.max_new_tokens
        arguments = {k: v for k, v in arguments.items() if v is not None}
        call = {"type": "tool_call", "name": tool, "args": arguments, "id": _call_id()}
        run.trace.add(
            "tool_call",
            tool=tool,
            call_id=call["id"],
            arguments=arguments,
            image=self.image,
            workflow_step=self.name,
        )
        t0 = time.perf_counter()
        lc_tool = run.tools.get(tool)
        try:
            if lc_tool is None:
                raise ConfigError(
                    f"No tool named {tool!r} is available to the workflow.",
                    input=tool,
                    fix=f"Offer one of: {', '.join(sorted(run.tools))}, or skip this step.",
                )
            message = await lc_tool.ainvoke(call)
        except GraphBubbleUp:
            raise
        except Exception as exc:  # a failed step is recorded; the review goes on
            message = error_tool_message(call, exc)
        if not isinstance(message, ToolMessage):
            message = ToolMessage(content=str(message), tool_call_id=call["id"], name=tool)
        record_tool_message(
            run.trace, call, message, time.perf_counter() - t0, self.name, boxes=boxes
        )
        step = run.trace.steps[-1]
        return None if step.status == "error" else (step.result or {"text": step.text})

    def note(self, text: str) -> None:
        """Record a remark as a ``thought`` step."""
        self._run.trace.add("thought", text=text, workflow_step=self.name)


#: What a step returns: a result dict, one per finding (verify), or nothing.
StepOutput = dict[str, Any] | list[dict[str, Any] | None] | None
StepFn = Callable[[StepContext], Awaitable[StepOutput] | StepOutput]


def _call_id() -> str:
    return "wf_" + uuid.uuid4().hex[:10]


# ---- the built-in steps -----------------------------------------------------------------


async def identify(step: StepContext) -> dict[str, Any] | None:
    """Modality, body region and view (vqa)."""
    return await step.call(
        "vqa",
        image=step.image,
        question="What imaging modality, body region and view is this image? Answer briefly.",
    )


async def localize(step: StepContext, max_findings: int = 5) -> dict[str, Any] | None:
    """Every visible abnormality, with boxes (ground); keeps at most ``max_findings``."""
    result = await step.call("ground", image=step.image)
    boxes = (result or {}).get("boxes") or []
    if len(boxes) > max_findings:
        step.note(f"{len(boxes)} findings localised; verifying the first {max_findings}.")
    for box in boxes[:max_findings]:
        step.findings.append({"label": box.get("label") or "finding", "box": box})
    if result is not None and not boxes:
        step.note("No abnormality was localised.")
    return result


async def verify(step: StepContext) -> list[dict[str, Any] | None]:
    """A focused yes/no question about each localised finding, with its box (vqa)."""
    out = []
    for finding in step.findings:
        b = finding["box"]
        where = f"[{b['x1']:.0f}, {b['y1']:.0f}, {b['x2']:.0f}, {b['y2']:.0f}]"
        question = (
            f"Is there {finding['label']} in the region {where} (x1, y1, x2, y2 in pixels) "
            "of this image? Answer yes or no."
        )
        # a 3D finding is asked about on its key slice (``slice`` is None otherwise)
        result = await step.call(
            "vqa",
            boxes=_box_list(b),
            image=step.image,
            slice=finding.get("slice"),
            question=question,
            question_type="closed",
        )
        finding["verified"] = (result or {}).get("yes_no")
        finding["answer"] = (result or {}).get("answer")
        out.append(result)
    if not step.findings:
        step.note("Nothing to verify.")
    return out


def _box_list(box: dict[str, Any]) -> list[Any]:
    from ..types import Box

    try:
        return [Box.model_validate(box)]
    except Exception:
        return []


async def classify(step: StepContext) -> dict[str, Any] | None:
    """Disease labels (classify)."""
    return await step.call("classify", image=step.image)


async def report(step: StepContext) -> dict[str, Any] | None:
    """A report with findings and impression, given the clinical context (report)."""
    return await step.call("report", image=step.image, context=format_context(step.context) or None)


def _summary(step: StepContext) -> str:
    r = step.results
    lines = []
    if r.get("identify"):
        lines.append(f"Image: {r['identify'].get('answer', '')}".strip())
    for f in step.findings:
        status = {True: "confirmed", False: "not confirmed", None: "unverified"}[f.get("verified")]
        b = f["box"]
        on = f" on slice {f['slice']}" if f.get("slice") is not None else ""
        lines.append(
            f"Finding: {f['label']} at [{b['x1']:.0f}, {b['y1']:.0f}, {b['x2']:.0f}, "
            f"{b['y2']:.0f}]{on} ({status})"
        )
    if r.get("classify"):
        labels = r["classify"].get("labels") or []
        lines.append("Labels: " + (", ".join(labels) or "none"))
    if r.get("report") or r.get("study_report"):
        rep = r.get("report") or r["study_report"]
        text = rep.get("impression") or rep.get("findings") or rep.get("report") or ""
        if text:
            lines.append(f"Report impression: {text}")
    return "\n".join(lines)


async def impression(step: StepContext) -> dict[str, Any] | None:
    """The reasoned answer with a differential diagnosis and uncertainty (reason)."""
    ctx = format_context(step.context)
    prior = _summary(step)
    question = (
        f"{step.question}\nGive the most likely diagnosis, a short differential diagnosis, "
        "and how certain you are."
    )
    context = "\n".join(x for x in (ctx, f"Earlier findings:\n{prior}" if prior else "") if x)
    return await step.call("reason", image=step.image, question=question, context=context or None)


BUILTIN_STEPS: dict[str, StepFn] = {
    "identify": identify,
    "localize": localize,
    "verify": verify,
    "classify": classify,
    "report": report,
    "impression": impression,
}
